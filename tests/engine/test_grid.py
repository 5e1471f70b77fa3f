"""Pictures: uint8 mapping, grid layout, scatter plots and PNG text metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pfgmctl.engine.grid import (
    image_grid,
    robust_bounds,
    samples_picture,
    save_png,
    scatter_png,
    to_uint8,
)

WHITE = (255, 255, 255)


def test_to_uint8() -> None:
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0, -1.0 + 1 / 127.5])
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255, 1]
    assert to_uint8(x).dtype == torch.uint8


def test_image_grid_rgb_layout() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 4, 6, generator=gen) * 2 - 1
    img = image_grid(x, pad=1)
    assert img.mode == "RGB"
    assert img.size == (3 * 7 + 1, 2 * 5 + 1)  # 3 per row, 2 rows
    arr = np.asarray(img)
    # Image 4 (row 1, col 1) sits at top = 1 + 5, left = 1 + 7.
    expect = to_uint8(x[4]).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(arr[6:10, 8:14], expect)
    assert (arr[0] == 255).all()  # padding
    assert (arr[6:10, 15:21] == 255).all()  # empty slot


def test_image_grid_gray_and_nrow() -> None:
    x = torch.zeros(4, 1, 8, 8)
    img = image_grid(x, nrow=4, pad=0)
    assert img.mode == "L"
    assert img.size == (32, 8)
    assert set(np.asarray(img).ravel().tolist()) == {128}
    with pytest.raises(ValueError, match="image_grid"):
        image_grid(torch.zeros(2, 2, 4, 4))


def test_robust_bounds_equal_aspect() -> None:
    gen = torch.Generator().manual_seed(1)
    pts = torch.randn(2000, 2, generator=gen) * torch.tensor([1.0, 0.2])
    pts[0] = torch.tensor([1e6, -1e6])  # one outlier is ignored
    x0, x1, y0, y1 = robust_bounds(pts)
    assert x1 - x0 == pytest.approx(y1 - y0)
    assert 5.0 < x1 - x0 < 8.0  # 99% range of N(0, 1) is ~5.15, padded by 20%
    assert robust_bounds(torch.ones(3, 2)) == (0.0, 2.0, 0.0, 2.0)


def test_scatter_png_draws_points_and_ref() -> None:
    pts = torch.tensor([[0.0, 0.0], [5.0, 5.0]])  # second point is outside the bounds
    ref = torch.tensor([[-0.5, 0.5]])
    img = scatter_png(pts, size=101, ref=ref, bounds=(-1.0, 1.0, -1.0, 1.0))
    assert img.mode == "RGB"
    assert img.size == (101, 101)
    arr = np.asarray(img)
    centre = tuple(arr[50, 50].tolist())
    assert centre not in (WHITE,)  # the point at the origin
    ref_px = tuple(arr[25, 25].tolist())  # y axis up: y=0.5 is the upper half
    assert ref_px != WHITE
    assert ref_px != centre
    assert tuple(arr[75, 75].tolist()) == WHITE
    assert tuple(arr[0, 50].tolist()) != WHITE  # frame
    assert (arr[2:-2, 2:-2] != 255).any(axis=2).sum() == 2 * 9  # two 3x3 dots, nothing else
    again = np.asarray(scatter_png(pts, size=101, ref=ref, bounds=(-1.0, 1.0, -1.0, 1.0)))
    np.testing.assert_array_equal(arr, again)


def test_samples_picture_dispatch() -> None:
    gen = torch.Generator().manual_seed(2)
    assert samples_picture(torch.randn(50, 2, generator=gen)).size == (512, 512)
    assert samples_picture(torch.randn(50, 5, generator=gen)).size == (512, 512)
    ref = torch.randn(100, 5, generator=gen)
    assert samples_picture(torch.randn(50, 5, generator=gen), ref=ref).mode == "RGB"
    assert samples_picture(torch.zeros(4, 1, 8, 8)).mode == "L"
    with pytest.raises(ValueError, match="cannot draw"):
        samples_picture(torch.zeros(4, 2, 8, 8))
    with pytest.raises(ValueError, match="cannot draw"):
        samples_picture(torch.zeros(4, 1))


def test_save_png_metadata_round_trip(tmp_path: Path) -> None:
    img = image_grid(torch.zeros(4, 3, 8, 8))
    path = tmp_path / "samples" / "000640.png"
    profile = "name = 'toy'\n" + "# x\n" * 600  # long: stored compressed
    save_png(img, path, {"step": "640", "profile": profile, "note": "σ = 0.5"})
    save_png(img, path, {"step": "641"})  # replaces
    assert sorted(p.name for p in path.parent.iterdir()) == ["000640.png"]
    with Image.open(path) as loaded:
        assert loaded.text == {"step": "641"}  # type: ignore[attr-defined]
    save_png(img, path, {"step": "640", "profile": profile, "note": "σ = 0.5"})
    with Image.open(path) as loaded:
        assert loaded.text == {"step": "640", "profile": profile, "note": "σ = 0.5"}  # type: ignore[attr-defined]
        assert loaded.size == img.size
        np.testing.assert_array_equal(np.asarray(loaded.convert("RGB")), np.asarray(img))
