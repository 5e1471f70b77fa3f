"""The Method interface: a method is its kernel, prior, time variable, loss and ODE right-hand side."""

from __future__ import annotations

from typing import ClassVar, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from pfgmctl.physics.kernels import Generators
from pfgmctl.solvers.base import Rhs


class LossOut(NamedTuple):
    """Per-sample loss [B] and the noise level of each sample [B] (sigma or z) for loss bins."""

    loss: Tensor
    noise: Tensor


class PriorDraw(NamedTuple):
    """State at grid[0] (float64) and which rows were norm-clipped ([n] bool)."""

    x: Tensor
    clipped: Tensor


class Method(Protocol):
    """What train, sample, encode and likelihood need from a method (architecture.md §5)."""

    kind: ClassVar[str]
    time_name: ClassVar[str]

    def rows_needed(self, batch: int) -> int:
        """Data rows drawn per training step for `batch` trained rows."""
        ...

    def loss(
        self,
        model: nn.Module,
        y: Tensor,
        *,
        gen: torch.Generator,
        charges: Tensor | None = None,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> LossOut:
        """Per-sample training loss of clean rows y [B, ...] = charges[:B].

        `labels` are the class labels of `charges` (of y when charges is None), the first B those of
        y; `aug_labels` [B, 9] are EDM augmentation labels of y. Both are passed on to the model.
        """
        ...

    def grid(self, steps: int, *, device: torch.device) -> Tensor:
        """Descending float64 time grid from the prior to the end of the ODE solve."""
        ...

    def prior(
        self, n: int, shape: tuple[int, ...], *, gen: Generators, device: torch.device
    ) -> PriorDraw:
        """n draws of the prior at grid[0], float64."""
        ...

    def rhs(self, model: nn.Module, *, dtype: torch.dtype) -> Rhs:
        """dx/dt in the method's own time variable, with the model run in `dtype`."""
        ...

    def finalize(self, model: nn.Module, x: Tensor, t: Tensor, *, dtype: torch.dtype) -> Tensor:
        """Map the state at grid[-1] to the sample (pfgmpp: one denoiser call into σ = 0)."""
        ...

    @property
    def final_nfe(self) -> int:
        """Network evaluations spent by `finalize`."""
        ...

    def log_prior(self, x: Tensor) -> Tensor:
        """Exact log-density of the prior at grid[0], [B] float64."""
        ...

    def physical(self, t: float) -> dict[str, float]:
        """The physical time of a solver time: {"sigma", "r"} or {"z"}."""
        ...

    def progress(self, t: float) -> float:
        """Sampling progress 0 → 1, log-scale in sigma or z."""
        ...

    def noise_edges(self, bins: int) -> list[float]:
        """Edges (bins + 1, increasing) of the noise bins for per-bin training losses."""
        ...


def batch_time(t: Tensor, x: Tensor) -> Tensor:
    """A solver's 0-dim time as a per-sample [B] tensor (no batch-mean time, no host sync)."""
    return t.to(torch.float64).expand(x.shape[0])


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of a model's parameters; float64 for parameter-free (exact) models."""
    p = next(iter(model.parameters()), None)
    return p.dtype if p is not None else torch.float64
