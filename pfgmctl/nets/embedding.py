"""Noise-level embeddings shared by the raw nets (DDPM++ positional, NCSN++ Fourier features)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def on_default_device(t: Tensor) -> Tensor:
    """A small constant computed on the CPU, moved to the default device (cheap under the meta device)."""
    return t.to(torch.get_default_device())


class PositionalEmbedding(nn.Module):
    """[cos(c·ω_k), sin(c·ω_k)], ω_k = 10000^(−k/(n/2−1)) (DDPM++ noise embedding; EDM, endpoint=True)."""

    freqs: Tensor

    def __init__(self, dim: int, max_positions: float = 10_000.0) -> None:
        super().__init__()
        half = dim // 2
        k = torch.arange(half, dtype=torch.float32, device="cpu")
        freqs = (1.0 / max_positions) ** (k / max(half - 1, 1))
        self.register_buffer("freqs", on_default_device(freqs), persistent=False)

    def forward(self, c: Tensor) -> Tensor:
        arg = torch.outer(c, self.freqs.to(c.dtype))
        return torch.cat([arg.cos(), arg.sin()], dim=1)  # EDM order; checkpoints depend on it


class FourierEmbedding(nn.Module):
    """[cos(2π·c·ω_k), sin(2π·c·ω_k)], ω ~ N(0, 16²) fixed (NCSN++ noise embedding; Tancik et al. 2020).

    ω is drawn from its own seeded generator on the CPU, so a checkpoint never depends on the global RNG.
    """

    freqs: Tensor

    def __init__(self, dim: int, scale: float = 16.0) -> None:
        super().__init__()
        gen = torch.Generator(device="cpu").manual_seed(0)
        freqs = torch.randn(dim // 2, generator=gen, device="cpu") * scale
        self.register_buffer("freqs", on_default_device(freqs))

    def forward(self, c: Tensor) -> Tensor:
        arg = torch.outer(c, (2 * math.pi * self.freqs).to(c.dtype))
        return torch.cat([arg.cos(), arg.sin()], dim=1)  # EDM order; checkpoints depend on it
