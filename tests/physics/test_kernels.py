"""PFGM++ kernel: radius law, moments, normaliser, Gaussian limit, seeding (pfgmpp_ipfm.md §A2, §A3, §C).

Every expected value is re-derived here (scipy distributions, lgamma, quadrature), never taken from
the code under test.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate, stats

from pfgmctl.physics.kernels import chi2, clip_norm, log_kernel, sample_noise

P_MIN = 1e-3


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sq_norm(n: torch.Tensor) -> torch.Tensor:
    return n.flatten(1).square().sum(1)


def _log_sphere_area(n: int) -> float:
    """log |S^{n−1}| = log(2π^{n/2}/Γ(n/2)), the area of the unit sphere in R^n."""
    return math.log(2.0) + 0.5 * n * math.log(math.pi) - math.lgamma(n / 2)


def _gauss_log_density(v: torch.Tensor, sigma: float) -> torch.Tensor:
    n = v[0].numel()
    sq = v.flatten(1).double().square().sum(1)
    return -sq / (2 * sigma**2) - 0.5 * n * math.log(2 * math.pi * sigma**2)


# ---------------------------------------------------------------------------------------------
# Radius law: R²/r² ~ BetaPrime(N/2, D/2) with r = σ√D; D = inf: R²/σ² ~ χ²_N.


@pytest.mark.parametrize("aug_dim", [1.0, 3.0, 128.0, 2048.0, 2.5])
@pytest.mark.parametrize(("data_dim", "batch"), [(2, 20_000), (16, 20_000), (3072, 3_000)])
def test_radius_law_is_beta_prime(aug_dim: float, data_dim: int, batch: int) -> None:
    sigma = 0.7
    n = sample_noise((batch, data_dim), sigma, aug_dim, generator=_gen(11))
    t = (_sq_norm(n) / (sigma**2 * aug_dim)).numpy()
    p = stats.kstest(t, stats.betaprime(data_dim / 2, aug_dim / 2).cdf).pvalue
    assert p > P_MIN


@pytest.mark.parametrize("data_dim", [2, 16, 3072])
def test_radius_law_gaussian_limit(data_dim: int) -> None:
    sigma, batch = 1.7, 20_000 if data_dim < 100 else 3_000
    n = sample_noise((batch, data_dim), sigma, math.inf, generator=_gen(12))
    p = stats.kstest((_sq_norm(n) / sigma**2).numpy(), stats.chi2(data_dim).cdf).pvalue
    assert p > P_MIN


@pytest.mark.parametrize("aug_dim", [3.0, 128.0, math.inf])
def test_per_row_sigma_scales_each_row(aug_dim: float) -> None:
    batch, data_dim = 20_000, 4
    sigma = torch.exp(torch.randn(batch, generator=_gen(1), dtype=torch.float64))
    n = sample_noise((batch, data_dim), sigma, aug_dim, generator=_gen(13))
    if math.isinf(aug_dim):
        t, dist = _sq_norm(n) / sigma.square(), stats.chi2(data_dim)
    else:
        t, dist = (
            _sq_norm(n) / (sigma.square() * aug_dim),
            stats.betaprime(data_dim / 2, aug_dim / 2),
        )
    assert stats.kstest(t.numpy(), dist.cdf).pvalue > P_MIN


@pytest.mark.parametrize("aug_dim", [8.0, 128.0, 2048.0])
def test_second_moment(aug_dim: float) -> None:
    """E‖n‖² = σ²·N·D/(D − 2), tolerance from the sample standard error."""
    sigma, data_dim, batch = 0.3, 16, 40_000
    sq = _sq_norm(sample_noise((batch, data_dim), sigma, aug_dim, generator=_gen(14)))
    expected = sigma**2 * data_dim * aug_dim / (aug_dim - 2)
    stderr = float(sq.std()) / math.sqrt(batch)
    assert abs(float(sq.mean()) - expected) < 5 * stderr
    # The per-coordinate variance is σ²·D/(D−2) as well (isotropy).
    n = sample_noise((batch, data_dim), sigma, aug_dim, generator=_gen(15))
    var = n.square().mean(0) / (sigma**2 * aug_dim / (aug_dim - 2))
    assert torch.allclose(var, torch.ones_like(var), atol=0.06)


def test_direction_is_isotropic_and_independent_of_radius() -> None:
    batch, data_dim = 20_000, 3
    n = sample_noise((batch, data_dim), 1.0, 3.0, generator=_gen(16))
    radius = n.norm(dim=1)
    u = n / radius[:, None]
    assert u.mean(0).abs().max() < 5 / math.sqrt(batch)
    cov = u.T @ u / batch
    assert torch.allclose(cov, torch.eye(data_dim, dtype=torch.float64) / data_dim, atol=0.015)
    # One coordinate of a uniform direction on S² is U[−1, 1] (Archimedes), also for large radii.
    far = u[radius > radius.median(), 0].numpy()
    assert stats.kstest(far, stats.uniform(-1, 2).cdf).pvalue > P_MIN


def test_large_radius_concentration_matches_alignment() -> None:
    """R/(σ√N) → 1 with std ≈ √(1/2N + 1/2D) at N = 3072, D = 128 (§A2 moments table)."""
    data_dim, aug_dim, batch = 3072, 128.0, 2_000
    n = sample_noise((batch, data_dim), 1.0, aug_dim, generator=_gen(17))
    ratio = n.norm(dim=1) / math.sqrt(data_dim)
    assert abs(float(ratio.mean()) - 1.006) < 0.01
    assert float(ratio.std()) == pytest.approx(
        math.sqrt(1 / (2 * data_dim) + 1 / (2 * aug_dim)), rel=0.1
    )


# ---------------------------------------------------------------------------------------------
# Seeding, shape, dtype.


@pytest.mark.parametrize("aug_dim", [1.0, 2.5, 128.0, math.inf])
def test_same_seed_same_draw(aug_dim: float) -> None:
    shape = (5, 3, 4, 4)
    a = sample_noise(shape, 0.5, aug_dim, generator=_gen(3))
    b = sample_noise(shape, 0.5, aug_dim, generator=_gen(3))
    c = sample_noise(shape, 0.5, aug_dim, generator=_gen(4))
    assert a.shape == shape
    assert a.dtype == torch.float64
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_draw_ignores_global_rng() -> None:
    torch.manual_seed(0)
    a = sample_noise((4, 3), 1.0, 5.0, generator=_gen(9))
    torch.manual_seed(1)
    b = sample_noise((4, 3), 1.0, 5.0, generator=_gen(9))
    assert torch.equal(a, b)


@pytest.mark.parametrize("df", [2.5, 7.0, 300.0])
def test_chi2_law_and_seed(df: float) -> None:
    s = chi2(df, 20_000, generator=_gen(21), device=torch.device("cpu"))
    assert s.dtype == torch.float64
    assert s.shape == (20_000,)
    assert stats.kstest(s.numpy(), stats.chi2(df).cdf).pvalue > P_MIN
    again = chi2(df, 20_000, generator=_gen(21), device=torch.device("cpu"))
    assert torch.equal(s, again)


# ---------------------------------------------------------------------------------------------
# log_kernel: normalised density.


def _kernel_at_radius(radius: float, data_dim: int, sigma: float, aug_dim: float) -> float:
    v = torch.zeros(1, data_dim, dtype=torch.float64)
    v[0, 0] = radius
    return math.exp(float(log_kernel(v, sigma, aug_dim)[0]))


@pytest.mark.parametrize("aug_dim", [1.0, 2.5, 8.0, math.inf])
@pytest.mark.parametrize("data_dim", [1, 2])
def test_log_kernel_integrates_to_one(aug_dim: float, data_dim: int) -> None:
    """∫ k_r = |S^{N−1}| ∫₀^∞ R^{N−1} k_r(R) dR = 1 (N = 1: the 'sphere' is two points)."""
    sigma = 0.8
    area = math.exp(_log_sphere_area(data_dim))

    def radial(radius: float) -> float:
        return area * radius ** (data_dim - 1) * _kernel_at_radius(radius, data_dim, sigma, aug_dim)

    total = 0.0
    for lo, hi in [(0.0, sigma), (sigma, 10 * sigma), (10 * sigma, math.inf)]:
        total += integrate.quad(radial, lo, hi, epsabs=1e-11, epsrel=1e-10, limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("aug_dim", [1.0, 3.0, 128.0])
@pytest.mark.parametrize("data_dim", [2, 16, 3072])
def test_log_kernel_radial_density_is_beta_prime(aug_dim: float, data_dim: int) -> None:
    """Change of variables t = R²/r²: p_t(t) = |S^{N−1}| R^{N−1} k_r(R) · r/(2√t) (works at any N)."""
    sigma = 0.6
    r = sigma * math.sqrt(aug_dim)
    dist = stats.betaprime(data_dim / 2, aug_dim / 2)
    for t in dist.ppf([0.01, 0.3, 0.5, 0.9, 0.999]):
        radius = r * math.sqrt(t)
        v = torch.zeros(1, data_dim, dtype=torch.float64)
        v[0, -1] = radius
        log_pt = (
            float(log_kernel(v, sigma, aug_dim)[0])
            + _log_sphere_area(data_dim)
            + (data_dim - 1) * math.log(radius)
            + math.log(r / (2 * math.sqrt(t)))
        )
        assert log_pt == pytest.approx(float(dist.logpdf(t)), abs=1e-7)


def test_log_kernel_matches_hand_formula_with_row_sigma() -> None:
    gen = _gen(5)
    v = torch.randn(6, 2, 3, generator=gen, dtype=torch.float64)
    sigma = torch.rand(6, generator=gen, dtype=torch.float64) + 0.2
    aug_dim, data_dim = 2.5, 6
    got = log_kernel(v, sigma, aug_dim)
    for b in range(6):
        r2 = float(sigma[b]) ** 2 * aug_dim
        sq = float(v[b].square().sum())
        want = (
            math.lgamma((data_dim + aug_dim) / 2)
            - math.lgamma(aug_dim / 2)
            - 0.5 * data_dim * math.log(math.pi)
            + 0.5 * aug_dim * math.log(r2)
            - 0.5 * (data_dim + aug_dim) * math.log(sq + r2)
        )
        assert float(got[b]) == pytest.approx(want, abs=1e-10)


def test_log_kernel_inf_is_gaussian() -> None:
    v = torch.randn(7, 5, generator=_gen(6), dtype=torch.float64) * 2
    assert torch.allclose(log_kernel(v, 1.3, math.inf), _gauss_log_density(v, 1.3), atol=1e-12)


def test_log_kernel_converges_to_gaussian_for_large_d() -> None:
    v = torch.randn(7, 4, generator=_gen(7), dtype=torch.float64)
    want = _gauss_log_density(v, 0.9)
    errors = [float((log_kernel(v, 0.9, d) - want).abs().max()) for d in (1e2, 1e4, 1e6)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-4
    # The error is O(1/D).
    assert errors[1] / errors[2] == pytest.approx(100, rel=0.2)


# ---------------------------------------------------------------------------------------------
# clip_norm.


def test_clip_norm() -> None:
    x = torch.randn(50, 2, 3, generator=_gen(8), dtype=torch.float64) * 3
    norms = x.flatten(1).norm(dim=1)
    max_norm = float(norms.median())
    out, clipped = clip_norm(x, max_norm)
    assert torch.equal(clipped, norms > max_norm)
    out_norms = out.flatten(1).norm(dim=1)
    assert torch.allclose(out_norms[clipped], torch.full_like(out_norms[clipped], max_norm))
    assert torch.equal(out[~clipped], x[~clipped])
    # Directions are kept.
    cos = (out.flatten(1) * x.flatten(1)).sum(1) / (out_norms * norms)
    assert torch.allclose(cos, torch.ones_like(cos))
