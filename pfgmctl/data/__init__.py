"""Data sets as tensors [n, ...]: built-in 2-D toys and user arrays, split into train/holdout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from pfgmctl.data.arrays import load_array
from pfgmctl.data.digits import load_digits
from pfgmctl.data.stream import DataStream
from pfgmctl.data.toy2d import TOYS, toy
from pfgmctl.errors import DataError

if TYPE_CHECKING:
    from pfgmctl.config.schema import ArrayData, DigitsData, ToyData

__all__ = [
    "HOLDOUT_SEED",
    "TOYS",
    "DataStream",
    "Dataset",
    "build_dataset",
    "load_array",
    "mean_norm",
    "split_holdout",
    "toy",
]

HOLDOUT_SEED = 12345  # fixed, so the held-out rows never depend on the training seed


@dataclass(frozen=True, eq=False)
class Dataset:
    """Training rows, held-out rows (possibly empty) and a display name."""

    train: Tensor  # [n_train, ...]
    holdout: Tensor  # [n_holdout, ...]
    name: str

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one row."""
        return tuple(self.train.shape[1:])

    @property
    def data_dim(self) -> int:
        """N: the number of values in one row."""
        return math.prod(self.item_shape)


def build_dataset(cfg: ToyData | ArrayData | DigitsData) -> Dataset:
    """Draw or load the data of a `[data]` table, scale/shift it and split off the holdout."""
    if cfg.kind == "toy":
        gen = torch.Generator().manual_seed(cfg.seed)
        x, name = toy(cfg.name, cfg.n, gen), f"toy:{cfg.name}"
    elif cfg.kind == "digits":
        x, name = load_digits()[0], "digits"
        x = x[: cfg.n] if cfg.n is not None else x
    else:
        x, name = _load_rows(cfg), Path(cfg.path).name
    x = x * cfg.scale + cfg.shift
    train, holdout = split_holdout(x, cfg.holdout)
    return Dataset(train=train, holdout=holdout, name=name)


def _load_rows(cfg: ArrayData) -> Tensor:
    """The array file's rows, cut to the first `cfg.n` if set."""
    if not cfg.path:
        raise DataError(
            "[data] kind = 'array' needs a path; set [data] path or --set data.path=..."
        )
    x = load_array(cfg.path, cfg.key)
    if cfg.n is not None:
        if cfg.n > x.shape[0]:
            raise DataError(
                f"data file '{cfg.path}' has {x.shape[0]} rows but [data] n = {cfg.n}; "
                "lower n or omit it"
            )
        x = x[: cfg.n]
    return x


def split_holdout(x: Tensor, fraction: float) -> tuple[Tensor, Tensor]:
    """Hold out the last ceil(fraction·n) rows of a permutation seeded by HOLDOUT_SEED."""
    n = x.shape[0]
    if fraction <= 0:
        return x, x[:0]
    n_hold = math.ceil(fraction * n - 1e-9)  # tolerate 0.7 * 10 = 7.000000000000001
    if n - n_hold < 1:
        raise DataError(
            f"[data] holdout = {fraction} of {n} rows leaves no training rows; "
            "lower holdout or use more data"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    perm = perm.to(x.device)
    return x[perm[: n - n_hold]], x[perm[n - n_hold :]]


def mean_norm(data: Tensor) -> float:
    """Mean L2 norm of the flattened rows (float64), the ‖x‖_avg of PFGM's heuristics."""
    if data.shape[0] == 0:
        raise ValueError("mean_norm of an empty tensor")
    return float(data.flatten(1).to(torch.float64).norm(dim=1).mean())
