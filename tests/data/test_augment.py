"""EDM's augmentation pipe: identity at p = 0, label layout, geometry checked on linear ramps."""

from __future__ import annotations

import math

import torch

from pfgmctl.data.augment import AUGMENT_DIM, _translate, _warp, augment

ONLY = {"xflip": 0.0, "yflip": 0.0, "scale": 0.0, "rotate": 0.0, "aniso": 0.0, "translate": 0.0}


def _images(n: int = 64, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_p_zero_is_identity() -> None:
    x = _images()
    y, labels = augment(x, 0.0, torch.Generator().manual_seed(0))
    assert torch.equal(y, x)
    assert labels.shape == (64, AUGMENT_DIM)
    assert labels.dtype == torch.float32
    assert not bool(labels.any())


def test_xflip_only_at_p_one() -> None:
    x = _images(200)
    y, labels = augment(x, 1.0, torch.Generator().manual_seed(1), **{**ONLY, "xflip": 1.0})
    flipped = labels[:, 0] == 1
    assert torch.equal(y[flipped], x[flipped].flip(3))
    assert torch.equal(y[~flipped], x[~flipped])
    assert 70 < int(flipped.sum()) < 130
    assert not bool(labels[:, 1:].any())


def test_recipe_xflip_always_eligible() -> None:
    # EDM's xflip multiplier 1e8: half the rows flip even at small p
    _, labels = augment(_images(1000, 1, 4, 4), 0.01, torch.Generator().manual_seed(2))
    assert 400 < int(labels[:, 0].sum()) < 600


def test_labels_zero_where_not_drawn_and_rates() -> None:
    p = 0.3
    x = _images(4000, 1, 8, 8)
    y, labels = augment(x, p, torch.Generator().manual_seed(3))
    on = labels != 0
    rate = on.float().mean(0)
    # yflip: drawn with p, then a fair coin; scale: drawn with p (randn never exactly 0)
    assert abs(float(rate[1]) - p / 2) < 0.03
    assert abs(float(rate[2]) - p) < 0.03
    assert abs(float(rate[3]) - p) < 0.03  # rotation: cos θ − 1 ≠ 0 when drawn
    assert torch.equal(on[:, 3], on[:, 4])
    assert abs(float(rate[5]) - p) < 0.03  # aniso: w·cos φ ≠ 0 when drawn
    assert abs(float(rate[6]) - p / 2) < 0.03  # φ is nonzero with probability 0.5
    assert torch.equal(on[:, 7], on[:, 8])
    assert abs(float(rate[7]) - p) < 0.03
    # rotation labels lie on the unit circle shifted by (−1, 0)
    c, s = labels[on[:, 3], 3] + 1, labels[on[:, 3], 4]
    assert torch.allclose(c**2 + s**2, torch.ones_like(c), atol=1e-5)
    # rows with no transform at all are untouched
    none = ~on.any(1)
    assert int(none.sum()) > 200
    assert torch.equal(y[none], x[none])


def test_shape_dtype_device_and_determinism() -> None:
    x = _images(32).to(torch.float64)
    a, la = augment(x, 0.5, torch.Generator().manual_seed(7))
    b, lb = augment(x, 0.5, torch.Generator().manual_seed(7))
    c, _ = augment(x, 0.5, torch.Generator().manual_seed(8))
    assert a.shape == x.shape
    assert a.dtype == torch.float64
    assert a.device == x.device
    assert la.device == x.device
    assert torch.equal(a, b)
    assert torch.equal(la, lb)
    assert not torch.equal(a, c)


def test_pixel_mean_roughly_preserved() -> None:
    x = _images(512, 3, 16, 16) * 0.5 + 0.2
    y, _ = augment(x, 1.0, torch.Generator().manual_seed(4))
    assert abs(float(y.mean()) - float(x.mean())) < 0.01
    assert float(y.min()) >= float(x.min()) - 1e-5  # bilinear: convex combinations only
    assert float(y.max()) <= float(x.max()) + 1e-5


def _ramp(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """f(x, y) = a·x_c + b·y_c (centred pixel coordinates): bilinear sampling is exact on it."""
    yc, xc = torch.meshgrid(
        torch.arange(size) - (size - 1) / 2, torch.arange(size) - (size - 1) / 2, indexing="ij"
    )
    a, b = 0.03, -0.02
    img = (a * xc + b * yc).to(torch.float64)
    return img.expand(n, 1, size, size).clone(), xc.double(), yc.double()


def _check_map(y: torch.Tensor, xin: torch.Tensor, yin: torch.Tensor, size: int) -> None:
    """Where the pre-image lies well inside the frame, output = a·x_in + b·y_in."""
    half = (size - 1) / 2 - 1
    inside = (xin.abs() < half) & (yin.abs() < half)
    assert int(inside.sum()) > 100
    want = 0.03 * xin - 0.02 * yin
    assert torch.allclose(y[inside], want[inside], atol=1e-5)


def test_translate_geometry() -> None:
    size, n = 32, 8
    x, xc, yc = _ramp(n, size)
    y, labels = augment(x, 1.0, torch.Generator().manual_seed(5), **{**ONLY, "translate": 1.0})
    for i in range(n):
        tx, ty = float(labels[i, 7]) * 0.125 * size, float(labels[i, 8]) * 0.125 * size
        _check_map(y[i, 0], xc - tx, yc - ty, size)  # content moves by (+tx, +ty)


def test_rotate_and_scale_geometry() -> None:
    size, n = 32, 8
    x, xc, yc = _ramp(n, size)
    y, labels = augment(x, 1.0, torch.Generator().manual_seed(6), **{**ONLY, "rotate": 1.0})
    for i in range(n):
        theta = math.atan2(float(labels[i, 4]), float(labels[i, 3]) + 1)
        c, s = math.cos(theta), math.sin(theta)
        _check_map(y[i, 0], c * xc - s * yc, s * xc + c * yc, size)  # EDM: G⁻¹ = rotate2d(θ)
    y, labels = augment(x, 1.0, torch.Generator().manual_seed(7), **{**ONLY, "scale": 1.0})
    for i in range(n):
        s = 2 ** (0.2 * float(labels[i, 2]))
        _check_map(y[i, 0], xc / s, yc / s, size)  # content grows by s


def test_reflect_padding_like_edm() -> None:
    # shifting right by one pixel brings in the mirror of column 1 (torch pad mode="reflect")
    x = torch.arange(5.0).expand(1, 1, 3, 5).clone()
    g_inv = _translate(torch.tensor([-1.0]), torch.tensor([0.0]))
    y = _warp(x, g_inv)
    want = torch.nn.functional.pad(x, (1, 0, 0, 0), mode="reflect")[..., :5]
    assert torch.allclose(y, want, atol=1e-6)
    assert torch.allclose(y[0, 0, 0], torch.tensor([1.0, 0.0, 1.0, 2.0, 3.0]), atol=1e-6)
