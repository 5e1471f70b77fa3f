"""Exact-field oracle, no training (pfgmpp_ipfm.md part C): the exact posterior mean / field of 8 points
in 2-D stands in for the network, so prior, grid, rhs and solvers are tested end to end."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from scipy import stats
from torch import Tensor, nn

from pfgmctl.methods import PFGM, PFGMPP, ExactDenoiser, ExactField
from pfgmctl.nets import EDMPrecond, build_raw
from pfgmctl.physics.empirical import mixture_log_prob, velocity_divergence
from pfgmctl.physics.kernels import sample_noise
from pfgmctl.sampling import sample
from pfgmctl.solvers import Rhs, heun, odeint
from pfgmctl.solvers.schedules import karras

P_MIN = 1e-3
SEEDS = list(range(32))


pytestmark = pytest.mark.usefixtures("one_thread")


def _data() -> Tensor:
    """8 points on a ring of radius 1 (the 8-gaussians toy without noise), float64."""
    angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return torch.stack([angle.cos(), angle.sin()], dim=1)


def _dist_to_data(x: Tensor) -> Tensor:
    return torch.cdist(x.double(), _data()).min(dim=1).values


def _pfgm() -> PFGM:
    return PFGM(m=100.0, z_max=40.0, upper_norm=100.0, z_exp=1.0, z_min=1e-3, prior_clip=False)


@pytest.mark.parametrize("aug_dim", [128.0, math.inf])
@pytest.mark.parametrize("solver", ["heun", "euler"])
def test_pfgmpp_lands_on_data(aug_dim: float, solver: str) -> None:
    res = sample(
        PFGMPP(aug_dim=aug_dim),
        ExactDenoiser(_data(), aug_dim),
        seeds=SEEDS,
        shape=(2,),
        solver=solver,
        steps=18,
    )
    assert res.nfe == (35 if solver == "heun" else 18)
    assert float(_dist_to_data(res.x).max()) < 1e-2


def test_pfgmpp_d1_median_lands_on_data() -> None:
    """D = 1 leaves heavy-tailed stragglers; judge the median only."""
    res = sample(
        PFGMPP(aug_dim=1.0),
        ExactDenoiser(_data(), 1.0),
        seeds=SEEDS,
        shape=(2,),
        solver="heun",
        steps=18,
    )
    assert float(_dist_to_data(res.x).median()) < 1e-2


@pytest.mark.parametrize("time_var", ["log_z", "z"])
def test_pfgm_median_lands_on_data(time_var: str) -> None:
    method = dataclasses.replace(_pfgm(), time_var=time_var)
    res = sample(method, ExactField(_data(), 5.0), seeds=SEEDS, shape=(2,), solver="heun", steps=40)
    assert res.prior_clipped == 0.0
    assert float(_dist_to_data(res.x).median()) < 1e-2


def test_rk45_lands_on_data() -> None:
    res = sample(
        PFGMPP(aug_dim=math.inf),
        ExactDenoiser(_data(), math.inf),
        seeds=SEEDS,
        shape=(2,),
        solver="rk45",
    )
    assert float(_dist_to_data(res.x).max()) < 1e-2
    assert res.nfe > 1
    pfgm = sample(_pfgm(), ExactField(_data(), 5.0), seeds=SEEDS, shape=(2,), solver="rk45")
    assert float(_dist_to_data(pfgm.x).median()) < 1e-2


def test_rk45_lands_on_data_finite_d() -> None:
    res = sample(
        PFGMPP(aug_dim=128.0),
        ExactDenoiser(_data(), 128.0),
        seeds=list(range(64)),
        shape=(2,),
        solver="rk45",
    )
    assert float(_dist_to_data(res.x).max()) < 1e-2


def test_pfgmpp_rk45_with_a_real_precond_net() -> None:
    with torch.random.fork_rng():  # the raw net's initialisation only; global RNG left untouched
        torch.manual_seed(0)
        raw = build_raw("mlp", (2,), out_extra=0, hidden=32, blocks=1)
    head = raw.out
    assert isinstance(head, nn.Linear)
    for p in head.parameters():
        nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(22))
    res = sample(PFGMPP(aug_dim=128.0), EDMPrecond(raw), seeds=range(8), shape=(2,), solver="rk45")
    assert bool(torch.isfinite(res.x).all())


# ---------------------------------------------------------------------------------------------
# (a) The ODE transports the exact mixture p_r between radii.


def _mixture_draw(n: int, sigma: float, aug_dim: float, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 8, (n,), generator=gen)
    return _data()[idx] + sample_noise((n, 2), sigma, aug_dim, generator=gen)


@pytest.mark.parametrize("aug_dim", [128.0, math.inf])
def test_ode_transports_mixture(aug_dim: float) -> None:
    """Integrate exact mixture draws from σ = 20 down to 0.3: they match fresh draws at σ = 0.3."""
    n, lo, hi = 8000, 0.3, 20.0
    method = PFGMPP(aug_dim=aug_dim)
    x0 = _mixture_draw(n, hi, aug_dim, seed=1)
    sol = heun(
        method.rhs(ExactDenoiser(_data(), aug_dim), dtype=torch.float64), x0, karras(40, lo, hi)
    )
    ref = _mixture_draw(n, lo, aug_dim, seed=2)
    for direction in ([1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.8, -0.6]):
        u = torch.tensor(direction, dtype=torch.float64)
        assert stats.ks_2samp((sol.x @ u).numpy(), (ref @ u).numpy()).pvalue > P_MIN
    # The distance to the nearest data point scales with σ: sensitive to where the solve ends.
    p_dist = stats.ks_2samp(_dist_to_data(sol.x).numpy(), _dist_to_data(ref).numpy()).pvalue
    assert p_dist > P_MIN
    # Sampling error of the means/covariances at n = 8000 is ≈ 0.01.
    assert torch.allclose(sol.x.mean(0), ref.mean(0), atol=0.05)
    assert torch.allclose(sol.x.T.cov(), ref.T.cov(), atol=0.04)


# ---------------------------------------------------------------------------------------------
# (b) Change of variables: log p_{σ0}(x) = log p_{σ1}(x(σ1)) + ∫_{σ0}^{σ1} div_x v dσ.


def _augmented(denoiser: ExactDenoiser, aug_dim: float) -> Rhs:
    method = PFGMPP(aug_dim=aug_dim)
    rhs = method.rhs(denoiser, dtype=torch.float64)

    def f(state: Tensor, t: Tensor) -> Tensor:
        x = state[:, :2]
        div = velocity_divergence(x, denoiser.data, t, aug_dim)
        return torch.cat([rhs(x, t), div[:, None]], dim=1)

    return f


@pytest.mark.parametrize("aug_dim", [1.0, 128.0, math.inf])
def test_likelihood_by_change_of_variables(aug_dim: float) -> None:
    lo, hi = 0.2, 6.0
    x0 = _mixture_draw(16, lo, aug_dim, seed=3)
    state = torch.cat([x0, torch.zeros(16, 1, dtype=torch.float64)], dim=1)
    rhs = _augmented(ExactDenoiser(_data(), aug_dim), aug_dim)
    ts = torch.tensor([lo, hi], dtype=torch.float64)
    out = odeint(rhs, state, ts, method="dopri5", rtol=1e-10, atol=1e-10).x
    log_p = mixture_log_prob(out[:, :2], _data(), hi, aug_dim) + out[:, 2]
    want = mixture_log_prob(x0, _data(), lo, aug_dim)
    assert torch.allclose(log_p, want, atol=1e-4)


def test_pfgm_likelihood_against_poisson_prior() -> None:
    """Same with D = 1, r = z up to a large z_max, where the mixture is replaced by PFGM's prior."""
    lo, z_max = 0.2, 2000.0
    x0 = _mixture_draw(8, lo, 1.0, seed=4)
    state = torch.cat([x0, torch.zeros(8, 1, dtype=torch.float64)], dim=1)
    rhs = _augmented(ExactDenoiser(_data(), 1.0), 1.0)
    ts = torch.tensor([lo, z_max], dtype=torch.float64)
    out = odeint(rhs, state, ts, method="dopri5", rtol=1e-10, atol=1e-10).x
    method = PFGM(m=100.0, z_max=z_max, upper_norm=1e9, z_exp=0.0, prior_clip=False)
    log_p = method.log_prior(out[:, :2]) + out[:, 2]
    assert torch.allclose(log_p, mixture_log_prob(x0, _data(), lo, 1.0), atol=1e-3)
