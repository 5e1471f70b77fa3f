"""Latent tools on the invertible probability-flow ODE: encode, decode, log-likelihood, interpolation
and latent-norm (temperature) scaling (pfgm.md §6–7; PFGM paper §4–5).

Encode runs the forward ODE from the end of the sampling grid (σ_min / z_min) to its start
(σ_max / z_max); decode runs it back with no final denoising step, so the two are inverse maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pfgmctl.methods.base import Method, model_dtype
from pfgmctl.methods.exact import ExactDenoiser, ExactField
from pfgmctl.solvers import StepCallback, solve
from pfgmctl.solvers.cnf import Divergence, integrate

ADAPTIVE_STEPS = 2
"""Adaptive solvers only read the grid's end points."""


@dataclass(frozen=True)
class Flow:
    """The end state of an encode/decode solve and its NFE (max over batches)."""

    x: Tensor
    nfe: int


@dataclass(frozen=True)
class Likelihood:
    """log p at the grid end (nats [B], model coordinates), its parts, the latents and NFE."""

    log_prob: Tensor
    log_prior: Tensor
    delta: Tensor
    latent: Tensor
    nfe: int
    exact: bool


@dataclass(frozen=True)
class FlowSettings:
    """Solver settings shared by encode, decode and likelihood."""

    solver: str = "dopri5"
    steps: int = 18
    rtol: float = 1e-5
    atol: float = 1e-5
    batch: int = 256


def _posterior_mean(x: Tensor, data: Tensor, sigma: Tensor, aug_dim: float) -> Tensor:
    """E[y | x, r = σ√D] in plain differentiable ops (physics.empirical uses out= kernels)."""
    x2, y2 = x.flatten(1).to(torch.float64), data.flatten(1)
    d2 = (x2.square().sum(1, keepdim=True) + y2.square().sum(1)[None, :] - 2 * x2 @ y2.T).clamp_min(
        0.0
    )
    s2 = sigma.to(torch.float64).reshape(-1, 1).square()
    if math.isinf(aug_dim):
        logits = -d2 / (2 * s2)
    else:
        logits = -0.5 * (x2.shape[1] + aug_dim) * torch.log(d2 + aug_dim * s2)
    return (torch.softmax(logits, dim=1) @ y2).reshape(x.shape)


class _GradDenoiser(nn.Module):
    """Autograd-friendly twin of `ExactDenoiser`."""

    def __init__(self, exact: ExactDenoiser) -> None:
        super().__init__()
        self.data, self.aug_dim = exact.data, exact.aug_dim

    def forward(self, x: Tensor, sigma: Tensor, labels: Tensor | None = None) -> Tensor:
        s = torch.as_tensor(sigma, device=x.device).expand(x.shape[0])
        return _posterior_mean(x, self.data, s, self.aug_dim).to(x.dtype)


