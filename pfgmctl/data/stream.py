"""A deterministic, resumable row sampler: epochs of random permutations drawn from one generator."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from pfgmctl.errors import CheckpointError


class DataStream:
    """Infinite rows of `data` [n, ...], without replacement inside an epoch.

    The generator is touched only when an epoch starts (one `randperm`), so the state
    (generator state at the epoch start, position, epoch) replays the stream exactly.
    """

    def __init__(self, data: Tensor, gen: torch.Generator, labels: Tensor | None = None) -> None:
        if data.ndim < 1 or data.shape[0] == 0:
            raise ValueError("DataStream needs at least one row")
        if labels is not None and labels.shape[0] != data.shape[0]:
            raise ValueError("DataStream labels must have one entry per row")
        self.data = data
        self.labels = labels
        self.gen = gen
        self.epoch = 0  # epochs started so far
        self.pos = 0  # rows used from the current epoch's permutation
        self._perm: Tensor | None = None
        self._epoch_state: Tensor | None = None  # generator state when the current epoch began

    @property
    def n(self) -> int:
        """Rows per epoch."""
        return int(self.data.shape[0])

    def _start_epoch(self) -> None:
        """Draw the next epoch's permutation (the only use of the generator)."""
        self._epoch_state = self.gen.get_state()
        self._perm = torch.randperm(self.n, generator=self.gen, device=self.gen.device)
        self.epoch += 1
        self.pos = 0

    def next(self, k: int) -> Tensor:
        """The next `k` rows [k, ...], continuing across epochs as needed."""
        return self.data[self.next_indices(k).to(self.data.device)]

    def draw(self, k: int) -> tuple[Tensor, Tensor | None]:
        """The next `k` rows and their labels (None for unlabelled data)."""
        idx = self.next_indices(k)
        labels = None if self.labels is None else self.labels[idx.to(self.labels.device)]
        return self.data[idx.to(self.data.device)], labels

    def next_indices(self, k: int) -> Tensor:
        """Indices [k] (int64, on the generator's device) of the next `k` rows."""
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        chunks: list[Tensor] = []
        remaining = k
        while remaining > 0:
            if self._perm is None or self.pos >= self.n:
                self._start_epoch()
            assert self._perm is not None
            take = min(remaining, self.n - self.pos)
            chunks.append(self._perm[self.pos : self.pos + take])
            self.pos += take
            remaining -= take
        if not chunks:
            return torch.zeros(0, dtype=torch.int64, device=self.gen.device)
        return torch.cat(chunks)

    def state_dict(self) -> dict[str, Any]:
        """Plain state: generator state at the current epoch's start, position, epoch, n."""
        started = self._epoch_state
        return {
            "gen_state": (started if started is not None else self.gen.get_state()).clone(),
            "pos": self.pos,
            "epoch": self.epoch,
            "n": self.n,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`: replay the epoch's permutation, then seek to the position."""
        n = int(state.get("n", self.n))
        if n != self.n:
            raise CheckpointError(
                f"data stream state is for {n} rows but the data has {self.n}; "
                "resume with the same [data] settings"
            )
        self.gen.set_state(state["gen_state"].to(torch.uint8).cpu())
        self.epoch = int(state["epoch"])
        self._perm = None
        self.pos = int(state["pos"])
        self._epoch_state = self.gen.get_state() if self.epoch > 0 else None
        if self.epoch > 0:
            # Re-draw the permutation; this leaves the generator where the original left it.
            self._perm = torch.randperm(self.n, generator=self.gen, device=self.gen.device)
