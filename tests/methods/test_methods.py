"""PFGMPP and PFGM against independent re-derivations: loss, grid, prior, rhs, log_prior, progress."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from scipy import stats
from torch import Tensor, nn

from pfgmctl.methods import PFGM, PFGMPP, ExactDenoiser, ExactField
from pfgmctl.sampling import prior_for_seeds, sample

P_MIN = 1e-3
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pfgm(**kw: Any) -> PFGM:
    base: dict[str, Any] = {"m": 50.0, "z_max": 10.0, "upper_norm": 30.0, "z_exp": 1.0}
    base.update(kw)
    return PFGM(**base)


def _posterior_mean(x: Tensor, data: Tensor, scale: Tensor, aug_dim: float) -> Tensor:
    """E[y|x, r] by broadcasting; `scale` [B] is σ (r = σ√D), or z for D = 1 with scale = r."""
    d2 = (x.flatten(1)[:, None, :] - data.flatten(1)[None]).square().sum(-1)
    s2 = scale.double().square()[:, None]
    if math.isinf(aug_dim):
        logits = -d2 / (2 * s2)
    else:
        logits = -0.5 * (x[0].numel() + aug_dim) * torch.log(d2 + aug_dim * s2)
    return (torch.softmax(logits, 1) @ data.flatten(1).double()).reshape(x.shape)


class _Affine(nn.Module):
    """A deterministic fake denoiser D(x, σ) = 0.3·x + 0.1·σ, recording its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(
        self,
        x: Tensor,
        sigma: Tensor,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> Tensor:
        self.calls.append((x, sigma))
        return 0.3 * x + 0.1 * sigma.reshape(-1, *([1] * (x.ndim - 1)))


def _edm_weight(sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    return (sigma.square() + sigma_data**2) / (sigma * sigma_data).square()


# ---------------------------------------------------------------------------------------------
# PFGMPP loss.


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pfgmpp_inf_loss_is_edm(dtype: torch.dtype) -> None:
    y = torch.randn(6, 2, 3, generator=_gen(0)).to(dtype)
    out = PFGMPP(aug_dim=math.inf).loss(_Affine(), y, gen=_gen(1))
    # EDM (Karras et al. 2022, Eq. 8), draws in the order ln σ then n.
    g = _gen(1)
    sigma = (-1.2 + 1.2 * torch.randn(6, dtype=torch.float64, generator=g)).exp()
    noise = sigma[:, None, None] * torch.randn(6, 2, 3, dtype=torch.float64, generator=g)
    s = sigma.to(dtype)
    x = y + noise.to(dtype)
    denoised = 0.3 * x + 0.1 * s[:, None, None]
    want = _edm_weight(s) * (denoised - y).square().sum((1, 2))
    assert out.loss.shape == (6,)
    assert torch.allclose(out.loss, want, rtol=1e-5 if dtype == torch.float32 else 1e-12)
    assert torch.allclose(out.noise, sigma)


@pytest.mark.parametrize("aug_dim", [2.5, 128.0])
def test_pfgmpp_finite_d_loss_with_exact_denoiser(aug_dim: float) -> None:
    data = torch.randn(8, 3, generator=_gen(2), dtype=torch.float64)
    y = data[:5]
    out = PFGMPP(aug_dim=aug_dim).loss(ExactDenoiser(data, aug_dim), y, gen=_gen(3))
    # Student-t draw: ln σ, then g ~ N(0, I), then s ~ χ²_D = 2·Gamma(D/2); n = σ·g·√(D/s).
    g = _gen(3)
    sigma = (-1.2 + 1.2 * torch.randn(5, dtype=torch.float64, generator=g)).exp()
    gauss = torch.randn(5, 3, dtype=torch.float64, generator=g)
    s = 2 * torch._standard_gamma(torch.full((5,), aug_dim / 2, dtype=torch.float64), generator=g)
    x = y + (sigma * torch.sqrt(aug_dim / s))[:, None] * gauss
    want = _edm_weight(sigma) * (_posterior_mean(x, data, sigma, aug_dim) - y).square().sum(1)
    assert torch.allclose(out.loss, want, rtol=1e-10)


@pytest.mark.parametrize("aug_dim", [3.0, 128.0, math.inf])
def test_pfgmpp_training_noise_law(aug_dim: float) -> None:
    """Draw-order free: the net sees y + n with R²/(σ²D) ~ BetaPrime(N/2, D/2), ln σ ~ N(−1.2, 1.2²)."""
    model = _Affine()
    y = torch.randn(20_000, 4, generator=_gen(4), dtype=torch.float64)
    out = PFGMPP(aug_dim=aug_dim).loss(model, y, gen=_gen(5))
    x, sigma = model.calls[0]
    assert torch.equal(sigma, out.noise)
    assert stats.kstest(sigma.log().numpy(), stats.norm(-1.2, 1.2).cdf).pvalue > P_MIN
    sq = (x - y).square().sum(1) / sigma.square()
    dist = stats.chi2(4) if math.isinf(aug_dim) else stats.betaprime(2, aug_dim / 2)
    t = sq if math.isinf(aug_dim) else sq / aug_dim
    assert stats.kstest(t.numpy(), dist.cdf).pvalue > P_MIN
    want = _edm_weight(sigma) * (0.3 * x + 0.1 * sigma[:, None] - y).square().sum(1)
    assert torch.allclose(out.loss, want)


# ---------------------------------------------------------------------------------------------
# Grids, progress, physical time.


def test_pfgmpp_grid_is_edm_rho_grid() -> None:
    grid = PFGMPP().grid(18, device=CPU)
    hi, lo = 80.0 ** (1 / 7), 0.002 ** (1 / 7)
    want = [(hi + i / 17 * (lo - hi)) ** 7 for i in range(18)]
    assert grid.dtype == torch.float64
    assert grid.tolist() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("time_var", ["log_z", "z"])
def test_pfgm_grid_is_log_uniform_in_z(time_var: str) -> None:
    method = _pfgm(z_max=40.0, z_min=1e-3, time_var=time_var)
    grid = method.grid(10, device=CPU)
    z = grid.exp() if time_var == "log_z" else grid
    want = [40.0 * (1e-3 / 40.0) ** (i / 10) for i in range(11)]
    assert grid.dtype == torch.float64
    assert z.tolist() == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize(
    "method", [PFGMPP(aug_dim=128.0), PFGMPP(aug_dim=math.inf), _pfgm(), _pfgm(time_var="z")]
)
def test_progress_goes_zero_to_one_along_grid(method: PFGM | PFGMPP) -> None:
    grid = method.grid(12, device=CPU).tolist()
    prog = [method.progress(t) for t in grid]
    assert prog[0] == pytest.approx(0.0, abs=1e-12)
    assert prog[-1] == pytest.approx(1.0, abs=1e-12)
    assert all(a < b for a, b in itertools.pairwise(prog))
    # Log scale in the physical time: equal ratios give equal progress.
    key = "sigma" if isinstance(method, PFGMPP) else "z"
    phys = [method.physical(t)[key] for t in grid]
    mid = math.sqrt(phys[0] * phys[-1])
    t_mid = mid if (isinstance(method, PFGMPP) or method.time_var == "z") else math.log(mid)
    assert method.progress(t_mid) == pytest.approx(0.5, abs=1e-12)


def test_physical() -> None:
    assert PFGMPP(aug_dim=128.0).physical(0.5) == pytest.approx(
        {"sigma": 0.5, "r": 0.5 * math.sqrt(128)}
    )
    assert PFGMPP(aug_dim=math.inf).physical(0.5) == {"sigma": 0.5}
    assert _pfgm().physical(math.log(3.0)) == pytest.approx({"z": 3.0})
    assert _pfgm(time_var="z").physical(3.0) == {"z": 3.0}
    assert PFGMPP().progress(0.0) == 1.0


def test_noise_edges() -> None:
    edges = PFGMPP().noise_edges(8)
    assert len(edges) == 9
    assert all(a < b for a, b in itertools.pairwise(edges))
    probs = stats.norm(-1.2, 1.2).cdf([math.log(e) for e in edges[1:-1]])
    assert probs.tolist() == pytest.approx([k / 8 for k in range(1, 8)], abs=1e-9)
    pfgm_edges = _pfgm().noise_edges(5)
    assert len(pfgm_edges) == 6
    assert all(a < b for a, b in itertools.pairwise(pfgm_edges))


# ---------------------------------------------------------------------------------------------
# Priors and log_prior.


@pytest.mark.parametrize("data_dim", [2, 64])
def test_pfgm_prior_radius_law(data_dim: int) -> None:
    """R²/z_max² ~ BetaPrime(N/2, 1/2) on the z_max plane (pfgm.md §3)."""
    method = _pfgm(z_max=7.0, prior_clip=False)
    draw = method.prior(20_000, (data_dim,), gen=_gen(6), device=CPU)
    assert draw.x.dtype == torch.float64
    assert not bool(draw.clipped.any())
    t = (draw.x.square().sum(1) / 49.0).numpy()
    assert stats.kstest(t, stats.betaprime(data_dim / 2, 0.5).cdf).pvalue > P_MIN


def test_pfgmpp_prior_is_not_rescaled() -> None:
    """x ~ p_{r_max}(·|0) with r_max = σ_max√D: R²/r_max² ~ BetaPrime(N/2, D/2)."""
    draw = PFGMPP(aug_dim=16.0, sigma_max=5.0).prior(20_000, (3,), gen=_gen(7), device=CPU)
    t = (draw.x.square().sum(1) / (25.0 * 16)).numpy()
    assert stats.kstest(t, stats.betaprime(1.5, 8.0).cdf).pvalue > P_MIN


def test_prior_clip_clips_to_upper_norm_and_reports() -> None:
    data_dim, z_max = 2, 1.0
    tail = 0.3
    upper = z_max * math.sqrt(stats.betaprime(data_dim / 2, 0.5).isf(tail))
    clipped_m = _pfgm(z_max=z_max, upper_norm=upper, prior_clip=True)
    free_m = _pfgm(z_max=z_max, upper_norm=upper, prior_clip=False)
    n = 4000
    a = clipped_m.prior(n, (data_dim,), gen=_gen(8), device=CPU)
    b = free_m.prior(n, (data_dim,), gen=_gen(8), device=CPU)
    over = b.x.norm(dim=1) > upper
    assert torch.equal(a.clipped, over)
    assert float(over.double().mean()) == pytest.approx(
        tail, abs=4 * math.sqrt(tail * (1 - tail) / n)
    )
    assert torch.allclose(
        a.x[over].norm(dim=1), torch.full((int(over.sum()),), upper, dtype=torch.float64)
    )
    assert torch.allclose(a.x[over] / upper, b.x[over] / b.x[over].norm(dim=1, keepdim=True))
    assert torch.equal(a.x[~over], b.x[~over])
    # sample() reports the clipped share of its seeds.
    data = torch.randn(4, data_dim, generator=_gen(9), dtype=torch.float64)
    seeds = list(range(40))
    x0, _ = prior_for_seeds(free_m, seeds, (data_dim,), CPU)
    res = sample(
        clipped_m, ExactField(data, 5.0), seeds=seeds, shape=(data_dim,), solver="euler", steps=2
    )
    assert res.prior_clipped == pytest.approx(float((x0.norm(dim=1) > upper).double().mean()))


@pytest.mark.parametrize("shape", [(2,), (3,), (3, 4, 4), (3072,)])
def test_pfgm_log_prior(shape: tuple[int, ...]) -> None:
    """log p = log(2 z_max / S_N(1)) − (N+1)/2·log(‖x‖² + z_max²), S_N(1) = 2π^((N+1)/2)/Γ((N+1)/2)."""
    z_max = 40.0
    x = 30 * torch.randn(5, *shape, generator=_gen(10), dtype=torch.float64)
    n = math.prod(shape)
    log_area = math.log(2) + (n + 1) / 2 * math.log(math.pi) - math.lgamma((n + 1) / 2)
    sq = x.flatten(1).square().sum(1)
    want = math.log(2 * z_max) - log_area - (n + 1) / 2 * torch.log(sq + z_max**2)
    assert torch.allclose(_pfgm(z_max=z_max).log_prior(x), want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("aug_dim", [1.0, 128.0, math.inf])
def test_pfgmpp_log_prior(aug_dim: float) -> None:
    x = 80 * torch.randn(5, 3, generator=_gen(11), dtype=torch.float64)
    sq = x.square().sum(1)
    if math.isinf(aug_dim):
        want = -sq / (2 * 80.0**2) - 1.5 * math.log(2 * math.pi * 80.0**2)
    else:
        r2 = 80.0**2 * aug_dim
        want = (
            math.lgamma((3 + aug_dim) / 2)
            - math.lgamma(aug_dim / 2)
            - 1.5 * math.log(math.pi)
            + aug_dim / 2 * math.log(r2)
            - (3 + aug_dim) / 2 * torch.log(sq + r2)
        )
    assert torch.allclose(PFGMPP(aug_dim=aug_dim).log_prior(x), want, rtol=1e-12)


@pytest.mark.parametrize(
    "method", [PFGMPP(aug_dim=128.0), PFGMPP(aug_dim=math.inf), _pfgm(prior_clip=True)]
)
def test_prior_for_seeds_row_depends_only_on_its_seed(method: PFGM | PFGMPP) -> None:
    shape = (2, 3)
    a, _ = prior_for_seeds(method, [5, 1, 9, 2], shape, CPU)
    b, _ = prior_for_seeds(method, [2, 9], shape, CPU)
    c, _ = prior_for_seeds(method, [9], shape, CPU)
    assert a.shape == (4, 2, 3)
    assert torch.equal(a[2], b[1])
    assert torch.equal(a[2], c[0])
    assert torch.equal(a[3], b[0])
    assert not torch.equal(a[0], a[1])


# ---------------------------------------------------------------------------------------------
# rhs / finalize / NFE.


@pytest.mark.parametrize("aug_dim", [1.0, 128.0, math.inf])
def test_pfgmpp_rhs_is_edm_ode(aug_dim: float) -> None:
    data = torch.randn(6, 2, generator=_gen(12), dtype=torch.float64)
    x = 3 * torch.randn(5, 2, generator=_gen(13), dtype=torch.float64)
    method = PFGMPP(aug_dim=aug_dim)
    sigma = torch.tensor(1.7, dtype=torch.float64)
    got = method.rhs(ExactDenoiser(data, aug_dim), dtype=torch.float64)(x, sigma)
    want = (x - _posterior_mean(x, data, sigma.expand(5), aug_dim)) / 1.7
    assert torch.allclose(got, want, atol=1e-12)
    fin = method.finalize(ExactDenoiser(data, aug_dim), x, sigma, dtype=torch.float64)
    assert torch.allclose(fin, _posterior_mean(x, data, sigma.expand(5), aug_dim), atol=1e-12)
    assert method.final_nfe == 1


def test_rhs_runs_model_in_its_dtype_with_per_sample_time() -> None:
    model = _Affine()
    x = torch.randn(4, 3, generator=_gen(14), dtype=torch.float64)
    out = PFGMPP().rhs(model, dtype=torch.float32)(x, torch.tensor(2.0, dtype=torch.float64))
    xin, sig = model.calls[0]
    assert xin.dtype == torch.float32
    assert sig.shape == (4,)
    assert out.dtype == torch.float64
    assert torch.allclose(out, (x - (0.3 * x + 0.2)) / 2.0, atol=1e-6)


@pytest.mark.parametrize("time_var", ["log_z", "z"])
def test_pfgm_rhs_is_oracle_velocity(time_var: str) -> None:
    """dx/dz = f_x/f_z = (x − E[y|x, z])/z (D = 1, r = z); in ln z, dx/d ln z = z·dx/dz."""
    data = torch.randn(6, 3, generator=_gen(15), dtype=torch.float64)
    x = data[:4] + 0.5 * torch.randn(4, 3, generator=_gen(16), dtype=torch.float64)
    z = 0.8
    method = _pfgm(z_exp=0.0, time_var=time_var)
    t = torch.tensor(math.log(z) if time_var == "log_z" else z, dtype=torch.float64)
    got = method.rhs(ExactField(data, 5.0), dtype=torch.float64)(x, t)
    dxdz = (x - _posterior_mean(x, data, torch.full((4,), z, dtype=torch.float64), 1.0)) / z
    want = dxdz * z if time_var == "log_z" else dxdz
    assert torch.allclose(got, want, atol=1e-9)
    # With the z_exp substitution active the direction is unchanged to < 1% at small z.
    small = 1e-2
    t_small = torch.tensor(math.log(small), dtype=torch.float64)
    sub = _pfgm(z_exp=1.0).rhs(ExactField(data, 5.0), dtype=torch.float64)(x, t_small)
    exact = x - _posterior_mean(x, data, torch.full((4,), small, dtype=torch.float64), 1.0)
    assert torch.allclose(sub, exact, rtol=0.01, atol=1e-6)
    assert torch.equal(method.finalize(ExactField(data, 5.0), x, t, dtype=torch.float64), x)
    assert method.final_nfe == 0


@pytest.mark.parametrize(
    ("kind", "solver", "steps", "nfe"),
    [
        ("pfgmpp", "heun", 18, 35),
        ("pfgmpp", "euler", 18, 18),
        ("pfgm", "heun", 10, 20),
        ("pfgm", "euler", 10, 10),
    ],
)
def test_sample_nfe(kind: str, solver: str, steps: int, nfe: int) -> None:
    """pfgmpp: steps − 1 solver steps + 1 final denoiser call (EDM: 18 steps = 35 NFE); pfgm: no final call."""
    data = torch.randn(4, 2, generator=_gen(17), dtype=torch.float64)
    method = PFGMPP(aug_dim=128.0) if kind == "pfgmpp" else _pfgm(prior_clip=False)
    model = ExactDenoiser(data, 128.0) if kind == "pfgmpp" else ExactField(data, 5.0)
    res = sample(method, model, seeds=[0, 1, 2], shape=(2,), solver=solver, steps=steps)
    assert res.nfe == nfe
    assert res.x.shape == (3, 2)
    assert res.x.dtype == torch.float32
    assert res.prior_clipped == 0.0


# ---------------------------------------------------------------------------------------------
# PFGM loss.


class _FakeField(nn.Module):
    """(f_x, f_z) = (0.2·x, −0.5) recording (x, z)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(
        self, x: Tensor, z: Tensor, labels: Tensor | None = None, aug_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        self.calls.append((x, z))
        return 0.2 * x, torch.full_like(z, -0.5)


def _target_loop(x: Tensor, z: Tensor, charges: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    n_dim = x[0].numel()
    vx, vz = [], []
    for b in range(x.shape[0]):
        d2 = (x[b].flatten() - charges.flatten(1)).square().sum(1) + float(z[b]) ** 2
        w = torch.softmax(-0.5 * (n_dim + 1) * d2.log(), 0)
        d = torch.cat([w @ charges.flatten(1) - x[b].flatten(), -float(z[b]) * w.sum()[None]])
        v = math.sqrt(n_dim) * d / (d.norm() + gamma)
        vx.append(v[:n_dim].reshape(x[b].shape))
        vz.append(v[n_dim])
    return torch.stack(vx), torch.stack(vz)


@pytest.mark.parametrize("with_charges", [False, True])
def test_pfgm_loss_regresses_onto_empirical_field(with_charges: bool) -> None:
    y = torch.randn(5, 2, 2, generator=_gen(19), dtype=torch.float64)
    extra = torch.randn(7, 2, 2, generator=_gen(20), dtype=torch.float64)
    charges = torch.cat([y, extra]) if with_charges else None
    model = _FakeField()
    out = _pfgm(m=30.0).loss(model, y, gen=_gen(21), charges=charges)
    x, z = model.calls[0]
    assert torch.equal(z, out.noise)
    assert bool((z > 0).all())
    vx, vz = _target_loop(x, z, y if charges is None else charges, 5.0)
    want = 0.5 * ((0.2 * x - vx).square().flatten(1).sum(1) + (-0.5 - vz).square())
    assert torch.allclose(out.loss, want, atol=1e-10)
    assert _pfgm(n_charges=4096).rows_needed(128) == 4096
    assert _pfgm(n_charges=64).rows_needed(128) == 128
    assert PFGMPP().rows_needed(128) == 128
