"""Rendering of engine events: rich progress on a terminal, plain tick lines otherwise."""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainRenderer:
    """Sink for `progress`, `tick`, `checkpoint` events of a training run."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console, self.quiet = console, quiet
        self.live = console.is_terminal and not quiet
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.task: Any = None
        self.t0 = time.perf_counter()

    def __enter__(self) -> TrainRenderer:
        if self.live:
            self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "progress" and self.live:
            if self.task is None:
                self.task = self.progress.add_task("train", total=event["total"], loss=math.nan)
            self.progress.update(
                self.task, completed=event["step"], total=event["total"], loss=event["loss"]
            )
        elif kind == "tick" and not self.quiet:
            self._line(
                f"step {event['step']:>7}  kimg {event['kimg']:9.2f}  loss {event['loss']:.4f}  "
                f"lr {event['lr']:.2e}  {event['img_per_s']:8.0f} img/s  "
                f"{time.perf_counter() - self.t0:7.1f} s"
            )
        elif kind == "checkpoint" and not self.quiet:
            self._line(f"checkpoint {event['state']} (step {event['step']})")

    def _line(self, text: str) -> None:
        if self.live:
            self.progress.console.print(text, highlight=False)
        else:
            self.console.print(text, highlight=False, soft_wrap=True)


class SampleRenderer:
    """Sink for sampling events: a bar over the trajectory's progress (z or σ, log scale)."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.live = console.is_terminal and not quiet
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]sample"),
            BarColumn(),
            TextColumn("{task.fields[where]}"),
            TextColumn("NFE {task.fields[nfe]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task: Any = None

    def __enter__(self) -> SampleRenderer:
        if self.live:
            self.progress.start()
            self.task = self.progress.add_task("sample", total=1.0, where="", nfe=0)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.live:
            self.progress.stop()

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("type") != "sample_step" or not self.live:
            return
        where = "  ".join(
            f"{k} {event[k]:.4g}" for k in ("z", "sigma", "r") if event.get(k) is not None
        )
        self.progress.update(self.task, completed=event["progress"], where=where, nfe=event["nfe"])
