"""EDM's geometric augmentation pipe (Karras et al. 2022, training/augment.py), compact version.

The PFGM++ / EDM CIFAR-10 recipe is `AugmentPipe(p, xflip=1e8, yflip=1, scale=1, rotate_frac=1,
aniso=1, translate_frac=1)`: x-flips are always eligible (0.5 of all rows are flipped once p > 0),
every other transform is drawn per row with probability p. The net is conditioned on 9 augment
labels that describe what was done, in EDM's order and definition:

    0 xflip           w ∈ {0, 1}
    1 yflip           w ∈ {0, 1}
    2 scale           w ~ N(0, 1), scale s = 2^(0.2·w)
    3, 4 rotate       cos θ − 1, sin θ with θ ~ U(−π, π)
    5, 6 aniso        w·cos φ, w·sin φ with w ~ N(0, 1) (stretch 2^(0.2·w) along angle φ;
                      φ ~ U(−π, π) with probability 0.5, else 0)
    7, 8 translate    tx, ty ~ N(0, 1) (shift 0.125·W·tx, 0.125·H·ty pixels)

A transform that is not drawn for a row has its labels at exactly 0 (EDM zeroes the parameter).

Differences from EDM (documented on purpose): the flips are exact pixel blits as in EDM, but the
geometric part is one bilinear `grid_sample` at the native resolution, reflecting about the
edge-pixel centres like EDM's reflect padding, not EDM's 2× sym6-wavelet super-sampled
resampling (so augmented rows come out slightly softer). Rows with no
geometric transform are returned bit-exact (not resampled). Colour transforms are off in the
recipe and not implemented.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENT_DIM = 9
"""Length of the augment-label vector (the nets' `augment_dim`)."""

XFLIP_ALWAYS = 1e8
"""EDM's xflip multiplier: p·1e8 ≥ 1 for any p > 0, so every row is eligible for an x-flip."""


def augment(
    x: Tensor,
    p: float,
    gen: torch.Generator,
    *,
    xflip: float = XFLIP_ALWAYS,
    yflip: float = 1.0,
    scale: float = 1.0,
    rotate: float = 1.0,
    aniso: float = 1.0,
    translate: float = 1.0,
    scale_std: float = 0.2,
    rotate_max: float = 1.0,
    aniso_std: float = 0.2,
    aniso_rotate_prob: float = 0.5,
    translate_std: float = 0.125,
) -> tuple[Tensor, Tensor]:
    """Augment images x [B, C, H, W] with EDM's pipe at probability `p`; return (x_aug, labels [B, 9]).

    Each transform is applied to a row when U < multiplier·p (EDM's probability multipliers; the
    defaults are the CIFAR-10 recipe). Random numbers come from `gen` on `gen.device` in a fixed
    order, so a seeded generator reproduces the batch exactly; outputs live on `x.device` with
    x's dtype (labels float32). p = 0 returns x itself and zero labels.
    """
    if x.ndim != 4:
        raise ValueError(f"augment expects images [B, C, H, W], got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    labels = torch.zeros(n, AUGMENT_DIM, dtype=torch.float32, device=x.device)
    if p <= 0:
        return x, labels
    d = _draw(
        n, p, gen, xflip, yflip, scale, rotate, aniso, translate, rotate_max, aniso_rotate_prob
    )
    d = {k: v.to(x.device) for k, v in d.items()}

    out = torch.where(d["xflip"].view(-1, 1, 1, 1) == 1, x.flip(3), x)
    out = torch.where(d["yflip"].view(-1, 1, 1, 1) == 1, out.flip(2), out)

    s_iso = torch.exp2(d["scale"] * scale_std)
    s_an = torch.exp2(d["aniso"] * aniso_std)
    g_inv = _scale(1 / s_iso, 1 / s_iso)  # G⁻¹ maps output pixel coords to input coords
    g_inv = g_inv @ _rotate(d["rotate"])
    phi = d["aniso_phi"]
    g_inv = g_inv @ _rotate(-phi) @ _scale(1 / s_an, s_an) @ _rotate(phi)
    g_inv = g_inv @ _translate(-d["tx"] * (w * translate_std), -d["ty"] * (h * translate_std))
    geo = (
        (d["scale"] != 0) | (d["rotate"] != 0) | (d["aniso"] != 0) | (d["tx"] != 0) | (d["ty"] != 0)
    )
    out = torch.where(geo.view(-1, 1, 1, 1), _warp(out, g_inv), out)

    labels = torch.stack(
        [
            d["xflip"],
            d["yflip"],
            d["scale"],
            torch.cos(d["rotate"]) - 1,
            torch.sin(d["rotate"]),
            d["aniso"] * torch.cos(phi),
            d["aniso"] * torch.sin(phi),
            d["tx"],
            d["ty"],
        ],
        dim=1,
    ).to(torch.float32)
    return out, labels


def _draw(
    n: int,
    p: float,
    gen: torch.Generator,
    xflip: float,
    yflip: float,
    scale: float,
    rotate: float,
    aniso: float,
    translate: float,
    rotate_max: float,
    aniso_rotate_prob: float,
) -> dict[str, Tensor]:
    """Per-row parameters (float32 [B] on gen.device), zero where the transform is not drawn."""

    def rand() -> Tensor:
        return torch.rand(n, generator=gen, device=gen.device)

    def gate(value: Tensor, multiplier: float) -> Tensor:
        return torch.where(rand() < multiplier * p, value, torch.zeros_like(value))

    def coin() -> Tensor:
        return torch.randint(2, (n,), generator=gen, device=gen.device).to(torch.float32)

    def randn() -> Tensor:
        return torch.randn(n, generator=gen, device=gen.device)

    out = {"xflip": gate(coin(), xflip), "yflip": gate(coin(), yflip)}
    out["scale"] = gate(randn(), scale)
    out["rotate"] = gate((rand() * 2 - 1) * (math.pi * rotate_max), rotate)
    w, phi = randn(), (rand() * 2 - 1) * math.pi
    out["aniso"] = gate(w, aniso)
    out["aniso_phi"] = torch.where(rand() < aniso_rotate_prob, phi, torch.zeros_like(phi))
    t = torch.randn(2, n, generator=gen, device=gen.device)
    keep = rand() < translate * p
    out["tx"] = torch.where(keep, t[0], torch.zeros_like(t[0]))
    out["ty"] = torch.where(keep, t[1], torch.zeros_like(t[1]))
    return out


def _mat(rows: list[list[Tensor | float]], ref: Tensor) -> Tensor:
    """Batched 3×3 matrices [B, 3, 3] from rows of per-row tensors [B] or constants."""
    flat = [e if isinstance(e, Tensor) else torch.full_like(ref, float(e)) for r in rows for e in r]
    return torch.stack(flat, dim=-1).view(-1, 3, 3)


def _scale(sx: Tensor, sy: Tensor) -> Tensor:
    """diag(sx, sy, 1)."""
    return _mat([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def _rotate(theta: Tensor) -> Tensor:
    """Rotation by θ in pixel coordinates (EDM's rotate2d)."""
    c, s = torch.cos(theta), torch.sin(theta)
    return _mat([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def _translate(tx: Tensor, ty: Tensor) -> Tensor:
    """Translation by (tx, ty) pixels."""
    return _mat([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def _warp(x: Tensor, g_inv: Tensor) -> Tensor:
    """Resample x at G⁻¹·(output pixel centre), coordinates centred on the image, bilinear.

    With align_corners=True a centred pixel coordinate x_c is u = 2·x_c/(W − 1), so the
    normalised matrix is S·G⁻¹·S⁻¹ with S = diag(2/(W − 1), 2/(H − 1), 1); reflection then mirrors
    about the edge-pixel centres, i.e. EDM's `pad(mode="reflect")` (no repeated edge pixel).
    """
    n, c, h, w = x.shape
    if h < 2 or w < 2:
        raise ValueError(f"augment needs images of at least 2×2 pixels, got {h}×{w}")
    s = torch.diag(torch.tensor([2.0 / (w - 1), 2.0 / (h - 1), 1.0], device=x.device))
    s_inv = torch.diag(torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0, 1.0], device=x.device))
    theta = (s @ g_inv @ s_inv)[:, :2, :].to(x.dtype)
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)
