"""Solvers as pure functions of a generic ODE rhs(x, t): hand-written euler/heun, torchdiffeq for the rest."""

from __future__ import annotations

from torch import Tensor

from pfgmctl.solvers.adaptive import ADAPTIVE, METHODS, odeint
from pfgmctl.solvers.base import Rhs, Solution, StepCallback, StepInfo
from pfgmctl.solvers.fixed import euler, heun

ALIASES = {"rk45": "dopri5"}
SOLVERS = ("euler", "heun", "rk45", *sorted(METHODS - {"euler"}))


def canonical(name: str) -> str:
    """Map a user-facing solver name to the implementation name; raise ValueError if unknown."""
    name = ALIASES.get(name, name)
    if name in ("euler", "heun") or name in METHODS:
        return name
    raise ValueError(f"unknown solver {name!r}; choose from {', '.join(SOLVERS)}")


def is_adaptive(name: str) -> bool:
    """True for torchdiffeq's adaptive-step methods (which ignore the number of steps)."""
    return canonical(name) in ADAPTIVE


def solve(
    rhs: Rhs,
    x: Tensor,
    ts: Tensor,
    *,
    solver: str = "heun",
    rtol: float = 1e-4,
    atol: float = 1e-4,
    callback: StepCallback | None = None,
) -> Solution:
    """Dispatch to euler/heun (hand-written) or any torchdiffeq method (`rk45` = dopri5)."""
    name = canonical(solver)
    if name == "euler":
        return euler(rhs, x, ts, callback=callback)
    if name == "heun":
        return heun(rhs, x, ts, callback=callback)
    return odeint(rhs, x, ts, method=name, rtol=rtol, atol=atol, callback=callback)


__all__ = [
    "SOLVERS",
    "Rhs",
    "Solution",
    "StepCallback",
    "StepInfo",
    "canonical",
    "euler",
    "heun",
    "is_adaptive",
    "odeint",
    "solve",
]
