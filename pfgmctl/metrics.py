"""Sample-quality metrics that need no download (ecosystem.md §4).

All functions take two samples [n, ...] (flattened to rows), compute in float64 on the inputs'
device and return Python floats. Pairwise sums are chunked, so memory stays O(chunk · m).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

CHUNK = 2048
"""Rows per block of a pairwise-distance computation."""


def _rows(x: Tensor) -> Tensor:
    """[n, ...] → float64 [n, d]."""
    return x.flatten(1).to(torch.float64)


def _check_dims(x: Tensor, y: Tensor) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"samples must have equal row sizes, got {x.shape[1]} and {y.shape[1]}")


def sliced_wasserstein(
    x: Tensor, y: Tensor, *, projections: int = 256, p: int = 1, gen: torch.Generator | None = None
) -> float:
    """Sliced p-Wasserstein distance between two equal-size samples [n, ...] (Rabin et al. 2011).

    Mean over `projections` random unit directions of W_p between the sorted 1-D projections,
    returned as (mean_k W_p^p)^(1/p). Directions come from `gen` (seed 0 when None).
    """
    x2, y2 = x.flatten(1).double(), y.flatten(1).double()
    if x2.shape != y2.shape:
        raise ValueError(
            f"samples must have equal shapes, got {tuple(x2.shape)} and {tuple(y2.shape)}"
        )
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    dirs = torch.randn(x2.shape[1], projections, dtype=torch.float64, generator=gen)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    px, py = (x2 @ dirs).sort(dim=0).values, (y2 @ dirs).sort(dim=0).values
    return float((px - py).abs().pow(p).mean() ** (1 / p))


def _mean_dist(a: Tensor, b: Tensor) -> float:
    """Mean Euclidean distance over all n·m pairs (V-statistic), chunked."""
    total = 0.0
    for i in range(0, len(a), CHUNK):
        total += float(torch.cdist(a[i : i + CHUNK], b).sum())
    return total / (len(a) * len(b))


def energy_distance(x: Tensor, y: Tensor) -> float:
    """√(2E‖X−Y‖ − E‖X−X′‖ − E‖Y−Y′‖) with V-statistics (Székely & Rizzo 2013; scipy's 1-D form)."""
    a, b = _rows(x), _rows(y)
    _check_dims(a, b)
    d2 = 2 * _mean_dist(a, b) - _mean_dist(a, a) - _mean_dist(b, b)
    return math.sqrt(max(d2, 0.0))


def poly_kernel(a: Tensor, b: Tensor) -> Tensor:
    """KID's cubic kernel k(x, y) = (xᵀy/d + 1)³ (Bińkowski et al. 2018, Eq. 4)."""
    return (a @ b.T / a.shape[1] + 1).pow(3)


def mmd2_unbiased(
    x: Tensor, y: Tensor, kernel: Callable[[Tensor, Tensor], Tensor] = poly_kernel
) -> float:
    """Unbiased MMD² = mean_{i≠j} k(x_i,x_j) + mean_{i≠j} k(y_i,y_j) − 2 mean k(x_i,y_j) (Gretton et al. 2012, Eq. 3)."""
    a, b = _rows(x), _rows(y)
    _check_dims(a, b)
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        raise ValueError("MMD² needs at least 2 rows per sample")
    kxx, kyy, kxy = kernel(a, a), kernel(b, b), kernel(a, b)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2 * kxy.mean())


@dataclass(frozen=True)
class KID:
    """Mean and standard deviation of unbiased MMD² over disjoint subsets, and their standard error."""

    mean: float
    std: float
    subsets: int

    @property
    def se(self) -> float:
        """Standard error of the mean (subsets are disjoint, hence independent)."""
        return self.std / math.sqrt(self.subsets) if self.subsets > 1 else math.inf


def kid(
    x: Tensor,
    y: Tensor,
    *,
    subset_size: int = 1000,
    subsets: int = 100,
    gen: torch.Generator | None = None,
) -> KID:
    """KID: polynomial-kernel MMD² over up to `subsets` disjoint random subsets (Bińkowski et al. 2018)."""
    size = min(subset_size, len(x), len(y))
    k = max(min(subsets, len(x) // size, len(y) // size), 1)
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    px, py = torch.randperm(len(x), generator=gen), torch.randperm(len(y), generator=gen)
    vals = [
        mmd2_unbiased(x[px[i * size : (i + 1) * size]], y[py[i * size : (i + 1) * size]])
        for i in range(k)
    ]
    t = torch.tensor(vals, dtype=torch.float64)
    std = float(t.std()) if k > 1 else 0.0
    return KID(float(t.mean()), std, k)


def nn1_accuracy(x: Tensor, y: Tensor) -> float:
    """Leave-one-out 1-NN two-sample accuracy on x ∪ y; 0.5 = indistinguishable (Lopez-Paz & Oquab 2017)."""
    a, b = _rows(x), _rows(y)
    _check_dims(a, b)
    pooled = torch.cat([a, b])
    labels = torch.cat([torch.zeros(len(a)), torch.ones(len(b))]).to(pooled.device)
    correct = 0
    for i in range(0, len(pooled), CHUNK):
        d = torch.cdist(pooled[i : i + CHUNK], pooled)
        rows = torch.arange(i, min(i + CHUNK, len(pooled)), device=pooled.device)
        d[rows - i, rows] = math.inf
        nearest = d.argmin(dim=1)
        correct += int((labels[nearest] == labels[rows]).sum())
    return correct / len(pooled)


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean [d] and unbiased covariance [d, d] of feature rows, float64."""
    f = _rows(features)
    if len(f) < 2:
        raise ValueError("Fréchet distance needs at least 2 rows")
    return f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """‖μ₁−μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}) (Dowson & Landau 1982; FID, Heusel et al. 2017, Eq. 6).

    tr((Σ₁Σ₂)^{1/2}) = Σ √λ_i(Σ₁Σ₂): the eigenvalues of a product of PSD matrices are real and ≥ 0.
    """
    eig = torch.linalg.eigvals(cov1 @ cov2).real.clamp_min(0)
    value = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * eig.sqrt().sum()
    return float(value.clamp_min(0))


def frechet_from_features(f1: Tensor, f2: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature samples."""
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


MetricFn = Callable[[Tensor, Tensor], float]


def _kid_mean(x: Tensor, y: Tensor) -> float:
    return kid(x, y, subset_size=min(1000, len(x), len(y)), subsets=10).mean


def _fd_digits(x: Tensor, y: Tensor) -> float:
    from pfgmctl.evaluate import fd_digits

    return fd_digits(x, y)


METRICS: dict[str, MetricFn] = {
    "swd": sliced_wasserstein,
    "energy": energy_distance,
    "mmd": mmd2_unbiased,
    "kid": _kid_mean,
    "nn1": nn1_accuracy,
    "fd_digits": _fd_digits,
}
"""Metric name → fn(samples, reference) → float; lower is better except nn1 (best at 0.5)."""


def metric_fn(name: str) -> MetricFn:
    """Look up a metric by name; raise ValueError naming the choices."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}")
    return METRICS[name]
