"""Exact-field oracle quantities over a finite set, against brute-force loops (pfgmpp_ipfm.md part C)."""

from __future__ import annotations

import math

import pytest
import torch

from pfgmctl.physics.empirical import (
    log_weights,
    mixture_log_prob,
    posterior_mean,
    sq_dist,
    velocity_divergence,
)

AUG_DIMS = [1.0, 2.5, 8.0, 128.0, math.inf]


pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(
    seed: int, batch: int = 6, n: int = 5, data_dim: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(n, data_dim, generator=gen, dtype=torch.float64)
    x = data[torch.arange(batch) % n] + 0.7 * torch.randn(
        batch, data_dim, generator=gen, dtype=torch.float64
    )
    return x, data


def _log_w_loop(x: torch.Tensor, data: torch.Tensor, sigma: float, aug_dim: float) -> torch.Tensor:
    """log w_i ∝ −(N+D)/2·log(‖x − y_i‖² + σ²D) (D = inf: −‖x − y_i‖²/2σ²), one row at a time."""
    out = torch.empty(x.shape[0], data.shape[0], dtype=torch.float64)
    data_dim = x[0].numel()
    for b in range(x.shape[0]):
        logits = []
        for i in range(data.shape[0]):
            d2 = float((x[b] - data[i]).square().sum())
            if math.isinf(aug_dim):
                logits.append(-d2 / (2 * sigma**2))
            else:
                logits.append(-0.5 * (data_dim + aug_dim) * math.log(d2 + aug_dim * sigma**2))
        top = max(logits)
        log_z = top + math.log(sum(math.exp(v - top) for v in logits))
        out[b] = torch.tensor([v - log_z for v in logits], dtype=torch.float64)
    return out


def _posterior_mean_torch(
    x: torch.Tensor, data: torch.Tensor, sigma: float, aug_dim: float
) -> torch.Tensor:
    """Differentiable broadcast re-derivation of E[y | x, r = σ√D] (for autograd divergences)."""
    d2 = (x[:, None, :] - data[None, :, :]).square().sum(-1)
    if math.isinf(aug_dim):
        logits = -d2 / (2 * sigma**2)
    else:
        logits = -0.5 * (x.shape[1] + aug_dim) * torch.log(d2 + aug_dim * sigma**2)
    return torch.softmax(logits, dim=1) @ data


def test_sq_dist_matches_cdist() -> None:
    x, data = _setup(0, batch=9, n=4, data_dim=7)
    assert torch.allclose(sq_dist(x, data), torch.cdist(x, data).square(), atol=1e-12)
    assert sq_dist(x, x).diagonal().min() >= 0
    assert sq_dist(x.float(), data.float()).dtype == torch.float64


@pytest.mark.parametrize("aug_dim", AUG_DIMS)
def test_weights_are_normalised_and_match_loop(aug_dim: float) -> None:
    x, data = _setup(1)
    lw = log_weights(x, data, 0.6, aug_dim)
    assert lw.shape == (6, 5)
    assert torch.allclose(lw.exp().sum(1), torch.ones(6, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(lw, _log_w_loop(x, data, 0.6, aug_dim), atol=1e-10)


def test_inf_weights_are_gaussian_softmax() -> None:
    x, data = _setup(2)
    sigma = 0.45
    want = torch.softmax(-torch.cdist(x, data).square() / (2 * sigma**2), dim=1)
    assert torch.allclose(log_weights(x, data, sigma, math.inf).exp(), want, atol=1e-12)


def test_large_d_weights_approach_gaussian() -> None:
    x, data = _setup(3)
    want = log_weights(x, data, 0.5, math.inf).exp()
    got = log_weights(x, data, 0.5, 1e7).exp()
    assert torch.allclose(got, want, atol=1e-5)


def test_row_sigma() -> None:
    x, data = _setup(4)
    sigma = torch.tensor([0.2, 0.5, 1.0, 2.0, 3.0, 0.1], dtype=torch.float64)
    lw = log_weights(x, data, sigma, 8.0)
    for b in range(6):
        want = _log_w_loop(x[b : b + 1], data, float(sigma[b]), 8.0)
        assert torch.allclose(lw[b : b + 1], want, atol=1e-10)


@pytest.mark.parametrize("aug_dim", AUG_DIMS)
def test_posterior_mean_brute_force(aug_dim: float) -> None:
    x, data = _setup(5)
    w = _log_w_loop(x, data, 0.8, aug_dim).exp()
    want = torch.stack([(w[b, :, None] * data).sum(0) for b in range(x.shape[0])])
    assert torch.allclose(posterior_mean(x, data, 0.8, aug_dim), want, atol=1e-12)


def test_posterior_mean_keeps_item_shape() -> None:
    gen = torch.Generator().manual_seed(6)
    data = torch.randn(4, 2, 3, 3, generator=gen)
    x = torch.randn(5, 2, 3, 3, generator=gen)
    out = posterior_mean(x, data, 1.0, 128.0)
    assert out.shape == x.shape
    flat = posterior_mean(x.flatten(1), data.flatten(1), 1.0, 128.0)
    assert torch.allclose(out.flatten(1), flat)
    # Tiny σ: the posterior mean snaps onto the nearest data point.
    near = data[1] + 1e-3 * torch.randn(2, 3, 3, generator=gen)
    assert torch.allclose(
        posterior_mean(near[None], data, 1e-3, math.inf)[0], data[1].double(), atol=1e-8
    )


def _log_kernel_loop(v2: float, data_dim: int, sigma: float, aug_dim: float) -> float:
    if math.isinf(aug_dim):
        return -v2 / (2 * sigma**2) - 0.5 * data_dim * math.log(2 * math.pi * sigma**2)
    r2 = aug_dim * sigma**2
    return (
        math.lgamma((data_dim + aug_dim) / 2)
        - math.lgamma(aug_dim / 2)
        - 0.5 * data_dim * math.log(math.pi)
        + 0.5 * aug_dim * math.log(r2)
        - 0.5 * (data_dim + aug_dim) * math.log(v2 + r2)
    )


@pytest.mark.parametrize("aug_dim", AUG_DIMS)
def test_mixture_log_prob_loop(aug_dim: float) -> None:
    x, data = _setup(7, batch=4, n=6, data_dim=2)
    got = mixture_log_prob(x, data, 0.9, aug_dim)
    for b in range(4):
        dens = sum(
            math.exp(_log_kernel_loop(float((x[b] - y).square().sum()), 2, 0.9, aug_dim))
            for y in data
        )
        assert float(got[b]) == pytest.approx(math.log(dens / data.shape[0]), abs=1e-10)


@pytest.mark.parametrize("aug_dim", AUG_DIMS)
@pytest.mark.parametrize("data_dim", [2, 5])
def test_velocity_divergence_equals_autograd(aug_dim: float, data_dim: int) -> None:
    x, data = _setup(8, batch=5, n=6, data_dim=data_dim)
    sigma = 0.7
    closed = velocity_divergence(x, data, sigma, aug_dim)
    want = []
    for b in range(x.shape[0]):

        def vel(xb: torch.Tensor) -> torch.Tensor:
            return (
                (xb - _posterior_mean_torch(xb[None], data, sigma, aug_dim)[0]) / sigma
            ).reshape(-1)

        jac = torch.autograd.functional.jacobian(vel, x[b])
        want.append(torch.trace(jac))
    assert torch.allclose(closed, torch.stack(want), atol=1e-9, rtol=1e-9)
