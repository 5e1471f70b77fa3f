"""Benchmark outputs without matplotlib: CSV rows and a quality-vs-NFE line plot drawn with Pillow."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from pfgmctl.engine.rundir import atomic_write_bytes, atomic_write_text

CSV_FIELDS = (
    "run", "method", "aug_dim", "solver", "steps", "perturbation", "nfe", "metric",
    "mean", "std", "delta", "delta_se", "floor", "seconds", "values",
)  # fmt: skip
PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
W, H, LEFT, RIGHT, TOP, BOTTOM = 900, 560, 80, 250, 40, 60


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """One line per (run, setting, metric); `values` joined with ';'."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "values": ";".join(f"{v:.6g}" for v in row["values"])})
    atomic_write_text(path, buf.getvalue())


def series(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, list[tuple[float, float]]]:
    """Line label → [(NFE, mean)] sorted by NFE, one line per run × solver × perturbation."""
    out: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r["metric"] != metric or not math.isfinite(r["mean"]) or r["nfe"] <= 0:
            continue
        label = f"{r['run']} {r['solver']}" + (
            "" if r["perturbation"] == "none" else f" {r['perturbation']}"
        )
        out.setdefault(label, []).append((float(r["nfe"]), float(r["mean"])))
    return {k: sorted(v) for k, v in out.items()}


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def _floor(rows: Sequence[dict[str, Any]], metric: str) -> float | None:
    """Mean data-vs-data floor over the rows of `metric`, if any row has one."""
    vals = [r["floor"] for r in rows if r["metric"] == metric and r.get("floor") is not None]
    return sum(vals) / len(vals) if vals else None


def _y_scale(values: list[float]) -> tuple[bool, float, float]:
    """(log scale?, lo, hi) in plot units: log₁₀ when all values > 0 and they span > 20×."""
    lo, hi = min(values), max(values)
    if lo > 0 and hi / lo > 20:
        return True, math.log10(lo), math.log10(hi)
    lo = min(0.0, lo)
    return False, lo, hi if hi > lo else lo + 1


def plot_png(path: Path, rows: Sequence[dict[str, Any]], metric: str, title: str) -> None:
    """Quality (`metric`, mean over seed sets) against NFE on a log₂ axis; legend on the right."""
    lines, floor = series(rows, metric), _floor(rows, metric)
    pts = [p for v in lines.values() for p in v] or [(1.0, 0.0), (2.0, 1.0)]
    x_lo, x_hi = math.log2(min(p[0] for p in pts)), math.log2(max(p[0] for p in pts))
    x_hi = max(x_hi, x_lo + 1)
    log_y, y_lo, y_hi = _y_scale([p[1] for p in pts] + ([floor] if floor else []))
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def xy(nfe: float, v: float) -> tuple[float, float]:
        fx = (math.log2(nfe) - x_lo) / (x_hi - x_lo)
        fv = math.log10(max(v, 1e-300)) if log_y else v
        return LEFT + fx * pw, TOP + (1 - (fv - y_lo) / (y_hi - y_lo)) * ph

    d.rectangle((LEFT, TOP, LEFT + pw, TOP + ph), outline="black")
    for t in _ticks(y_lo, y_hi):
        v = 10**t if log_y else t
        y = xy(2**x_lo, v)[1]
        d.line((LEFT - 4, y, LEFT, y), fill="black")
        d.text((LEFT - 8, y), f"{v:.3g}", fill="black", anchor="rm")
    nfes = sorted({p[0] for p in pts})
    many = [2.0**e for e in range(math.ceil(x_lo), math.floor(x_hi) + 1)]
    for nfe in nfes if len(nfes) <= 10 else many:
        x = xy(nfe, 10**y_lo if log_y else y_lo)[0]
        d.line((x, TOP + ph, x, TOP + ph + 4), fill="black")
        d.text((x, TOP + ph + 8), f"{nfe:g}", fill="black", anchor="mt")
    if floor:
        y = xy(2**x_lo, floor)[1]
        for x0 in range(LEFT, LEFT + pw, 12):
            d.line((x0, y, min(x0 + 6, LEFT + pw), y), fill=(150, 150, 150))
        d.text((LEFT + pw - 4, y - 4), "data floor", fill=(120, 120, 120), anchor="rb")
    scale = "log" if log_y else "linear"
    best = "0.5 is best" if metric == "nn1" else "lower is better"
    d.text((LEFT + pw / 2, H - 20), "NFE (log scale)", fill="black", anchor="mm")
    d.text((LEFT, 12), f"{title}: {metric}, {scale} axis ({best})", fill="black")
    _legend(d, lines, xy)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _legend(
    d: ImageDraw.ImageDraw,
    lines: dict[str, list[tuple[float, float]]],
    xy: Callable[[float, float], tuple[float, float]],
) -> None:
    """Draw each line with markers and its legend entry."""
    for i, (label, pts_i) in enumerate(lines.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = [xy(n, v) for n, v in pts_i]
        if len(coords) > 1:
            d.line(coords, fill=color, width=2)
        for cx, cy in coords:
            d.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=color)
        ly = TOP + 14 * i
        d.line((W - RIGHT + 10, ly + 6, W - RIGHT + 30, ly + 6), fill=color, width=3)
        d.text((W - RIGHT + 36, ly), label[:36], fill="black")
