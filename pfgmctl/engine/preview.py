"""Sampling that reports its trajectory into a run dir's events (sample_start/step/done)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pfgmctl.config.schema import SampleConfig
from pfgmctl.engine.rundir import Sink
from pfgmctl.methods import Method
from pfgmctl.sampling import SampleResult, sample_with
from pfgmctl.solvers import StepInfo, is_adaptive


def sample_with_events(
    method: Method,
    model: nn.Module,
    cfg: SampleConfig,
    *,
    seeds: Sequence[int],
    shape: tuple[int, ...],
    device: torch.device,
    sink: Sink,
    job: str,
    path: str | None = None,
    labels: Tensor | None = None,
) -> SampleResult:
    """`sampling.sample` with the profile's solver settings, emitting architecture.md §7 events."""
    adaptive = is_adaptive(cfg.solver)
    start = {
        "type": "sample_start",
        "job": job,
        "solver": cfg.solver,
        "n": len(seeds),
        "time_name": method.time_name,
    }
    start.update({"rtol": cfg.rtol, "atol": cfg.atol} if adaptive else {"steps": cfg.steps})
    sink(start)

    def on_step(info: StepInfo) -> None:
        sink(
            {
                "type": "sample_step",
                "job": job,
                "i": info.i,
                "n": info.n,
                "t": info.t,
                "nfe": info.nfe,
                "progress": method.progress(info.t),
                **method.physical(info.t),
            }
        )

    t0 = time.perf_counter()
    result = sample_with(
        method,
        model,
        cfg,
        seeds=seeds,
        shape=shape,
        device=device,
        callback=on_step,
        labels=labels,
    )
    sink(
        {
            "type": "sample_done",
            "job": job,
            "path": path,
            "nfe": result.nfe,
            "seconds": time.perf_counter() - t0,
            "prior_clipped": result.prior_clipped,
        }
    )
    return result
