"""Data sets as tensors [n, ...]: built-in 2-D toys and user arrays, split into train/holdout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from pfgmctl.data.arrays import load_array, load_labels, to_images
from pfgmctl.data.digits import load_digits
from pfgmctl.data.stream import DataStream
from pfgmctl.data.toy2d import TOYS, toy
from pfgmctl.errors import DataError

if TYPE_CHECKING:
    from pfgmctl.config.schema import ArrayData, DataConfig

__all__ = [
    "HOLDOUT_SEED",
    "TOYS",
    "DataStream",
    "Dataset",
    "build_dataset",
    "holdout_indices",
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
    train_labels: Tensor | None = None  # int64 [n_train] class labels, only for conditional data
    holdout_labels: Tensor | None = None  # int64 [n_holdout]
    num_classes: int = 0  # > 0 exactly when training is class-conditional
    class_names: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # skipped unreadable files etc., for the CLI to show

    @property
    def item_shape(self) -> tuple[int, ...]:
        """Shape of one row."""
        return tuple(self.train.shape[1:])

    @property
    def data_dim(self) -> int:
        """N: the number of values in one row."""
        return math.prod(self.item_shape)


def build_dataset(cfg: DataConfig) -> Dataset:
    """Draw or load the data of a `[data]` table, scale/shift it and split off the holdout.

    Labelled sources return class labels; they are kept only when `[data] conditional = true`.
    """
    raw = _load(cfg)
    x = raw.x * cfg.scale + cfg.shift
    train_idx, hold_idx = holdout_indices(x.shape[0], cfg.holdout)
    if train_idx.numel() == 0:
        raise DataError(
            f"[data] holdout = {cfg.holdout} of {x.shape[0]} rows leaves no training rows; "
            "lower holdout or use more data"
        )
    train, holdout = x[train_idx], x[hold_idx]
    if not getattr(cfg, "conditional", False):
        return Dataset(train=train, holdout=holdout, name=raw.name, warnings=raw.warnings)
    if raw.labels is None:
        raise DataError(
            f"[data] conditional = true but data '{raw.name}' has no labels; "
            "set conditional = false or use labelled data"
        )
    return Dataset(
        train=train,
        holdout=holdout,
        name=raw.name,
        train_labels=raw.labels[train_idx],
        holdout_labels=raw.labels[hold_idx],
        num_classes=len(raw.class_names),
        class_names=raw.class_names,
        warnings=raw.warnings,
    )


@dataclass(frozen=True, eq=False)
class RawData:
    """Rows as loaded (before scale/shift/split), optional int64 labels and the class names."""

    x: Tensor
    name: str
    labels: Tensor | None = None
    class_names: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # e.g. unreadable files skipped under `skip_bad`; CLI shows them


def _load(cfg: DataConfig) -> RawData:
    """Dispatch on `[data] kind`; `n` cuts to the first rows."""
    if cfg.kind == "toy":
        gen = torch.Generator().manual_seed(cfg.seed)
        return RawData(toy(cfg.name, cfg.n, gen), f"toy:{cfg.name}")
    if cfg.kind == "digits":
        x, y = load_digits()
        if cfg.n is not None:
            x, y = x[: cfg.n], y[: cfg.n]
        return RawData(x, "digits", y, tuple(str(d) for d in range(10)))
    if cfg.kind == "array":
        x = to_images(_load_rows(cfg), cfg.path, cfg.pixels, cfg.layout)
        if cfg.labels_key is None:
            if cfg.conditional:
                raise DataError(
                    f"[data] conditional = true but no [data] labels_key names the labels in "
                    f"'{cfg.path}'; set labels_key (an int array [n] in the .npz) or "
                    "conditional = false"
                )
            return RawData(x, Path(cfg.path).name)
        labels = load_labels(cfg.path, cfg.labels_key)
        if cfg.n is not None:
            labels = labels[: cfg.n]
        if labels.shape[0] != x.shape[0]:
            raise DataError(
                f"data file '{cfg.path}': labels '{cfg.labels_key}' has {labels.shape[0]} "
                f"entries but the data has {x.shape[0]} rows; save one label per row"
            )
        names = tuple(str(k) for k in range(int(labels.max()) + 1))
        return RawData(x, Path(cfg.path).name, labels, names)
    from pfgmctl.data.images import load_images  # image sources: Pillow only when used

    return load_images(cfg)


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
    train_idx, hold_idx = holdout_indices(x.shape[0], fraction)
    return x[train_idx.to(x.device)], x[hold_idx.to(x.device)]


def holdout_indices(n: int, fraction: float) -> tuple[Tensor, Tensor]:
    """Row indices of the (train, holdout) split; apply the same to labels as to rows."""
    if fraction <= 0:
        return torch.arange(n), torch.arange(0)
    n_hold = math.ceil(fraction * n - 1e-9)  # tolerate 0.7 * 10 = 7.000000000000001
    if n - n_hold < 1:
        raise DataError(
            f"[data] holdout = {fraction} of {n} rows leaves no training rows; "
            "lower holdout or use more data"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    return perm[: n - n_hold], perm[n - n_hold :]


def mean_norm(data: Tensor) -> float:
    """Mean L2 norm of the flattened rows (float64), the ‖x‖_avg of PFGM's heuristics."""
    if data.shape[0] == 0:
        raise ValueError("mean_norm of an empty tensor")
    return float(data.flatten(1).to(torch.float64).norm(dim=1).mean())
