"""Noise injection and weight quantisation (pfgmpp_ipfm.md §A7) on exact and small nets."""

from __future__ import annotations

import pytest
import torch

from pfgmctl.methods import PFGMPP, ExactDenoiser
from pfgmctl.nets import EDMPrecond
from pfgmctl.nets.mlp import MLP
from pfgmctl.robustness import (
    noise_scale,
    quantizable,
    quantize_model,
    quantize_tensor,
    sample_noisy,
)
from pfgmctl.sampling import sample


def _exact() -> tuple[PFGMPP, ExactDenoiser]:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(64, 2, generator=gen, dtype=torch.float64)
    return PFGMPP(aug_dim=128.0), ExactDenoiser(data, 128.0)


def test_alpha_zero_reproduces_plain_sampling() -> None:
    method, model = _exact()
    for solver in ("euler", "heun"):
        plain = sample(method, model, seeds=range(16), shape=(2,), solver=solver, steps=6)
        noisy = sample_noisy(
            method, model, seeds=range(16), shape=(2,), alpha=0.0, solver=solver, steps=6
        )
        assert noisy.nfe == plain.nfe
        torch.testing.assert_close(noisy.x, plain.x)


def test_noise_injection_is_seeded_and_grows_with_alpha() -> None:
    method, model = _exact()
    plain = sample(method, model, seeds=range(32), shape=(2,), steps=6).x
    kw = {"seeds": range(32), "shape": (2,), "steps": 6}
    a = sample_noisy(method, model, alpha=0.2, noise_seed=3, **kw).x  # type: ignore[arg-type]
    b = sample_noisy(method, model, alpha=0.2, noise_seed=3, **kw).x  # type: ignore[arg-type]
    c = sample_noisy(method, model, alpha=0.2, noise_seed=4, **kw).x  # type: ignore[arg-type]
    small = sample_noisy(method, model, alpha=0.02, noise_seed=3, **kw).x  # type: ignore[arg-type]
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    assert (small - plain).norm() < (a - plain).norm()
    assert (small - plain).norm() > 0


def test_noise_injection_rejects_adaptive_solvers_and_negative_alpha() -> None:
    method, model = _exact()
    with pytest.raises(ValueError, match="fixed-step"):
        sample_noisy(method, model, seeds=[0], shape=(2,), alpha=0.1, solver="rk45")
    with pytest.raises(ValueError, match="alpha"):
        sample_noisy(method, model, seeds=[0], shape=(2,), alpha=-1.0)


def test_noise_scale_is_sigma_for_pfgmpp() -> None:
    method, _ = _exact()
    assert noise_scale(method, 3.0) == 3.0


def test_quantize_tensor_levels_and_error_bound() -> None:
    gen = torch.Generator().manual_seed(1)
    t = torch.randn(1000, generator=gen)
    for bits in (2, 5, 8):
        q = quantize_tensor(t, bits)
        assert len(torch.unique(q)) <= 2**bits
        step = float(t.max() - t.min()) / (2**bits - 1)
        assert float((q - t).abs().max()) <= step / 2 + 1e-6
    assert float(quantize_tensor(t, 8).min()) == pytest.approx(float(t.min()), abs=1e-6)
    torch.testing.assert_close(quantize_tensor(torch.ones(4), 4), torch.ones(4))
    with pytest.raises(ValueError, match="bits"):
        quantize_tensor(t, 0)


def test_quantize_model_skips_norms_and_embeddings() -> None:
    torch.manual_seed(0)
    model = EDMPrecond(MLP((2,), hidden=16, blocks=2, emb_dim=8))
    names = quantizable(model)
    assert "raw.inp.weight" in names
    assert "raw.blocks.0.fc1.bias" in names
    assert not any("norm" in n or "embed" in n or ".emb." in n for n in names)
    q = quantize_model(model, 3)
    params, qparams = dict(model.named_parameters()), dict(q.named_parameters())
    for name, p in params.items():
        if name in names:
            assert len(torch.unique(qparams[name])) <= 8
        else:
            assert torch.equal(qparams[name], p)
    assert not torch.equal(qparams["raw.inp.weight"], params["raw.inp.weight"])  # a copy
