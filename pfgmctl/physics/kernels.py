"""PFGM++ perturbation kernel p_r(x|y) ∝ (‖x−y‖² + r²)^(−(N+D)/2), r = σ√D (Xu et al. 2023, Eq. 4).

The kernel is the multivariate Student-t with ν = D degrees of freedom and scale σ, so a draw is
n = σ·g·√(D/s) with g ~ N(0, I_N) and s ~ χ²_D (pfgmpp_ipfm.md §A2). Exact for every real D > 0,
no clip of a Beta draw; D = inf is the Gaussian (EDM) limit. D = 1 at r = z_max is PFGM's prior.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

Generators = torch.Generator | Sequence[torch.Generator]
"""One generator for the whole batch, or one per row (per-seed sampling: row i depends on seed i)."""


def _as_column(sigma: Tensor | float, batch: int, ndim: int, like: Tensor) -> Tensor:
    """Broadcast a scalar or [B] sigma to [B, 1, ..., 1] in float64."""
    s = torch.as_tensor(sigma, dtype=torch.float64, device=like.device)
    if s.ndim == 0:
        s = s.expand(batch)
    return s.reshape(batch, *([1] * (ndim - 1)))


def _randn(shape: tuple[int, ...], generator: Generators, device: torch.device) -> Tensor:
    """Standard normals of `shape` in float64, row b from generator[b] when given a sequence."""
    if isinstance(generator, torch.Generator):
        return torch.randn(shape, dtype=torch.float64, device=device, generator=generator)
    rows = [
        torch.randn(shape[1:], dtype=torch.float64, device=device, generator=g) for g in generator
    ]
    return torch.stack(rows)


def chi2(df: float, batch: int, *, generator: Generators, device: torch.device) -> Tensor:
    """s ~ χ²_df = 2·Gamma(df/2), [batch] float64, drawn from `generator` (any real df > 0)."""
    alpha = torch.full((batch,), df / 2.0, dtype=torch.float64, device=device)
    # torch.distributions takes no Generator; the private _standard_gamma does (checked on 2.13).
    if isinstance(generator, torch.Generator):
        return 2.0 * torch._standard_gamma(alpha, generator=generator)
    rows = [torch._standard_gamma(alpha[:1], generator=g) for g in generator]
    return 2.0 * torch.cat(rows)


def sample_noise(
    shape: tuple[int, ...],
    sigma: Tensor | float,
    aug_dim: float,
    *,
    generator: Generators,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Draw n ~ p_{σ√D}(·|0) of `shape` = (B, *item) in float64; `sigma` is a scalar or [B].

    With a sequence of B generators, row b uses only generator b (normals first, then χ²).
    """
    device = torch.device(device)
    g = _randn(shape, generator, device)
    scale = _as_column(sigma, shape[0], len(shape), g)
    if math.isinf(aug_dim):
        return scale * g
    s = chi2(aug_dim, shape[0], generator=generator, device=device)
    return scale * g * torch.sqrt(aug_dim / s).reshape(-1, *([1] * (len(shape) - 1)))


def log_kernel(v: Tensor, sigma: Tensor | float, aug_dim: float) -> Tensor:
    """Normalised log k_r(v) over R^N at r = σ√D (pfgmpp_ipfm.md §C); v is [B, ...], returns [B].

    k_r(v) = Γ((N+D)/2) / (Γ(D/2) π^(N/2)) · r^D / (‖v‖² + r²)^((N+D)/2); D = inf is N(0, σ²I).
    """
    v = v.to(torch.float64).flatten(1)
    n = v.shape[1]
    sq = v.square().sum(1)
    s = torch.as_tensor(sigma, dtype=torch.float64, device=v.device).expand(v.shape[0])
    if math.isinf(aug_dim):
        return -sq / (2 * s.square()) - 0.5 * n * torch.log(2 * math.pi * s.square())
    r = s * math.sqrt(aug_dim)
    log_norm = (
        math.lgamma((n + aug_dim) / 2) - math.lgamma(aug_dim / 2) - 0.5 * n * math.log(math.pi)
    )
    return log_norm + aug_dim * torch.log(r) - 0.5 * (n + aug_dim) * torch.log(sq + r.square())


def clip_norm(x: Tensor, max_norm: float) -> tuple[Tensor, Tensor]:
    """Scale rows whose L2 norm exceeds `max_norm` back onto that norm; returns (x, clipped [B] bool)."""
    norm = x.flatten(1).norm(dim=1)
    clipped = norm > max_norm
    factor = torch.where(clipped, max_norm / norm.clamp_min(1e-300), torch.ones_like(norm))
    return x * factor.reshape(-1, *([1] * (x.ndim - 1))), clipped
