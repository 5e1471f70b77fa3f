"""Time grids for the fixed-step solvers."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def karras(
    n: int,
    sigma_min: float,
    sigma_max: float,
    rho: float = 7.0,
    *,
    device: torch.device | str = "cpu",
) -> Tensor:
    """EDM ρ-grid σ_i = (σ_max^(1/ρ) + i/(n−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ, i = 0..n−1 (Karras et al. 2022, Eq. 5).

    Descending float64 from σ_max to σ_min (no trailing 0: the sampler adds the final step into σ = 0).
    """
    if n == 1:
        return torch.tensor([sigma_max], dtype=torch.float64, device=device)
    i = torch.arange(n, dtype=torch.float64, device=device) / (n - 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + i * (lo - hi)) ** rho


def log_uniform(n: int, start: float, end: float, *, device: torch.device | str = "cpu") -> Tensor:
    """n values from `start` to `end` equally spaced in log (PFGM's z grid, pfgm.md §5); float64."""
    return torch.exp(
        torch.linspace(math.log(start), math.log(end), n, dtype=torch.float64, device=device)
    )
