"""FD-digits classifier (deterministic, cached) and the optional FID path's messages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("sklearn")

from pfgmctl import evaluate
from pfgmctl.errors import PfgmctlError


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache dir for this module, so the classifier is trained once or twice, not per test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def cache_home(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared_cache))
    return shared_cache


def test_classifier_is_accurate_and_cached(cache_home: Path) -> None:
    net = evaluate.digits_classifier()
    path = evaluate.classifier_path()
    assert path.is_file()
    assert cache_home in path.parents
    _, _, x_test, y_test = evaluate.digits_split()
    with torch.no_grad():
        acc = float((net(x_test).argmax(1) == y_test).float().mean())
    assert acc > 0.9
    mtime = path.stat().st_mtime_ns
    assert torch.equal(evaluate.digits_classifier().head.weight, net.head.weight)
    assert path.stat().st_mtime_ns == mtime  # loaded, not retrained


@pytest.mark.slow
def test_classifier_training_is_deterministic_and_survives_a_corrupt_cache() -> None:
    net = evaluate.digits_classifier()
    path = evaluate.classifier_path()
    path.unlink()
    again = evaluate.digits_classifier()  # retrained from scratch: same weights
    for (k, v), (_, w) in zip(net.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(v, w), k
    path.write_bytes(b"corrupt")
    assert torch.equal(evaluate.digits_classifier().head.weight, net.head.weight)


def test_fd_digits_orders_real_blurred_and_noise() -> None:
    x_train, _, x_test, _ = evaluate.digits_split()
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(x_test.shape, generator=gen) * 2 - 1
    real = evaluate.fd_digits(x_test, x_train)
    mixed = evaluate.fd_digits(0.5 * x_test + 0.5 * noise, x_train)
    assert real < mixed < evaluate.fd_digits(noise, x_train)
    with pytest.raises(PfgmctlError, match="8×8"):
        evaluate.fd_digits(torch.zeros(10, 2), x_train)


def test_class_stats_on_real_digits() -> None:
    _, _, x_test, _ = evaluate.digits_split()
    stats = evaluate.digits_class_stats(x_test)
    assert stats["classes"] == 10
    assert stats["entropy"] > 2.2  # ln 10 = 2.30 for balanced classes
    assert 0.8 < stats["confidence"] <= 1.0


def test_fid_without_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PfgmctlError, match=r"optional 'fid' extra.*pfgmctl\[fid\]"):
        evaluate.fid(torch.zeros(4, 1, 8, 8), torch.zeros(4, 1, 8, 8))


def test_fid_without_weights_never_downloads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.delenv(evaluate.INCEPTION_ENV, raising=False)
    with pytest.raises(PfgmctlError, match="--inception-weights PATH or set PFGMCTL_INCEPTION"):
        evaluate.inception_weights(None)
    monkeypatch.setenv(evaluate.INCEPTION_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(PfgmctlError, match=r"missing\.pth: no such file"):
        evaluate.inception_weights(None)
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    assert evaluate.inception_weights(weights) == weights
