"""PFGM physics (Xu et al. 2022): perturbation, normalised empirical field target, z_exp, heuristics.

Notation as in pfgm.md: data dimension N, augmented point (x, z) ∈ R^(N+1), charges at z = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from pfgmctl.physics.empirical import sq_dist, weighted_rows


def perturb(
    y: Tensor,
    *,
    sigma: float,
    tau: float,
    m_max: float,
    restrict_m: bool,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Perturb clean rows y [B, ...] to (x, z) by Alg. 2 of Xu et al. 2022 in its closed form (pfgm.md §2.2).

    m ~ U[0, M]; z₀ = |ε_z|, ε_z ~ N(0, σ²); restrict_M re-draws m ~ U[0, ⌊0.7M⌋] when |ε_z| < σ/2;
    s = (1+τ)^m; x = y + s·ε, ε ~ N(0, σ²I); z = s·z₀. Returns x (y's dtype) and z [B] float64.
    """
    b, dev = y.shape[0], y.device
    m = torch.rand(b, dtype=torch.float64, device=dev, generator=generator) * m_max
    eps_z = sigma * torch.randn(b, dtype=torch.float64, device=dev, generator=generator)
    if restrict_m:
        m_small = torch.rand(b, dtype=torch.float64, device=dev, generator=generator)
        m_small = m_small * math.floor(0.7 * m_max)
        m = torch.where(eps_z.abs() < 0.5 * sigma, m_small, m)
    s = (1.0 + tau) ** m
    eps_x = torch.randn(y.shape, dtype=torch.float64, device=dev, generator=generator)
    x = y.to(torch.float64) + (sigma * s).reshape(-1, *([1] * (y.ndim - 1))) * eps_x
    return x.to(y.dtype), s * eps_z.abs()


def field_target(
    x: Tensor, z: Tensor, charges: Tensor, *, gamma: float, allowed: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Normalised empirical field v = √N·D/(‖D‖ + γ) in matmul/log-sum-exp form (pfgm.md §2.3).

    x [B, ...] perturbed rows, z [B], charges [n, ...] at z = 0. Weights w_j = softmax_j(−(N+1)/2·ln d_j²),
    d_j² = ‖x − y_j‖² + z² accumulated in float64; D = (Σ w_j y_j − x, −z). Memory O(B·n), never
    the B×n×(N+1) broadcast. Returns (v_x shaped like x, v_z [B]) in x's dtype.
    `allowed` [B, n] bool restricts row i to the charges j with allowed[i, j] (class-conditional field).
    """
    x2, c2 = x.flatten(1), charges.flatten(1)
    n_dim = x2.shape[1]
    z64 = z.to(torch.float64)
    logits = sq_dist(x2, c2).add_(z64.square()[:, None]).log_().mul_(-0.5 * (n_dim + 1))
    if allowed is not None:
        logits.masked_fill_(~allowed, -math.inf)
    w = logits.sub_(logits.amax(dim=1, keepdim=True)).exp_()  # softmax in place: O(B·n) once
    w.div_(w.sum(dim=1, keepdim=True))
    # D_x = Σ w_j y_j − x needs no float64: the weights are exact and sum to one, so rounding in
    # x's dtype is relative to ‖y‖ (the exponent (N+1)/2 amplifies errors only inside d²).
    d_x = weighted_rows(w, c2, x2.dtype).sub_(x2)
    d_z = -z64
    norm = torch.sqrt(
        torch.linalg.vector_norm(d_x, dim=1, dtype=torch.float64).square() + d_z.square()
    )
    scale = math.sqrt(n_dim) / (norm + gamma)
    v_x = d_x.mul_(scale[:, None].to(d_x.dtype)).reshape(x.shape)
    return v_x, (d_z * scale).to(x.dtype)


def field_target_naive(
    x: Tensor, z: Tensor, charges: Tensor, *, gamma: float
) -> tuple[Tensor, Tensor]:
    """The reference's broadcast form (Poisson_flow losses.py) with B×n×(N+1) tensors; for tests
    and benchmarks only (no 1e−7 guards)."""
    x2, c2 = x.flatten(1), charges.flatten(1)
    n_dim = x2.shape[1]
    xt = torch.cat([x2, z[:, None].to(x2.dtype)], dim=1)  # [B, N+1]
    ct = torch.cat([c2, torch.zeros_like(c2[:, :1])], dim=1)  # [n, N+1]
    dist = torch.sum((xt.unsqueeze(1) - ct) ** 2, dim=-1).sqrt()  # [B, n] via [B, n, N+1]
    ratio = (dist.min(dim=1, keepdim=True).values / dist) ** (n_dim + 1)
    coeff = (ratio / ratio.sum(1, keepdim=True))[:, :, None]
    diff = -(xt.unsqueeze(1) - ct)  # [B, n, N+1]
    d = torch.sum(coeff * diff, dim=1)
    v = math.sqrt(n_dim) * d / (d.norm(dim=1, keepdim=True) + gamma)
    return v[:, :n_dim].reshape(x.shape), v[:, n_dim]


def substitute_fz(
    f_x: Tensor, f_z: Tensor, z: Tensor, *, z_exp: float, gamma: float
) -> tuple[Tensor, Tensor]:
    """Replace f_z by −√N·z/(‖D‖_est + γ) where z < z_exp (pfgm.md §4.2, paper App. B.2.3).

    a = ‖f_x‖/√N is clamped to ≤ 1 − 1e−6 (the reference has no guard); ‖D_x‖_est = γa/(1 − a).
    Returns (f_z, clamped [B] bool).
    """
    if z_exp <= 0 or gamma <= 0:
        return f_z, torch.zeros_like(f_z, dtype=torch.bool)
    n_dim = f_x[0].numel()
    a = f_x.flatten(1).norm(dim=1) / math.sqrt(n_dim)
    clamped = a > 1 - 1e-6
    a = a.clamp(max=1 - 1e-6)
    d_x = gamma * a / (1 - a)
    d_norm = torch.sqrt(d_x.square() + z.square())
    new = -math.sqrt(n_dim) * z / (d_norm + gamma)
    use = z < z_exp
    return torch.where(use, new.to(f_z.dtype), f_z), clamped & use


@dataclass(frozen=True)
class Heuristics:
    """PFGM's data-dependent hyper-parameters (pfgm.md §2.6)."""

    m: float
    z_max: float
    upper_norm: float


def heuristics(
    mean_norm: float, data_dim: int, *, sigma: float, tau: float, m: float | None = None
) -> Heuristics:
    """M = ⌊0.75·ln(‖x‖²_avg / (2√N σ²)) / ln(1+τ)⌋ + 1; z_max = √(2/π)·σ·(1+τ)^M; upper = √N·σ·(1+τ)^M.

    A given `m` is kept and only z_max and upper_norm are derived from it.
    """
    if m is None:
        ratio = mean_norm**2 / (2 * math.sqrt(data_dim) * sigma**2)
        m = math.floor(0.75 * math.log(ratio) / math.log1p(tau)) + 1 if ratio > 1 else 1
    growth = (1 + tau) ** m
    return Heuristics(
        m=float(m),
        z_max=math.sqrt(2 / math.pi) * sigma * growth,
        upper_norm=math.sqrt(data_dim) * sigma * growth,
    )
