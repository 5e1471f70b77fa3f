"""Encode/decode round trips and the latent interpolation helpers."""

from __future__ import annotations

import math

import pytest
import torch

from pfgmctl.latent import (
    FlowSettings,
    decode,
    encode,
    evaluated_at,
    interpolate,
    lerp,
    relative_error,
    scale_norms,
    slerp,
)
from pfgmctl.methods import PFGM, PFGMPP, ExactDenoiser, ExactField
from pfgmctl.physics.kernels import sample_noise


def toy_data(gen: torch.Generator) -> torch.Tensor:
    return torch.randn(16, 2, generator=gen, dtype=torch.float64)


def near(y: torch.Tensor, sigma: float, aug_dim: float, gen: torch.Generator) -> torch.Tensor:
    """Draws of the perturbed data at the end of the grid (where encode starts)."""
    return y + sample_noise(tuple(y.shape), sigma, aug_dim, generator=gen)


@pytest.mark.parametrize("aug_dim", [128.0, math.inf])
def test_exact_round_trip_pfgmpp(one_thread: None, aug_dim: float) -> None:
    gen = torch.Generator().manual_seed(0)
    data = toy_data(gen)
    method, model = PFGMPP(aug_dim=aug_dim, sigma_min=0.05), ExactDenoiser(data, aug_dim)
    x = near(data[:8], 0.05, aug_dim, gen)
    cfg = FlowSettings(rtol=1e-5, atol=1e-5)
    z = encode(method, model, x, cfg)
    assert z.x.norm(dim=1).mean() > 10 * x.norm(dim=1).mean()  # it reached σ_max
    back = decode(method, model, z.x, cfg)
    assert relative_error(back.x, x).max() < 1e-3
    assert z.nfe > 0
    assert back.nfe > 0


def test_exact_round_trip_pfgm(one_thread: None) -> None:
    gen = torch.Generator().manual_seed(1)
    data = toy_data(gen)
    method = PFGM(m=1.0, z_max=40.0, upper_norm=1e9, z_exp=0.0, prior_clip=False, z_min=1e-2)
    model = ExactField(data, 5.0)
    x = near(data[:8], 1e-2, 1.0, gen)
    cfg = FlowSettings(rtol=1e-6, atol=1e-6, batch=3)  # batching exercised
    back = decode(method, model, encode(method, model, x, cfg).x, cfg)
    assert relative_error(back.x, x).max() < 1e-3


def test_fixed_step_round_trip_is_approximate(one_thread: None) -> None:
    gen = torch.Generator().manual_seed(2)
    data = toy_data(gen)
    method, model = PFGMPP(aug_dim=128.0, sigma_min=0.05), ExactDenoiser(data, 128.0)
    x = near(data[:4], 0.05, 128.0, gen)
    cfg = FlowSettings(solver="heun", steps=64)
    back = decode(method, model, encode(method, model, x, cfg).x, cfg)
    assert relative_error(back.x, x).max() < 0.05


def test_evaluated_at() -> None:
    assert evaluated_at(PFGMPP(aug_dim=4.0, sigma_min=0.01)) == pytest.approx(
        {"sigma": 0.01, "r": 0.02}
    )
    pfgm = PFGM(m=1.0, z_max=40.0, upper_norm=1.0, z_exp=5.0, z_min=1e-3)
    assert evaluated_at(pfgm) == pytest.approx({"z": 1e-3})


def test_slerp_and_lerp() -> None:
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    b = 2 * b / b.norm() * a.norm()
    path = slerp(a, b, 7)
    assert path.shape == (7, 5)
    assert torch.allclose(path[0], a)
    assert torch.allclose(path[-1], b)
    norms = path.norm(dim=1)
    assert torch.allclose(norms, torch.linspace(float(a.norm()), float(b.norm()), 7).double())
    cos = torch.nn.functional.cosine_similarity(path[:-1], path[1:], dim=1)
    assert torch.allclose(cos, cos[0].expand_as(cos))  # equal angular steps
    line = lerp(a, b, 3)
    assert torch.allclose(line[1], (a + b) / 2)
    assert torch.allclose(interpolate(a, a, 4), a.expand(4, 5))  # parallel inputs
    with pytest.raises(ValueError, match="slerp or linear"):
        interpolate(a, b, 3, "cubic")


def test_scale_norms() -> None:
    z = torch.tensor([[3.0, 4.0]])
    out = scale_norms(z, torch.tensor([0.5, 1.0, 2.0]))
    assert out.shape == (3, 1, 2)
    assert torch.allclose(out.flatten(1).norm(dim=1), torch.tensor([2.5, 5.0, 10.0]).double())
