"""torchdiffeq solvers (adaptive dopri5 & co., fixed-grid rk4/midpoint) behind the `rhs(x, t)` convention."""

from __future__ import annotations

import math

import torch
import torchdiffeq
from torch import Tensor, nn

from pfgmctl.solvers.base import Rhs, Solution, StepCallback, StepInfo

ADAPTIVE = frozenset({"dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun"})
FIXED_GRID = frozenset(
    {"euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams"}
)
METHODS = ADAPTIVE | FIXED_GRID


class _Func(nn.Module):
    """Adapts torchdiffeq's func(t, y) to rhs(x, t) and counts NFE."""

    def __init__(self, rhs: Rhs, callback: StepCallback | None) -> None:
        super().__init__()
        self.rhs, self.callback = rhs, callback
        self.nfe, self.steps = 0, 0
        self.last: tuple[float, Tensor] | None = None

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.nfe += 1
        self.last = (float(t), y)
        return self.rhs(y, t)

    def _report(self, t: float, y: Tensor) -> None:
        self.steps += 1
        if self.callback is not None:
            self.callback(StepInfo(i=self.steps, n=None, t=t, nfe=self.nfe, x=y))


class _AdaptiveFunc(_Func):
    """Reports each accepted step with the state at its end when the solver evaluated it there
    (dopri5/bosh3 are first-same-as-last), else with the state at its start."""

    def __init__(self, rhs: Rhs, callback: StepCallback | None, direction: float) -> None:
        super().__init__(rhs, callback)
        self.direction = direction  # torchdiffeq hands callbacks |dt| in its own flipped time

    def callback_accept_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        t1 = float(t0) + self.direction * abs(float(dt))
        if self.last is not None and math.isclose(self.last[0], t1, rel_tol=1e-9, abs_tol=1e-12):
            self._report(self.last[0], self.last[1])
        else:
            self._report(float(t0), y0)


class _FixedFunc(_Func):
    """Fixed-grid methods call back before each step: that is the end of the previous step
    (the end of the last step is reported by `odeint`)."""

    def callback_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        if self.nfe > 0:
            self._report(float(t0), y0)


def odeint(
    rhs: Rhs,
    x: Tensor,
    ts: Tensor,
    *,
    method: str = "dopri5",
    rtol: float = 1e-4,
    atol: float = 1e-4,
    callback: StepCallback | None = None,
) -> Solution:
    """Integrate dx/dt = rhs(x, t) from ts[0] to ts[-1] with torchdiffeq `method`.

    Adaptive methods use only the end points (step size shared by the batch, so NFE depends on the
    batch); fixed-grid methods step on `ts`. The step callback reports accepted steps (i, t, NFE).
    """
    if method not in METHODS:
        raise ValueError(f"unknown torchdiffeq method {method!r}; choose from {sorted(METHODS)}")
    ts = ts.to(torch.float64)
    if method in ADAPTIVE:
        func: _Func = _AdaptiveFunc(rhs, callback, 1.0 if ts[-1] > ts[0] else -1.0)
        # step_t makes the solver land on ts[-1] instead of stepping past it and interpolating:
        # beyond the end the rhs may be undefined (σ < 0).
        out = torchdiffeq.odeint(
            func, x, ts[[0, -1]], rtol=rtol, atol=atol, method=method, options={"step_t": ts[-1:]}
        )
    else:
        func = _FixedFunc(rhs, callback)
        out = torchdiffeq.odeint(func, x, ts, rtol=rtol, atol=atol, method=method)
        func._report(float(ts[-1]), out[-1])
    return Solution(x=out[-1], nfe=func.nfe)
