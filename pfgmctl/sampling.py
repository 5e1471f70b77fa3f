"""Sampling = a method's prior, time grid and rhs handed to a solver (architecture.md §8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from pfgmctl.methods.base import Method, model_dtype
from pfgmctl.nets.precond import Conditioned
from pfgmctl.solvers import StepCallback, solve


@dataclass(frozen=True)
class SampleResult:
    """Samples [n, ...] (float32, CPU), NFE per trajectory (max over batches), prior-clipped share."""

    x: Tensor
    nfe: int
    nfe_per_batch: list[int]
    prior_clipped: float


def prior_for_seeds(
    method: Method, seeds: Sequence[int], shape: tuple[int, ...], device: torch.device
) -> tuple[Tensor, Tensor]:
    """One generator per seed, so sample i depends only on seed i (EDM's StackedRandomGenerator)."""
    gens = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]
    draw = method.prior(len(gens), shape, gen=gens, device=device)
    return draw.x, draw.clipped


@torch.no_grad()
def sample(
    method: Method,
    model: nn.Module,
    *,
    seeds: Sequence[int],
    shape: tuple[int, ...],
    solver: str = "heun",
    steps: int = 18,
    device: torch.device | str = "cpu",
    rtol: float = 1e-4,
    atol: float = 1e-4,
    batch: int = 1024,
    callback: StepCallback | None = None,
    x_init: Tensor | None = None,
    labels: Tensor | None = None,
) -> SampleResult:
    """Integrate the backward ODE from the prior (or `x_init`) for every seed, in batches of `batch`.

    `labels` [n] int64: the class of each sample, for class-conditional models.
    """
    device = torch.device(device)
    dtype = model_dtype(model)
    if x_init is None:
        x0, clipped = prior_for_seeds(method, seeds, shape, device)
    else:
        x0, clipped = x_init.to(device, torch.float64), torch.zeros(len(x_init), dtype=torch.bool)
    ts = method.grid(steps, device=device)
    outs, nfes = [], []
    for start in range(0, len(x0), batch):
        net = (
            model
            if labels is None
            else Conditioned(model, labels[start : start + batch].to(device))
        )
        sol = solve(
            method.rhs(net, dtype=dtype),
            x0[start : start + batch],
            ts,
            solver=solver,
            rtol=rtol,
            atol=atol,
            callback=callback,
        )
        outs.append(method.finalize(net, sol.x, ts[-1], dtype=dtype).float().cpu())
        nfes.append(sol.nfe + method.final_nfe)
    share = float(clipped.float().mean()) if len(clipped) else 0.0
    return SampleResult(torch.cat(outs), max(nfes, default=0), nfes, share)


class SolverSettings(Protocol):
    """What `sample_with` reads from a profile's `[sample]` table (or `latent.FlowSettings`)."""

    solver: str
    steps: int
    rtol: float
    atol: float
    batch: int


def sample_with(
    method: Method,
    model: nn.Module,
    settings: SolverSettings,
    *,
    seeds: Sequence[int],
    shape: tuple[int, ...],
    device: torch.device | str = "cpu",
    callback: StepCallback | None = None,
    x_init: Tensor | None = None,
    labels: Tensor | None = None,
) -> SampleResult:
    """`sample` with the solver, steps, tolerances and batch taken from `settings`."""
    return sample(
        method,
        model,
        seeds=seeds,
        shape=shape,
        solver=settings.solver,
        steps=settings.steps,
        device=device,
        rtol=settings.rtol,
        atol=settings.atol,
        batch=settings.batch,
        callback=callback,
        x_init=x_init,
        labels=labels,
    )
