"""Built-in 2-D toys: shape, dtype, scale, seeding, and toy data sets via build_dataset."""

from __future__ import annotations

import pytest
import torch

from pfgmctl.config.schema import ToyData
from pfgmctl.data import build_dataset, mean_norm
from pfgmctl.data.toy2d import TOYS, toy
from pfgmctl.errors import DataError

REQUIRED = {
    "8gaussians",
    "checkerboard",
    "moons",
    "swissroll",
    "rings",
    "heart",
    "pfgm",
    "pinwheel",
    "circles",
    "spirals",
}


def _draw(name: str, n: int, seed: int) -> torch.Tensor:
    return TOYS[name](n, torch.Generator().manual_seed(seed))


def test_required_toys_exist() -> None:
    assert set(TOYS) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_toy_shape_dtype_scale(name: str) -> None:
    x = _draw(name, 4000, 0)
    assert x.shape == (4000, 2)
    assert x.dtype == torch.float32
    assert bool(torch.isfinite(x).all())
    std, mean = x.std(0), x.mean(0)
    assert bool(((std > 0.4) & (std < 1.2)).all()), std
    assert bool((mean.abs() < 0.15).all()), mean


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_toy_seeded_only_by_generator(name: str) -> None:
    before = torch.get_rng_state()
    a, b, c = _draw(name, 257, 1), _draw(name, 257, 1), _draw(name, 257, 2)
    assert torch.equal(torch.get_rng_state(), before)  # global RNG untouched
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("n", [1, 7])
def test_toy_small_n(n: int) -> None:
    for name in REQUIRED:
        assert _draw(name, n, 0).shape == (n, 2)


def test_unknown_toy_lists_names() -> None:
    with pytest.raises(DataError) as info:
        toy("nope", 10, torch.Generator().manual_seed(0))
    msg = str(info.value)
    assert "'nope'" in msg
    assert "checkerboard" in msg
    assert "pfgm" in msg


def test_pfgm_has_four_letters() -> None:
    x = _draw("pfgm", 20000, 0)
    lo, hi = x[:, 0].min(), x[:, 0].max()
    counts = torch.histc(x[:, 0], bins=80, min=float(lo), max=float(hi))
    filled = (counts > 10).int().tolist()  # ignore the far tails of the jitter
    runs = sum(1 for i, f in enumerate(filled) if f and (i == 0 or not filled[i - 1]))
    assert runs == 4  # four letters separated by three empty gaps
    assert x[:, 0].std() > 1.5 * x[:, 1].std()  # a word is wider than tall


def test_checkerboard_avoids_light_squares() -> None:
    x = _draw("checkerboard", 5000, 0) / 0.6
    cell = torch.floor(x).long()
    even = ((cell[:, 0] + cell[:, 1]) % 2 == 0).double().mean()
    assert even > 0.999


def test_build_toy_dataset() -> None:
    cfg = ToyData(name="moons", n=300, seed=3, holdout=0.1, scale=2.0, shift=1.0)
    ds = build_dataset(cfg)
    assert ds.name == "toy:moons"
    assert ds.train.shape == (270, 2)
    assert ds.holdout.shape == (30, 2)
    assert ds.item_shape == (2,)
    assert ds.data_dim == 2
    raw = _draw("moons", 300, 3) * 2.0 + 1.0
    both = torch.cat([ds.train, ds.holdout])
    assert torch.equal(both.sort(0).values, raw.sort(0).values)
    again = build_dataset(cfg)
    assert torch.equal(again.train, ds.train)
    assert torch.equal(again.holdout, ds.holdout)


def test_build_toy_zero_holdout_keeps_order() -> None:
    ds = build_dataset(ToyData(name="rings", n=50, seed=0))
    assert torch.equal(ds.train, _draw("rings", 50, 0))
    assert ds.holdout.shape == (0, 2)


def test_build_toy_unknown_name() -> None:
    with pytest.raises(DataError, match="unknown toy"):
        build_dataset(ToyData(name="nope", n=10))


def test_mean_norm_matches_numpy() -> None:
    x = torch.randn(64, 3, 4, generator=torch.Generator().manual_seed(0))
    expected = x.double().reshape(64, -1).pow(2).sum(1).sqrt().mean().item()
    assert mean_norm(x) == pytest.approx(expected, rel=1e-12)
    assert mean_norm(torch.tensor([[3.0, 4.0], [0.0, 1.0]])) == pytest.approx(3.0)
