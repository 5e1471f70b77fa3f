"""torchdiffeq solvers (adaptive dopri5 & co., fixed-grid rk4/midpoint) behind the `rhs(x, t)` convention."""

from __future__ import annotations

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
    """Adapts torchdiffeq's func(t, y) to rhs(x, t), counts NFE and forwards accepted steps."""

    def __init__(self, rhs: Rhs, callback: StepCallback | None, direction: float) -> None:
        super().__init__()
        self.rhs, self.callback, self.direction = rhs, callback, direction
        self.nfe, self.steps = 0, 0

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.nfe += 1
        return self.rhs(y, t)

    def _report(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self.steps += 1
        if self.callback is not None:
            t = float(t0) + self.direction * abs(float(dt))
            self.callback(StepInfo(i=self.steps, n=None, t=t, nfe=self.nfe, x=y0))

    def callback_accept_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self._report(t0, y0, dt)


class _FixedFunc(_Func):
    """Fixed-grid torchdiffeq methods only support `callback_step`."""

    def callback_step(self, t0: Tensor, y0: Tensor, dt: Tensor) -> None:
        self._report(t0, y0, dt)


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
    direction = 1.0 if float(ts[-1]) > float(ts[0]) else -1.0
    func = (_Func if method in ADAPTIVE else _FixedFunc)(rhs, callback, direction)
    t = ts[[0, -1]] if method in ADAPTIVE else ts
    out = torchdiffeq.odeint(func, x, t.to(torch.float64), rtol=rtol, atol=atol, method=method)
    return Solution(x=out[-1], nfe=func.nfe)
