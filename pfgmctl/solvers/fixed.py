"""Hand-written fixed-step solvers on a given time grid (EDM Alg. 1–2 without churn)."""

from __future__ import annotations

from torch import Tensor

from pfgmctl.solvers.base import Rhs, Solution, StepCallback, StepInfo


def euler(rhs: Rhs, x: Tensor, ts: Tensor, *, callback: StepCallback | None = None) -> Solution:
    """Explicit Euler over the grid ts[0] → ts[-1]: x ← x + (t_{i+1} − t_i)·f(x, t_i). NFE = len(ts) − 1."""
    n = len(ts) - 1
    for i in range(n):
        x = x + (ts[i + 1] - ts[i]) * rhs(x, ts[i])
        if callback is not None:
            callback(StepInfo(i=i + 1, n=n, t=float(ts[i + 1]), nfe=i + 1, x=x))
    return Solution(x=x, nfe=n)


def heun(rhs: Rhs, x: Tensor, ts: Tensor, *, callback: StepCallback | None = None) -> Solution:
    """Heun's 2nd-order method (EDM Alg. 1 lines 5–8) over ts[0] → ts[-1]. NFE = 2(len(ts) − 1)."""
    n, nfe = len(ts) - 1, 0
    for i in range(n):
        h = ts[i + 1] - ts[i]
        # Euler predictor.
        d = rhs(x, ts[i])
        x_pred = x + h * d
        # Trapezoidal correction.
        d_pred = rhs(x_pred, ts[i + 1])
        x = x + h * 0.5 * (d + d_pred)
        nfe += 2
        if callback is not None:
            callback(StepInfo(i=i + 1, n=n, t=float(ts[i + 1]), nfe=nfe, x=x))
    return Solution(x=x, nfe=nfe)
