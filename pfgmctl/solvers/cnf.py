"""Instantaneous change of variables on the augmented state (x, Δ) (Chen et al. 2018, Thm. 1; FFJORD).

For dx/dt = f(x, t) and any two times t0, t1: log p_{t0}(x(t0)) = log p_{t1}(x(t1)) + ∫_{t0}^{t1} div_x f dt.
The divergence is exact (autograd, one one-hot cotangent per dimension, batched over copies of the
batch) for small N, else Hutchinson–Skilling with K Rademacher or Gaussian probes drawn once per
solve from a passed generator. The state is one float64 tensor [B, N+1] so every solver applies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pfgmctl.solvers import Rhs, StepCallback, solve

EXACT_MAX_DIM = 128
"""N up to which `mode = "auto"` takes the exact divergence (N backward cotangents per call)."""

MAX_ROWS = 16384
"""Rows (copies of the batch) evaluated at once by the exact divergence."""

NOISES = ("rademacher", "gaussian")
MODES = ("auto", "exact", "hutchinson")


@dataclass(frozen=True)
class Divergence:
    """How div_x f is computed: `auto` = exact when N ≤ threshold, else Hutchinson with `probes`."""

    mode: str = "auto"
    probes: int = 4
    noise: str = "rademacher"
    threshold: int = EXACT_MAX_DIM

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"divergence mode {self.mode!r}: choose from {', '.join(MODES)}")
        if self.noise not in NOISES:
            raise ValueError(f"probe noise {self.noise!r}: choose from {', '.join(NOISES)}")
        if self.probes < 1:
            raise ValueError(f"probes must be at least 1 (got {self.probes})")

    def exact_for(self, n_dim: int) -> bool:
        """Whether the exact divergence is used for data of dimension `n_dim`."""
        return self.mode == "exact" or (self.mode == "auto" and n_dim <= self.threshold)


@dataclass(frozen=True)
class CnfSolution:
    """End state x(t1), Δ = ∫_{t0}^{t1} div f dt [B] and NFE (augmented-rhs evaluations)."""

    x: Tensor
    delta: Tensor
    nfe: int
    exact: bool


def draw_probes(
    k: int, shape: tuple[int, ...], *, noise: str, gen: torch.Generator, device: torch.device
) -> Tensor:
    """K probes [K, *shape] float64 with E[εεᵀ] = I: Rademacher ±1 or standard Gaussian."""
    if noise == "gaussian":
        return torch.randn((k, *shape), dtype=torch.float64, device=device, generator=gen)
    bits = torch.randint(0, 2, (k, *shape), device=device, generator=gen)
    return bits.to(torch.float64).mul_(2.0).sub_(1.0)


def _repeat(x: Tensor, k: int) -> Tensor:
    """k stacked copies of the batch [k·B, ...] as a fresh leaf that requires grad."""
    return x.detach().repeat(k, *([1] * (x.ndim - 1))).requires_grad_(True)


def exact_divergence(
    rhs: Rhs, x: Tensor, t: Tensor, *, max_rows: int = MAX_ROWS
) -> tuple[Tensor, Tensor]:
    """(f(x, t), tr ∂f/∂x [B]) by autograd: c dims at once on c copies of the batch, one backward each."""
    b, n_dim = x.shape[0], x[0].numel()
    c = max(1, min(n_dim, max_rows // max(b, 1)))
    div = torch.zeros(b, dtype=torch.float64, device=x.device)
    value: Tensor | None = None
    for start in range(0, n_dim, c):
        dims = torch.arange(start, min(start + c, n_dim), device=x.device)
        k = len(dims)
        with torch.enable_grad():
            xr = _repeat(x, k)
            out = rhs(xr, t)
            onehot = torch.zeros(k, b, n_dim, dtype=out.dtype, device=x.device)
            onehot[torch.arange(k, device=x.device), :, dims] = 1.0
            (g,) = torch.autograd.grad(out, xr, onehot.reshape(out.shape))
        g = g.reshape(k, b, n_dim)
        div += g[torch.arange(k, device=x.device), :, dims].to(torch.float64).sum(0)
        if value is None:
            value = out[:b].detach()
    assert value is not None
    return value.to(torch.float64), div


def hutchinson_divergence(rhs: Rhs, x: Tensor, t: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """(f(x, t), mean_k ε_kᵀ (∂f/∂x) ε_k [B]) for probes eps [K, B, ...] (Hutchinson 1990)."""
    k, b = eps.shape[0], x.shape[0]
    with torch.enable_grad():
        xr = _repeat(x, k)
        out = rhs(xr, t)
        flat = eps.reshape(k * b, *x.shape[1:]).to(out.dtype)
        (g,) = torch.autograd.grad(out, xr, flat)
    quad = (g.to(torch.float64) * flat.to(torch.float64)).flatten(1).sum(1)
    return out[:b].detach().to(torch.float64), quad.reshape(k, b).mean(0)


def augmented_rhs(rhs: Rhs, shape: tuple[int, ...], eps: Tensor | None) -> Rhs:
    """The rhs of the state s = [x.flatten(1), Δ] [B, N+1]: (f, div f); exact when eps is None."""

    def f(s: Tensor, t: Tensor) -> Tensor:
        x = s[:, :-1].reshape(s.shape[0], *shape)
        if eps is None:
            dx, div = exact_divergence(rhs, x, t)
        else:
            dx, div = hutchinson_divergence(rhs, x, t, eps)
        return torch.cat([dx.flatten(1), div[:, None]], dim=1)

    return f


def integrate(
    rhs: Rhs,
    x: Tensor,
    ts: Tensor,
    *,
    divergence: Divergence | None = None,
    gen: torch.Generator | None = None,
    solver: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    callback: StepCallback | None = None,
) -> CnfSolution:
    """Solve (x, Δ) from ts[0] to ts[-1]: log p_{ts[0]}(x) = log p_{ts[-1]}(x(ts[-1])) + Δ."""
    div = divergence if divergence is not None else Divergence()
    shape = tuple(x.shape[1:])
    exact = div.exact_for(x[0].numel())
    eps = None
    if not exact:
        if gen is None:
            raise ValueError("the Hutchinson divergence needs a torch.Generator for its probes")
        eps = draw_probes(div.probes, tuple(x.shape), noise=div.noise, gen=gen, device=x.device)
    x64 = x.detach().to(torch.float64)
    s0 = torch.cat([x64.flatten(1), torch.zeros_like(x64[:, :1].flatten(1)[:, :1])], dim=1)
    with torch.no_grad():
        sol = solve(
            augmented_rhs(rhs, shape, eps),
            s0,
            ts,
            solver=solver,
            rtol=rtol,
            atol=atol,
            callback=callback,
        )
    return CnfSolution(
        x=sol.x[:, :-1].reshape(x.shape), delta=sol.x[:, -1], nfe=sol.nfe, exact=exact
    )
