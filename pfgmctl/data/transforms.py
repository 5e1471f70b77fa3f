"""Training-time image transforms on a batch [B, C, H, W]: random x-flip and dequantisation.

Pure functions: each takes an explicit `torch.Generator`; random numbers are drawn on the
generator's device and moved to the batch's device, so a seeded generator gives the same result
wherever the batch lives.
"""

from __future__ import annotations

import torch
from torch import Tensor


def xflip(x: Tensor, gen: torch.Generator, p: float = 0.5) -> Tensor:
    """Mirror each row left↔right (last axis) independently with probability `p` (default 0.5).

    x: [B, ..., W]. Returns a new tensor of the same shape, dtype and device.
    """
    flip = torch.rand(x.shape[0], generator=gen, device=gen.device) < p
    mask = flip.to(x.device).view(-1, *([1] * (x.ndim - 1)))
    return torch.where(mask, x.flip(-1), x)


def dequantize(x: Tensor, gen: torch.Generator, levels: int = 256, scale: float = 1.0) -> Tensor:
    """Uniform dequantisation of pixels quantised to `levels` values spanning [−scale, scale].

    A pixel k ∈ {0, …, L−1} sits at x = scale·(2k/(L−1) − 1) (the loaders' k/127.5 − 1 for
    L = 256; digits' k/8 − 1 for L = 17), so one quantisation bin is Δ = 2·scale/(L−1) wide. This
    returns x + (u − ½)·Δ with u ~ U[0, 1): every pixel is spread uniformly over its own bin,
    centred on the quantised value, so E[output] = x (unbiased; the range grows by Δ/2 on each
    side). This is the k + U[0, 1) of PFGM's likelihood code shifted by −½ to keep the mean.
    """
    if levels < 2:
        raise ValueError(f"dequantize needs levels >= 2, got {levels}")
    u = torch.rand(x.shape, generator=gen, device=gen.device, dtype=torch.float32)
    step = 2.0 * scale / (levels - 1)
    return x + ((u - 0.5) * step).to(device=x.device, dtype=x.dtype)
