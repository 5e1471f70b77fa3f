"""PFGM physics: perturbation law, empirical field target, z_exp rule, heuristics (pfgm.md §2, §4)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from pfgmctl.physics.field import (
    field_target,
    field_target_naive,
    heuristics,
    perturb,
    substitute_fz,
)

P_MIN = 1e-3


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# Perturbation (closed form: x = y + s·ε, ε ~ N(0, σ²I); z = s·|ε_z|; s = (1+τ)^m).
# With large N, ŝ = ‖x − y‖/(σ√N) recovers s to ~1/√(2N), so m̂ = ln ŝ / ln(1+τ) recovers m.

SIGMA, TAU, M_MAX, N_DIM, BATCH = 0.01, 1.0, 11.0, 1024, 4000


def _recover(restrict_m: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(m̂, |ε̂_z| = z/ŝ, z) from one perturbation of random data."""
    y = torch.randn(BATCH, N_DIM, generator=_gen(seed), dtype=torch.float64)
    x, z = perturb(
        y, sigma=SIGMA, tau=TAU, m_max=M_MAX, restrict_m=restrict_m, generator=_gen(seed + 1)
    )
    s_hat = (x - y).norm(dim=1) / (SIGMA * math.sqrt(N_DIM))
    return s_hat.log() / math.log1p(TAU), z / s_hat, z


def test_perturb_without_restriction() -> None:
    m_hat, eps_z, z = _recover(False, 0)
    assert bool((z > 0).all())
    # Support of the x-perturbation scale: s ∈ [1, (1+τ)^M] (up to the ~3% estimation noise).
    assert float(m_hat.min()) > -0.15
    assert float(m_hat.max()) < M_MAX + 0.15
    assert stats.kstest(m_hat.numpy(), stats.uniform(0, M_MAX).cdf).pvalue > P_MIN
    # The same s scales z: z/s is half-normal with scale σ.
    assert stats.kstest(eps_z.numpy(), stats.halfnorm(scale=SIGMA).cdf).pvalue > P_MIN


def test_perturb_restrict_m() -> None:
    """|ε_z| < σ/2 (probability 0.383) re-draws m ~ U[0, ⌊0.7M⌋] = U[0, 7] for M = 11."""
    m_hat, eps_z, _ = _recover(True, 2)
    ratio = eps_z / SIGMA
    small, large = ratio < 0.5, ratio >= 0.5
    p_small = 2 * stats.norm.cdf(0.5) - 1
    assert p_small == pytest.approx(0.383, abs=1e-3)
    assert float(small.double().mean()) == pytest.approx(p_small, abs=4 * math.sqrt(0.25 / BATCH))
    # Drop rows whose estimated |ε_z| is too close to the threshold to classify.
    keep = (ratio - 0.5).abs() > 0.05
    m_small = m_hat[small & keep].numpy()
    m_large = m_hat[large & keep].numpy()
    assert m_small.max() < 7 + 0.15
    assert stats.kstest(m_small, stats.uniform(0, 7).cdf).pvalue > P_MIN
    assert stats.kstest(m_large, stats.uniform(0, M_MAX).cdf).pvalue > P_MIN
    assert stats.kstest(eps_z.numpy(), stats.halfnorm(scale=SIGMA).cdf).pvalue > P_MIN


def test_perturb_x_noise_is_isotropic_gaussian_given_scale() -> None:
    """x − y = s·ε: per row, (x − y)/‖x − y‖·√N has N(0, 1) coordinates (pooled over rows)."""
    y = torch.zeros(200, 64, dtype=torch.float64)
    x, _ = perturb(y, sigma=SIGMA, tau=0.03, m_max=291.0, restrict_m=True, generator=_gen(4))
    unit = (x - y) / (x - y).norm(dim=1, keepdim=True) * math.sqrt(64)
    assert stats.kstest(unit.flatten().numpy(), stats.norm.cdf).pvalue > P_MIN


def test_perturb_reconstructs_from_draw_order() -> None:
    """Closed form, draws in the code's order: U(m), N(ε_z), U(m_small), N(ε_x), all float64."""
    y = torch.randn(7, 2, 3, generator=_gen(5))
    x, z = perturb(y, sigma=0.02, tau=0.03, m_max=100.0, restrict_m=True, generator=_gen(6))
    g = _gen(6)
    m = torch.rand(7, dtype=torch.float64, generator=g) * 100.0
    eps_z = 0.02 * torch.randn(7, dtype=torch.float64, generator=g)
    m_small = torch.rand(7, dtype=torch.float64, generator=g) * 70.0
    m = torch.where(eps_z.abs() < 0.01, m_small, m)
    eps_x = torch.randn(7, 2, 3, dtype=torch.float64, generator=g)
    s = 1.03**m
    assert torch.allclose(z, s * eps_z.abs(), rtol=1e-12)
    assert torch.allclose(x, (y.double() + 0.02 * s[:, None, None] * eps_x).float())


