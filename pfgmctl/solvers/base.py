"""Types shared by all solvers. Solvers know nothing of sigma, z or networks: only rhs(x, t)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

Rhs = Callable[[Tensor, Tensor], Tensor]
"""(x [B, ...], t 0-dim float64) -> dx/dt, same shape as x."""


@dataclass(frozen=True)
class StepInfo:
    """What a solver reports after each step: step i of n (n None when adaptive), new time t, NFE so far."""

    i: int
    n: int | None
    t: float
    nfe: int
    x: Tensor


StepCallback = Callable[[StepInfo], None]


@dataclass(frozen=True)
class Solution:
    """A solve's end state and its number of function (network) evaluations."""

    x: Tensor
    nfe: int