class _GradField(nn.Module):
    """Autograd-friendly twin of `ExactField`: √N·D/(‖D‖ + γ), D = (E[y|x,z] − x, −z) (D = 1)."""

    def __init__(self, exact: ExactField) -> None:
        super().__init__()
        self.data, self.gamma = exact.data, exact.gamma

    def forward(self, x: Tensor, z: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        z = torch.as_tensor(z, device=x.device).to(torch.float64).expand(x.shape[0])
        d_x = (_posterior_mean(x, self.data, z, 1.0) - x.to(torch.float64)).flatten(1)
        norm = torch.sqrt(d_x.square().sum(1) + z.square())
        scale = math.sqrt(d_x.shape[1]) / (norm + self.gamma)
        f_x = (d_x * scale[:, None]).reshape(x.shape)
        return f_x.to(x.dtype), (-z * scale).to(x.dtype)


def differentiable(model: nn.Module) -> nn.Module:
    """The model itself, or for the exact models a twin that autograd can differentiate."""
    if isinstance(model, ExactDenoiser):
        return _GradDenoiser(model)
    if isinstance(model, ExactField):
        return _GradField(model)
    return model


def flow_grid(method: Method, cfg: FlowSettings, *, device: torch.device) -> Tensor:
    """The method's descending sampling grid (σ_max → σ_min, or z_max → z_min)."""
    from pfgmctl.solvers import is_adaptive

    steps = ADAPTIVE_STEPS if is_adaptive(cfg.solver) else cfg.steps
    return method.grid(max(steps, 1), device=device)


def _run(
    method: Method,
    model: nn.Module,
    x: Tensor,
    ts: Tensor,
    cfg: FlowSettings,
    callback: StepCallback | None,
) -> Flow:
    """Solve the method's ODE over ts for x in batches of cfg.batch (float64 state)."""
    rhs = method.rhs(model, dtype=model_dtype(model))
    outs, nfe = [], 0
    for start in range(0, len(x), cfg.batch):
        chunk = x[start : start + cfg.batch].to(ts.device, torch.float64)
        sol = solve(
            rhs, chunk, ts, solver=cfg.solver, rtol=cfg.rtol, atol=cfg.atol, callback=callback
        )
        outs.append(sol.x)
        nfe = max(nfe, sol.nfe)
    return Flow(torch.cat(outs), nfe)


@torch.no_grad()
def encode(
    method: Method,
    model: nn.Module,
    x: Tensor,
    cfg: FlowSettings | None = None,
    *,
    callback: StepCallback | None = None,
) -> Flow:
    """Data at σ_min (z_min) → latents at σ_max (z_max) by the forward probability-flow ODE."""
    cfg = cfg or FlowSettings()
    ts = flow_grid(method, cfg, device=x.device).flip(0)
    return _run(method, model, x, ts, cfg, callback)


@torch.no_grad()
def decode(
    method: Method,
    model: nn.Module,
    z: Tensor,
    cfg: FlowSettings | None = None,
    *,
    callback: StepCallback | None = None,
) -> Flow:
    """Latents at σ_max (z_max) → states at σ_min (z_min); no final denoising step."""
    cfg = cfg or FlowSettings()
    ts = flow_grid(method, cfg, device=z.device)
    return _run(method, model, z, ts, cfg, callback)


def log_likelihood(
    method: Method,
    model: nn.Module,
    x: Tensor,
    cfg: FlowSettings | None = None,
    *,
    divergence: Divergence | None = None,
    gen: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Likelihood:
    """log p_{σ_min}(x) = log p_prior(x(σ_max)) + ∫ div_x f dt (nats, [B], float64).

    The divergence of the rhs in the method's own time variable integrates (it is invariant to the
    choice of time variable); the prior is the exact, unclipped `method.log_prior`.
    """
    cfg = cfg or FlowSettings()
    ts = flow_grid(method, cfg, device=x.device).flip(0)
    rhs = method.rhs(differentiable(model), dtype=model_dtype(model))
    latents, deltas, nfe, exact = [], [], 0, True
    for start in range(0, len(x), cfg.batch):
        sol = integrate(
            rhs,
            x[start : start + cfg.batch],
            ts,
            divergence=divergence,
            gen=gen,
            solver=cfg.solver,
            rtol=cfg.rtol,
            atol=cfg.atol,
            callback=callback,
        )
        latents.append(sol.x)
        deltas.append(sol.delta)
        nfe, exact = max(nfe, sol.nfe), sol.exact
    latent, delta = torch.cat(latents), torch.cat(deltas)
    prior = method.log_prior(latent)
    return Likelihood(prior + delta, prior, delta, latent, nfe, exact)


def evaluated_at(method: Method) -> dict[str, float]:
    """Where densities and data-side states live: σ_min (and r_min) or z_min."""
    end = float(method.grid(2, device=torch.device("cpu"))[-1])
    return method.physical(end)


def lerp(a: Tensor, b: Tensor, k: int) -> Tensor:
    """k points (1 − t)·a + t·b, t = 0..1, shaped [k, ...] (float64)."""
    t = torch.linspace(0.0, 1.0, k, dtype=torch.float64, device=a.device)
    t = t.reshape(-1, *([1] * a.ndim))
    return (1 - t) * a.to(torch.float64) + t * b.to(torch.float64)


def slerp(a: Tensor, b: Tensor, k: int) -> Tensor:
    """k points on the great circle from a's direction to b's, norms interpolated linearly [k, ...]."""
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    na, nb = a64.norm(), b64.norm()
    ua, ub = a64 / na.clamp_min(1e-300), b64 / nb.clamp_min(1e-300)
    theta = torch.arccos((ua * ub).sum().clamp(-1.0, 1.0))
    t = torch.linspace(0.0, 1.0, k, dtype=torch.float64, device=a.device)
    if float(theta) < 1e-6:
        dirs = lerp(ua, ub, k)
    else:
        wa, wb = (
            torch.sin((1 - t) * theta) / torch.sin(theta),
            torch.sin(t * theta) / torch.sin(theta),
        )
        shape = (-1, *([1] * a.ndim))
        dirs = wa.reshape(shape) * ua + wb.reshape(shape) * ub
    norms = ((1 - t) * na + t * nb).reshape(-1, *([1] * a.ndim))
    return dirs * norms


def interpolate(a: Tensor, b: Tensor, k: int, mode: str = "slerp") -> Tensor:
    """k latents between a and b: `slerp` (spherical) or `linear`."""
    if mode == "slerp":
        return slerp(a, b, k)
    if mode == "linear":
        return lerp(a, b, k)
    raise ValueError(f"interpolation mode {mode!r}: choose slerp or linear")


def scale_norms(z: Tensor, factors: Tensor) -> Tensor:
    """The latent z with its norm multiplied by each factor: [len(factors), ...] (temperature)."""
    f = factors.to(torch.float64).reshape(-1, *([1] * z.ndim))
    return f * z.to(torch.float64)[None]


def relative_error(x: Tensor, ref: Tensor) -> Tensor:
    """‖x − ref‖ / ‖ref‖ per row [B] (round-trip error)."""
    diff = (x.to(torch.float64) - ref.to(torch.float64)).flatten(1).norm(dim=1)
    return diff / ref.to(torch.float64).flatten(1).norm(dim=1).clamp_min(1e-300)
