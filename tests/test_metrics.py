"""Metrics against independent oracles (scipy) and their statistical behaviour."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from pfgmctl.metrics import (
    energy_distance,
    frechet_distance,
    frechet_from_features,
    kid,
    metric_fn,
    mmd2_unbiased,
    nn1_accuracy,
    sliced_wasserstein,
)


def test_swd_in_1d_equals_scipy_wasserstein() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 1, generator=gen), 0.5 + 2 * torch.rand(300, 1, generator=gen)
    want = stats.wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy())
    assert sliced_wasserstein(x, y, projections=4) == pytest.approx(want, rel=1e-9)


def test_energy_distance_in_1d_equals_scipy() -> None:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 1, generator=gen), 0.3 + torch.randn(150, 1, generator=gen) * 1.5
    want = stats.energy_distance(x[:, 0].numpy(), y[:, 0].numpy())
    assert energy_distance(x, y) == pytest.approx(want, rel=1e-9)


def test_energy_distance_chunking_matches_small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(100, 3, generator=gen), torch.randn(90, 3, generator=gen) + 0.2
    full = energy_distance(x, y)
    monkeypatch.setattr("pfgmctl.metrics.CHUNK", 7)
    assert energy_distance(x, y) == pytest.approx(full, rel=1e-12)
    assert energy_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_mmd2_unbiased_matches_a_direct_double_loop() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(12, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(9, 2, generator=gen, dtype=torch.float64)
    k = lambda a, b: (float(a @ b) / 2 + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(12) for j in range(12) if i != j) / (12 * 11)
    yy = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    xy = sum(k(x[i], y[j]) for i in range(12) for j in range(9)) / (12 * 9)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)


def test_kid_is_zero_within_se_for_one_distribution_and_positive_when_shifted() -> None:
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(4000, 8, generator=gen), torch.randn(4000, 8, generator=gen)
    same = kid(x, y, subset_size=200, subsets=20, gen=torch.Generator().manual_seed(0))
    assert same.subsets == 20
    assert abs(same.mean) < 3 * same.se
    shifted = kid(x, y + 0.5, subset_size=200, subsets=20, gen=torch.Generator().manual_seed(0))
    assert shifted.mean > 10 * shifted.se
    assert shifted.mean > 10 * abs(same.mean)


def test_nn1_accuracy_half_for_identical_and_one_for_separated() -> None:
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(800, 2, generator=gen), torch.randn(800, 2, generator=gen)
    acc = nn1_accuracy(x, y)
    assert abs(acc - 0.5) < 0.05  # sd of the LOO accuracy is ≈ 0.0125 here
    assert nn1_accuracy(x, y + 20) == 1.0


def test_nn1_accuracy_chunked_equals_unchunked(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(6)
    x, y = torch.randn(60, 3, generator=gen), torch.randn(50, 3, generator=gen) + 0.5
    full = nn1_accuracy(x, y)
    monkeypatch.setattr("pfgmctl.metrics.CHUNK", 11)
    assert nn1_accuracy(x, y) == full


def test_frechet_distance_of_gaussians_closed_form() -> None:
    # Commuting (diagonal) covariances: tr(Σ1 + Σ2 − 2(Σ1Σ2)^½) = Σ (√a_i − √b_i)².
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 9.0])
    mu1, mu2 = torch.zeros(3, dtype=torch.float64), torch.tensor([1.0, 0, 2], dtype=torch.float64)
    got = frechet_distance(mu1, torch.diag(a).double(), mu2, torch.diag(b).double())
    want = 5.0 + float(((a.sqrt() - b.sqrt()) ** 2).sum())
    assert got == pytest.approx(want, rel=1e-9)


def test_frechet_from_features_small_for_one_distribution() -> None:
    gen = torch.Generator().manual_seed(7)
    x, y = torch.randn(5000, 4, generator=gen), torch.randn(5000, 4, generator=gen)
    assert frechet_from_features(x, y) < 0.02
    assert frechet_from_features(x, y + 1) == pytest.approx(4.0, abs=0.1)


def test_metric_lookup_and_size_errors() -> None:
    assert metric_fn("swd") is sliced_wasserstein
    with pytest.raises(ValueError, match="unknown metric"):
        metric_fn("fidd")
    with pytest.raises(ValueError, match="equal row sizes"):
        energy_distance(torch.zeros(3, 2), torch.zeros(3, 3))
    assert math.isfinite(metric_fn("kid")(torch.ones(10, 2), torch.zeros(10, 2)))
