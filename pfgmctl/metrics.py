"""Sample-quality metrics that need no download (ecosystem.md §4)."""

from __future__ import annotations

import torch
from torch import Tensor


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
