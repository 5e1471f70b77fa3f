"""Sample pictures: image grids and 2-D scatter plots as PNG (atomic, with text metadata)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from torch import Tensor

from pfgmctl.engine.rundir import atomic_write_bytes

Bounds = tuple[float, float, float, float]
"""Plot window as (x_min, x_max, y_min, y_max), matplotlib `axis()` order."""

_POINT_RGB = (31, 119, 180)
_REF_RGB = (205, 205, 205)
_FRAME_RGB = (140, 140, 140)
_ZTXT_MIN = 1024  # compress text chunks longer than this (e.g. a whole profile)


def to_uint8(x: Tensor) -> Tensor:
    """Map [-1, 1] to uint8 [0, 255] (rounded, clamped; NaN → 0)."""
    return (
        ((x.detach().float().nan_to_num(nan=-1.0) + 1.0) * 127.5)
        .round()
        .clamp(0, 255)
        .to(torch.uint8)
    )


def image_grid(
    x: Tensor, nrow: int | None = None, pad: int = 1, pad_value: int = 255
) -> Image.Image:
    """Tile images [B, C, H, W] in [-1, 1] (C in {1, 3}) into one picture, `nrow` images per row."""
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(f"image_grid needs [B, 1|3, H, W] with B > 0, got {tuple(x.shape)}")
    b, c, h, w = x.shape
    cols = nrow if nrow is not None else math.ceil(math.sqrt(b))
    cols = max(1, min(cols, b))
    rows = math.ceil(b / cols)
    shape = (c, rows * (h + pad) + pad, cols * (w + pad) + pad)
    canvas = torch.full(shape, pad_value, dtype=torch.uint8)
    images = to_uint8(x).cpu()
    for i in range(b):
        top, left = pad + (i // cols) * (h + pad), pad + (i % cols) * (w + pad)
        canvas[:, top : top + h, left : left + w] = images[i]
    array = canvas.permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if c == 1 else np.ascontiguousarray(array))


def robust_bounds(points: Tensor, pad: float = 0.1) -> Bounds:
    """Equal-aspect window over the 0.5th–99.5th percentile of each axis, padded by `pad`."""
    pts = points.detach().cpu().double().reshape(-1, 2)
    pts = pts[torch.isfinite(pts).all(dim=1)]
    if pts.shape[0] == 0:
        return (-1.0, 1.0, -1.0, 1.0)
    lo = torch.quantile(pts, 0.005, dim=0)
    hi = torch.quantile(pts, 0.995, dim=0)
    centre = (lo + hi) / 2
    half = float((hi - lo).max()) / 2 * (1 + 2 * pad)
    half = half if half > 0 else 1.0  # a single point (or all equal)
    cx, cy = float(centre[0]), float(centre[1])
    return (cx - half, cx + half, cy - half, cy + half)


def _dot_offsets(radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (dy, dx) of a small filled disk."""
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    inside = dy**2 + dx**2 <= radius * radius + radius
    return dy[inside], dx[inside]


def _draw_dots(canvas: np.ndarray, points: Tensor, bounds: Bounds, rgb: tuple[int, ...]) -> None:
    """Paint points inside `bounds` as aliased dots onto an [S, S, 3] uint8 canvas (y axis up)."""
    size = canvas.shape[0]
    x0, x1, y0, y1 = bounds
    pts = points.detach().cpu().double().reshape(-1, 2).numpy()
    inside = (pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1)
    pts = pts[inside]  # NaN rows fail every comparison, so they drop out too
    px = np.rint((pts[:, 0] - x0) / (x1 - x0) * (size - 1)).astype(np.int64)
    py = np.rint((y1 - pts[:, 1]) / (y1 - y0) * (size - 1)).astype(np.int64)
    dy, dx = _dot_offsets(max(1, round(size / 320)))
    ys = np.clip(py[:, None] + dy[None, :], 0, size - 1).ravel()
    xs = np.clip(px[:, None] + dx[None, :], 0, size - 1).ravel()
    canvas[ys, xs] = rgb