def test_perturb_dtype_shape_and_seed() -> None:
    y = torch.randn(5, 3, 4, 4, generator=_gen(7))
    x1, z1 = perturb(y, sigma=0.01, tau=0.03, m_max=50.0, restrict_m=True, generator=_gen(8))
    x2, z2 = perturb(y, sigma=0.01, tau=0.03, m_max=50.0, restrict_m=True, generator=_gen(8))
    assert x1.shape == y.shape
    assert x1.dtype == torch.float32
    assert z1.shape == (5,)
    assert z1.dtype == torch.float64
    assert torch.equal(x1, x2)
    assert torch.equal(z1, z2)


# ---------------------------------------------------------------------------------------------
# Empirical normalised field v = √N·D/(‖D‖ + γ), D = Σ_j w_j (ỹ_j − x̃), w_j ∝ ‖x̃ − ỹ_j‖^(−(N+1)).


def _field_loop(
    x: torch.Tensor, z: torch.Tensor, charges: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(v_x, v_z, E[y|x, z]) re-derived one row at a time in float64 log space."""
    x2, c2 = x.flatten(1).double(), charges.flatten(1).double()
    n_dim = x2.shape[1]
    vx, vz, mean = [], [], []
    for b in range(x2.shape[0]):
        zb = float(z[b])
        logs = torch.tensor(
            [-0.5 * (n_dim + 1) * math.log(float((x2[b] - c).square().sum()) + zb**2) for c in c2],
            dtype=torch.float64,
        )
        w = (logs - logs.max()).exp()
        w = w / w.sum()
        e = (w[:, None] * c2).sum(0)
        d = torch.cat([e - x2[b], torch.tensor([-zb * float(w.sum())], dtype=torch.float64)])
        v = math.sqrt(n_dim) * d / (float(d.norm()) + gamma)
        vx.append(v[:n_dim])
        vz.append(v[n_dim])
        mean.append(e)
    return torch.stack(vx).reshape(x.shape), torch.stack(vz), torch.stack(mean).reshape(x.shape)


def _field_setup(seed: int, batch: int = 5, n: int = 7, n_dim: int = 3) -> tuple[torch.Tensor, ...]:
    g = _gen(seed)
    charges = torch.randn(n, n_dim, generator=g, dtype=torch.float64)
    x = charges[torch.arange(batch) % n] + 0.5 * torch.randn(
        batch, n_dim, generator=g, dtype=torch.float64
    )
    z = torch.rand(batch, generator=g, dtype=torch.float64) * 2 + 0.05
    return x, z, charges


def test_field_target_equals_naive() -> None:
    x, z, charges = _field_setup(0)
    vx, vz = field_target(x, z, charges, gamma=5.0)
    nx, nz = field_target_naive(x, z, charges, gamma=5.0)
    assert torch.allclose(vx, nx, atol=1e-6)
    assert torch.allclose(vz, nz, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 5.0])
def test_field_target_matches_hand_derivation(gamma: float) -> None:
    x, z, charges = _field_setup(1, batch=6, n=9, n_dim=4)
    vx, vz = field_target(x, z, charges, gamma=gamma)
    wx, wz, _ = _field_loop(x, z, charges, gamma)
    assert torch.allclose(vx, wx, atol=1e-10)
    assert torch.allclose(vz, wz, atol=1e-10)
    if gamma == 0.0:  # far field: ‖v‖ = √N exactly
        norm = torch.sqrt(vx.square().sum(1) + vz.square())
        assert torch.allclose(norm, torch.full_like(norm, 2.0))


def test_field_direction_is_oracle_velocity() -> None:
    """v_x / v_z = dx/dz = (x − E[y|x, z])/z with D = 1 weights (pfgmpp_ipfm.md §C test 4)."""
    x, z, charges = _field_setup(2, batch=8, n=5, n_dim=3)
    vx, vz = field_target(x, z, charges, gamma=5.0)
    _, _, mean = _field_loop(x, z, charges, 5.0)
    assert torch.allclose(vx / vz[:, None], (x - mean) / z[:, None], atol=1e-9)
    assert bool((vz < 0).all())


def test_field_target_image_shape_and_dtype() -> None:
    g = _gen(3)
    charges = torch.randn(6, 2, 3, 3, generator=g)
    x = torch.randn(4, 2, 3, 3, generator=g)
    z = torch.rand(4, generator=g, dtype=torch.float64) + 0.1
    vx, vz = field_target(x, z, charges, gamma=5.0)
    assert vx.shape == x.shape
    assert vz.shape == (4,)
    assert vx.dtype == vz.dtype == torch.float32
    wx, wz, _ = _field_loop(x, z, charges, 5.0)
    assert torch.allclose(vx.double(), wx, atol=1e-5)
    assert torch.allclose(vz.double(), wz, atol=1e-5)


def test_field_target_cifar_sized_runs() -> None:
    """N = 3072, B = 8, n = 64: finite, bounded by √N, matches the loop (d² in float64)."""
    g = _gen(4)
    charges = torch.rand(64, 3, 32, 32, generator=g) * 2 - 1
    x = charges[:8] + 0.05 * torch.randn(8, 3, 32, 32, generator=g)
    z = torch.full((8,), 0.5, dtype=torch.float64)
    vx, vz = field_target(x, z, charges, gamma=5.0)
    assert bool(torch.isfinite(vx).all())
    assert bool(torch.isfinite(vz).all())
    norm = torch.sqrt(vx.double().flatten(1).square().sum(1) + vz.double().square())
    assert bool((norm < math.sqrt(3072)).all())
    wx, wz, _ = _field_loop(x, z, charges, 5.0)
    assert torch.allclose(vx.double(), wx, atol=1e-4)
    assert torch.allclose(vz.double(), wz, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# z_exp substitution.


@pytest.mark.parametrize("z_val", [1e-3, 1e-2, 0.1])
def test_substitute_fz_recovers_true_z_component(z_val: float) -> None:
    g = _gen(5)
    charges = torch.randn(64, 16, generator=g, dtype=torch.float64) * 0.5
    x = charges[:10] + 0.3 * torch.randn(10, 16, generator=g, dtype=torch.float64)
    z = torch.full((10,), z_val, dtype=torch.float64)
    vx, vz, _ = _field_loop(x, z, charges, 5.0)
    junk = torch.full_like(vz, 123.0)
    fz, clamped = substitute_fz(vx, junk, z, z_exp=5.0, gamma=5.0)
    assert not bool(clamped.any())
    assert torch.allclose(fz, vz, rtol=0.01, atol=0)


def test_substitute_fz_only_below_z_exp() -> None:
    f_x = torch.full((4, 9), 0.5, dtype=torch.float64)
    f_z = torch.tensor([-1.0, -2.0, -3.0, -4.0], dtype=torch.float64)
    z = torch.tensor([0.5, 2.0, 4.9, 5.0], dtype=torch.float64)
    out, _ = substitute_fz(f_x, f_z, z, z_exp=3.0, gamma=5.0)
    # a = 0.5 → ‖D_x‖ = γ; f_z = −3·z/(√(25 + z²) + 5).
    want0 = -3 * 0.5 / (math.sqrt(25 + 0.25) + 5)
    want1 = -3 * 2.0 / (math.sqrt(25 + 4) + 5)
    assert torch.allclose(out, torch.tensor([want0, want1, -3.0, -4.0], dtype=torch.float64))
    for z_exp, gamma in [(0.0, 5.0), (3.0, 0.0)]:
        same, flags = substitute_fz(f_x, f_z, z, z_exp=z_exp, gamma=gamma)
        assert torch.equal(same, f_z)
        assert not bool(flags.any())


def test_substitute_fz_clamps_a_at_one() -> None:
    f_x = torch.tensor([[2.0, 2.0], [0.1, 0.1]], dtype=torch.float64)  # a = 2 (invalid), 0.1
    out, clamped = substitute_fz(
        f_x, torch.zeros(2, dtype=torch.float64), torch.tensor([0.1, 0.1]), z_exp=1.0, gamma=5.0
    )
    assert clamped.tolist() == [True, False]
    assert bool(torch.isfinite(out).all())
    assert bool((out < 0).all())


# ---------------------------------------------------------------------------------------------
# Heuristics (pfgm.md §2.6).


def test_heuristics_cifar() -> None:
    h = heuristics(32.0, 3072, sigma=0.01, tau=0.03)
    assert h.m == 291
    assert h.z_max == pytest.approx(43.4, rel=0.01)
    assert h.upper_norm == pytest.approx(3015, rel=0.01)


@pytest.mark.parametrize(("mean_norm", "data_dim", "m"), [(46.0, 12288, 291), (330.0, 196608, 356)])
def test_heuristics_other_datasets(mean_norm: float, data_dim: int, m: int) -> None:
    h = heuristics(mean_norm, data_dim, sigma=0.01, tau=0.03)
    assert h.m == m
    growth = 1.03**m
    assert h.z_max == pytest.approx(math.sqrt(2 / math.pi) * 0.01 * growth, rel=1e-12)
    assert h.upper_norm == pytest.approx(math.sqrt(data_dim) * 0.01 * growth, rel=1e-12)


def test_heuristics_keep_given_m() -> None:
    h = heuristics(32.0, 3072, sigma=0.01, tau=0.03, m=100)
    assert h.m == 100
    assert h.z_max == pytest.approx(math.sqrt(2 / math.pi) * 0.01 * 1.03**100, rel=1e-12)
