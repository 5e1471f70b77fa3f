"""Noise embeddings: EDM's feature order and frequencies (trained checkpoints depend on both)."""

from __future__ import annotations

import math

import torch

from pfgmctl.nets.embedding import FourierEmbedding, PositionalEmbedding


def test_positional_is_cos_then_sin_with_edm_frequencies() -> None:
    emb = PositionalEmbedding(8)
    c = torch.tensor([0.0, 0.7])
    k = torch.arange(4, dtype=torch.float32)
    freqs = (1 / 10_000.0) ** (k / 3)  # EDM endpoint=True: 10000^(-k/(half-1))
    want = torch.cat([torch.cos(c[:, None] * freqs), torch.sin(c[:, None] * freqs)], dim=1)
    torch.testing.assert_close(emb(c), want)
    assert emb(torch.zeros(1))[0, :4].eq(1).all()  # cos(0) = 1 comes first


def test_fourier_is_cos_then_sin_of_fixed_seeded_frequencies() -> None:
    a, b = FourierEmbedding(6, scale=16.0), FourierEmbedding(6, scale=16.0)
    torch.testing.assert_close(a.freqs, b.freqs)  # never drawn from the global RNG
    c = torch.tensor([0.3])
    arg = 2 * math.pi * c[:, None] * a.freqs[None]
    torch.testing.assert_close(a(c), torch.cat([arg.cos(), arg.sin()], dim=1))