def scatter_png(
    points: Tensor,
    *,
    size: int = 512,
    ref: Tensor | None = None,
    bounds: Bounds | None = None,
) -> Image.Image:
    """Draw 2-D points [B, 2] as dots on white, over optional light-grey `ref` points, framed."""
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"scatter_png needs points [B, 2], got {tuple(points.shape)}")
    if ref is not None and (ref.ndim != 2 or ref.shape[1] != 2):
        raise ValueError(f"scatter_png needs ref [M, 2], got {tuple(ref.shape)}")
    if bounds is None:
        bounds = robust_bounds(ref if ref is not None else points)
    if not (bounds[1] > bounds[0] and bounds[3] > bounds[2]):
        raise ValueError(f"empty plot bounds {bounds}")
    canvas = np.full((size, size, 3), 255, dtype=np.uint8)
    if ref is not None:
        _draw_dots(canvas, ref, bounds, _REF_RGB)
    _draw_dots(canvas, points, bounds, _POINT_RGB)
    canvas[[0, -1], :] = _FRAME_RGB
    canvas[:, [0, -1]] = _FRAME_RGB
    return Image.fromarray(canvas)


def class_grid(
    x: Tensor, labels: Tensor, classes: list[int], pad: int = 1, pad_value: int = 255
) -> Image.Image:
    """Images [B, C, H, W] with int `labels` [B] tiled one row per class, rows in `classes` order.

    Each row holds that class's images in batch order; short rows are padded with `pad_value`.
    """
    if labels.shape != (x.shape[0],):
        raise ValueError(f"class_grid needs one label per image, got {tuple(labels.shape)}")
    rows = [torch.nonzero(labels == k).flatten().tolist() for k in classes]
    rows = [r for r in rows if r]
    if not rows:
        raise ValueError("class_grid: no image has any of the given classes")
    cols = max(len(r) for r in rows)
    blank = torch.full_like(x[:1], 2.0 * pad_value / 255.0 - 1.0)
    cells = [x[r[j] : r[j] + 1] if j < len(r) else blank for r in rows for j in range(cols)]
    return image_grid(torch.cat(cells), nrow=cols, pad=pad, pad_value=pad_value)


def image_png(x: Tensor) -> Image.Image:
    """One image [C, H, W] in [-1, 1] (C in {1, 3}) at its own resolution (no padding)."""
    if x.ndim != 3:
        raise ValueError(f"image_png needs one image [1|3, H, W], got {tuple(x.shape)}")
    return image_grid(x[None], pad=0)


def _enlarged(img: Image.Image, size: int) -> Image.Image:
    """`img` enlarged by an integer factor (nearest neighbour) so items of `size` px reach 32 px."""
    factor = max(1, 32 // max(size, 1))
    if factor == 1:
        return img
    return img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)


def samples_picture(
    x: Tensor,
    ref: Tensor | None = None,
    labels: Tensor | None = None,
    classes: list[int] | None = None,
) -> Image.Image:
    """Picture of a batch: scatter for [B, 2] (or first two coords of [B, N]), grid for images.

    Images smaller than 32 px are enlarged by an integer factor (nearest neighbour) to be seen.
    With `labels` and `classes` (more than one), the image grid has one row per class.
    """
    if x.ndim == 4 and x.shape[1] in (1, 3):
        if labels is not None and classes is not None and len(classes) > 1:
            return _enlarged(class_grid(x, labels, classes), x.shape[2])
        return _enlarged(image_grid(x), x.shape[2])
    if x.ndim == 2 and x.shape[1] >= 2:
        ref2 = ref.reshape(ref.shape[0], -1)[:, :2] if ref is not None else None
        return scatter_png(x[:, :2], ref=ref2)
    raise ValueError(
        f"cannot draw samples of shape {tuple(x.shape)}: expected [B, N>=2] or [B, 1|3, H, W]"
    )


def save_png(img: Image.Image, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write `img` as PNG with text chunks, atomically (tmp + replace), creating parent dirs."""
    info = PngInfo()
    for key, value in (metadata or {}).items():
        info.add_text(key, value, zip=len(value) > _ZTXT_MIN)
    buf = io.BytesIO()
    img.save(buf, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buf.getvalue())
