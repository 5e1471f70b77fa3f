"""Exact quantities over a finite data set {y_i}: the exact-field oracle (pfgmpp_ipfm.md part C).

The perturbed marginal at r = σ√D is the mixture p_r(x) = (1/n) Σ_i k_r(x − y_i); the ODE velocity is
dx/dσ = (x − E[y | x, r]) / σ with posterior weights w_i ∝ (‖x − y_i‖² + r²)^(−(N+D)/2)
(D = inf: w = softmax(−‖x − y_i‖² / 2σ²)). Everything is float64 and O(B·n) memory.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CHUNK_ELEMENTS = 1 << 18
"""Rows of the data set are cast to float64 in chunks of at most this many numbers (2 MiB)."""


def _row_chunks(y: Tensor) -> list[tuple[int, int]]:
    """[start, end) row ranges so that each float64 copy of y[start:end] stays ≤ CHUNK_ELEMENTS."""
    rows = max(1, CHUNK_ELEMENTS // max(y.shape[1], 1))
    return [(s, min(s + rows, y.shape[0])) for s in range(0, y.shape[0], rows)]


def sq_dist(x: Tensor, y: Tensor) -> Tensor:
    """‖x_b − y_i‖² for x [B, N], y [n, N] by matmul, accumulated in float64; returns [B, n].

    y is cast to float64 chunk by chunk, so the extra memory is O(B·n + B·N) plus a 2 MiB chunk.
    """
    x = x.to(torch.float64)
    out = torch.empty(x.shape[0], y.shape[0], dtype=torch.float64, device=x.device)
    x_sq = torch.linalg.vector_norm(x, dim=1, keepdim=True).square_()
    for start, end in _row_chunks(y):
        c = y[start:end].to(torch.float64)
        c_sq = torch.linalg.vector_norm(c, dim=1).square_()
        torch.addmm(x_sq + c_sq[None, :], x, c.T, alpha=-2.0, out=out[:, start:end])
    return out.clamp_min_(0.0)


def weighted_rows(w: Tensor, y: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """w @ y in `dtype` for w [B, n], y [n, N], casting y chunk by chunk; returns [B, N]."""
    if y.dtype == dtype:
        return w.to(dtype) @ y
    out = torch.zeros(w.shape[0], y.shape[1], dtype=dtype, device=w.device)
    for start, end in _row_chunks(y):
        out.addmm_(w[:, start:end].to(dtype), y[start:end].to(dtype))
    return out


def _sigma_col(sigma: Tensor | float, x: Tensor) -> Tensor:
    """Sigma as a [B, 1] float64 column."""
    s = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
    return s.expand(x.shape[0]).reshape(-1, 1)


def log_weights(x: Tensor, data: Tensor, sigma: Tensor | float, aug_dim: float) -> Tensor:
    """Posterior log-weights log w_i(x, r) for x [B, ...], data [n, ...]; returns [B, n] (log-softmax)."""
    x2, y2 = x.flatten(1), data.flatten(1)
    d2, s = sq_dist(x2, y2), _sigma_col(sigma, x2)
    if math.isinf(aug_dim):
        logits = -d2 / (2.0 * s.square())
    else:
        logits = -0.5 * (x2.shape[1] + aug_dim) * torch.log(d2 + aug_dim * s.square())
    return torch.log_softmax(logits, dim=1)


def posterior_mean(x: Tensor, data: Tensor, sigma: Tensor | float, aug_dim: float) -> Tensor:
    """E[y | x, r = σ√D] over the data set, shaped like x, float64 (the exact denoiser)."""
    w = log_weights(x, data, sigma, aug_dim).exp()
    return weighted_rows(w, data.flatten(1)).reshape(x.shape)


def mixture_log_prob(x: Tensor, data: Tensor, sigma: Tensor | float, aug_dim: float) -> Tensor:
    """log p_r(x) of the kernel mixture (1/n) Σ_i k_r(x − y_i); returns [B] float64."""
    x2, y2 = x.flatten(1), data.flatten(1)
    n_dim, d2, s = x2.shape[1], sq_dist(x2, y2), _sigma_col(sigma, x2)
    if math.isinf(aug_dim):
        log_k = -d2 / (2 * s.square()) - 0.5 * n_dim * torch.log(2 * math.pi * s.square())
    else:
        r2 = aug_dim * s.square()
        log_norm = (
            math.lgamma((n_dim + aug_dim) / 2)
            - math.lgamma(aug_dim / 2)
            - 0.5 * n_dim * math.log(math.pi)
        )
        log_k = (
            log_norm + 0.5 * aug_dim * torch.log(r2) - 0.5 * (n_dim + aug_dim) * torch.log(d2 + r2)
        )
    return torch.logsumexp(log_k, dim=1) - math.log(y2.shape[0])


def velocity_divergence(x: Tensor, data: Tensor, sigma: Tensor | float, aug_dim: float) -> Tensor:
    """div_x of dx/dσ = (x − E[y|x,r])/σ in closed form: (N − tr ∂E[y|x,r]/∂x)/σ; returns [B].

    With g_i = −c_i (x − y_i), c_i = (N+D)/(‖x − y_i‖² + r²) (D = inf: 1/σ²) and ḡ = Σ_j w_j g_j,
    tr ∂E/∂x = Σ_i w_i ⟨y_i, g_i − ḡ⟩ (pfgmpp_ipfm.md §C).
    """
    x2, y2 = x.flatten(1).to(torch.float64), data.flatten(1).to(torch.float64)
    n_dim, s = x2.shape[1], _sigma_col(sigma, x2)
    w = log_weights(x2, y2, sigma, aug_dim).exp()
    if math.isinf(aug_dim):
        c = (1.0 / s.square()).expand_as(w)
    else:
        c = (n_dim + aug_dim) / (sq_dist(x2, y2) + aug_dim * s.square())
    wc = w * c
    # Σ_i w_i ⟨y_i, g_i⟩ = −Σ_i w_i c_i (⟨y_i, x⟩ − ‖y_i‖²)
    first = -(wc * (x2 @ y2.T - y2.square().sum(1)[None, :])).sum(1)
    g_bar = -(x2 * wc.sum(1, keepdim=True) - wc @ y2)
    trace = first - ((w @ y2) * g_bar).sum(1)
    return (n_dim - trace) / s.squeeze(1)
