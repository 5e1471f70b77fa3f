"""Change of variables against the exact-field oracle (pfgmpp_ipfm.md part C), Hutchinson bias."""

from __future__ import annotations

import math

import pytest
import torch

from pfgmctl.latent import FlowSettings, differentiable, log_likelihood
from pfgmctl.methods import PFGM, PFGMPP, ExactDenoiser, ExactField
from pfgmctl.physics.empirical import mixture_log_prob, velocity_divergence
from pfgmctl.physics.kernels import sample_noise
from pfgmctl.solvers.cnf import Divergence, exact_divergence, hutchinson_divergence, integrate

TIGHT = FlowSettings(rtol=1e-7, atol=1e-7)
R_MIN = 0.05


def centred_data(n_dim: int, gen: torch.Generator) -> torch.Tensor:
    """5 charges with mean 0 and ‖y‖ ~ 0.5√N ≪ r_max (the prior is the kernel centred at 0)."""
    y = 0.5 * torch.randn(5, n_dim, generator=gen, dtype=torch.float64)
    return y - y.mean(0)


def near_data(data: torch.Tensor, aug_dim: float, gen: torch.Generator) -> torch.Tensor:
    """Points drawn from the mixture p_{r_min}."""
    return data[torch.arange(6) % len(data)] + sample_noise(
        (6, data.shape[1]), R_MIN, aug_dim, generator=gen
    )


@pytest.mark.parametrize("n_dim", [2, 8])
@pytest.mark.parametrize("aug_dim", [1.0, 8.0, 128.0, math.inf])
def test_log_density_matches_mixture(one_thread: None, n_dim: int, aug_dim: float) -> None:
    gen = torch.Generator().manual_seed(n_dim + int(min(aug_dim, 999)))
    data = centred_data(n_dim, gen)
    sigma_max = 500.0 if aug_dim < 2 else 80.0  # r_max = σ_max√D ≫ ‖y‖ for every D
    method = PFGMPP(aug_dim=aug_dim, sigma_min=R_MIN, sigma_max=sigma_max)
    x = near_data(data, aug_dim, gen)
    res = log_likelihood(method, ExactDenoiser(data, aug_dim), x, TIGHT)
    ref = mixture_log_prob(x, data, R_MIN, aug_dim)
    assert res.exact
    assert (res.log_prob - ref).abs().max() < 1e-3


@pytest.mark.parametrize("time_var", ["log_z", "z"])
def test_pfgm_log_z_agrees_with_pfgmpp_d1(one_thread: None, time_var: str) -> None:
    gen = torch.Generator().manual_seed(3)
    data = centred_data(2, gen)
    x = near_data(data, 1.0, gen)
    pfgm = PFGM(
        m=1.0, z_max=500.0, upper_norm=1e9, z_exp=0.0, z_min=R_MIN, prior_clip=False,
        time_var=time_var,
    )  # fmt: skip
    pfgmpp = PFGMPP(aug_dim=1.0, sigma_min=R_MIN, sigma_max=500.0)
    a = log_likelihood(pfgm, ExactField(data, 5.0), x, TIGHT).log_prob
    b = log_likelihood(pfgmpp, ExactDenoiser(data, 1.0), x, TIGHT).log_prob
    assert (a - b).abs().max() < 1e-4
    assert (a - mixture_log_prob(x, data, R_MIN, 1.0)).abs().max() < 1e-3


def oracle_rhs(aug_dim: float, gen: torch.Generator) -> tuple:
    data = centred_data(4, gen)
    method = PFGMPP(aug_dim=aug_dim)
    rhs = method.rhs(differentiable(ExactDenoiser(data, aug_dim)), dtype=torch.float64)
    return data, rhs


@pytest.mark.parametrize("aug_dim", [1.0, 128.0, math.inf])
def test_exact_divergence_is_closed_form(aug_dim: float) -> None:
    gen = torch.Generator().manual_seed(1)
    data, rhs = oracle_rhs(aug_dim, gen)
    x = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    t = torch.tensor(0.7, dtype=torch.float64)
    value, div = exact_divergence(rhs, x, t, max_rows=14)  # 2 dims per pass: chunking exercised
    assert torch.allclose(value, rhs(x, t))
    assert torch.allclose(div, velocity_divergence(x, data, 0.7, aug_dim), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased(noise: str) -> None:
    gen = torch.Generator().manual_seed(2)
    _, rhs = oracle_rhs(128.0, gen)
    x = torch.randn(1, 4, generator=gen, dtype=torch.float64).expand(4000, 4).contiguous()
    t = torch.tensor(0.5, dtype=torch.float64)
    exact = exact_divergence(rhs, x[:1], t)[1]
    eps = Divergence(noise=noise)
    from pfgmctl.solvers.cnf import draw_probes

    probes = draw_probes(1, tuple(x.shape), noise=eps.noise, gen=gen, device=x.device)
    est = hutchinson_divergence(rhs, x, t, probes)[1]  # 4000 independent single-probe estimates
    se = est.std() / math.sqrt(len(est))
    assert abs(float(est.mean() - exact)) < 3 * float(se)
    assert float(est.std()) > 0


def test_hutchinson_likelihood_close_to_exact(one_thread: None) -> None:
    gen = torch.Generator().manual_seed(4)
    data = centred_data(8, gen)
    method = PFGMPP(aug_dim=128.0, sigma_min=R_MIN)
    x = near_data(data, 128.0, gen)
    model = ExactDenoiser(data, 128.0)
    cfg = FlowSettings(rtol=1e-5, atol=1e-5)
    exact = log_likelihood(method, model, x, cfg).log_prob
    hutch = log_likelihood(
        method, model, x, cfg, divergence=Divergence("hutchinson", probes=64), gen=gen
    )
    assert not hutch.exact
    assert (hutch.log_prob - exact).abs().max() < 2.0  # a noisy but unbiased estimate
    with pytest.raises(ValueError, match="Generator"):
        log_likelihood(method, model, x, cfg, divergence=Divergence("hutchinson"))


def test_fixed_step_solver_converges(one_thread: None) -> None:
    gen = torch.Generator().manual_seed(5)
    data = centred_data(2, gen)
    method = PFGMPP(aug_dim=128.0, sigma_min=R_MIN)
    x = near_data(data, 128.0, gen)
    res = log_likelihood(
        method, ExactDenoiser(data, 128.0), x, FlowSettings(solver="heun", steps=200)
    )
    assert res.nfe == 2 * 199
    assert (res.log_prob - mixture_log_prob(x, data, R_MIN, 128.0)).abs().max() < 2e-2


def test_integrate_sign_convention() -> None:
    """dx/dt = a·x in N dims: Δ over [0, 1] is N·a, x(1) = e^a·x(0)."""
    x = torch.ones(3, 5, dtype=torch.float64)
    ts = torch.tensor([0.0, 1.0], dtype=torch.float64)
    sol = integrate(lambda x, t: 0.3 * x, x, ts, rtol=1e-9, atol=1e-9)
    assert torch.allclose(sol.delta, torch.full((3,), 1.5, dtype=torch.float64))
    assert torch.allclose(sol.x, x * math.exp(0.3))


def test_divergence_options_validated() -> None:
    with pytest.raises(ValueError, match="mode"):
        Divergence("nope")
    with pytest.raises(ValueError, match="noise"):
        Divergence(noise="uniform")
    with pytest.raises(ValueError, match="probes"):
        Divergence(probes=0)
    assert Divergence(threshold=8).exact_for(8)
    assert not Divergence(threshold=8).exact_for(9)
