"""Reliability helpers: a test-only crash hook, deferred SIGINT/SIGTERM, run-dir repair on resume.

No torch here (rundir.py imports the crash hook). The crash hook is armed only by the environment
variable `PFGMCTL_CRASH_AT=<point>[:<n>]`: the n-th time (default 1st) the code reaches `<point>`
the process dies with `os._exit(137)`, exactly as `kill -9` would leave it. Points:
`checkpoint-write` (half of a checkpoint file written to its `.tmp`), `latest-write` (state and
EMA files saved, latest.json not yet replaced), `metrics-write` (half of a metrics line written).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

CRASH_ENV = "PFGMCTL_CRASH_AT"
CRASH_EXIT = 137
_hits: dict[str, int] = {}


def crash_armed(point: str) -> bool:
    """True when PFGMCTL_CRASH_AT names `point` and this is its n-th hit (counts every call)."""
    spec = os.environ.get(CRASH_ENV)
    if not spec:
        return False
    name, _, nth = spec.partition(":")
    if name != point:
        return False
    _hits[point] = _hits.get(point, 0) + 1
    return _hits[point] == (int(nth) if nth.isdigit() else 1)


def crash_now() -> None:
    """Die like `kill -9`: no cleanup, no flush, exit status 137."""
    os._exit(CRASH_EXIT)


def crash_point(point: str) -> None:
    """Test-only: die here when PFGMCTL_CRASH_AT arms `point` (a no-op otherwise)."""
    if crash_armed(point):
        crash_now()


class Terminated(KeyboardInterrupt):
    """SIGTERM delivered to a training run; handled exactly like Ctrl-C (exit 143 in the CLI)."""


class StopRequest:
    """A SIGINT/SIGTERM noted by the handler and acted on at the next step boundary."""

    def __init__(self) -> None:
        self.signal = ""

    def check(self) -> None:
        """Raise `Terminated` (SIGTERM) or `KeyboardInterrupt` (SIGINT) if one was received."""
        if self.signal == "SIGTERM":
            raise Terminated("SIGTERM")
        if self.signal:
            raise KeyboardInterrupt

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: the first signal is deferred, a second one raises at once."""
        first = not self.signal
        self.signal = signal.Signals(signum).name
        if not first:
            self.check()


@contextmanager
def deferred_interrupts() -> Iterator[StopRequest]:
    """Within the block SIGTERM and SIGINT set a `StopRequest`; old handlers are restored after."""
    # At a step boundary the step's tick line and checkpoint are both written or both not.
    # An ignored SIGINT (a background job of a non-interactive shell) stays ignored.
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers can only be installed from the main thread
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig, handler in old.items():
        if handler is not signal.SIG_IGN:
            signal.signal(sig, stop.handle)
    try:
        yield stop
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises `Terminated` at once, as Ctrl-C raises KeyboardInterrupt.

    For commands with nothing to save (sample, encode): they stop and write nothing partial.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGTERM)

    def handle(signum: int, frame: FrameType | None) -> None:
        raise Terminated("SIGTERM")

    if old is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def ignore_sigterm() -> None:
    """Ignore further SIGTERMs (while the final checkpoint is written); main thread only."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _line_step(line: bytes) -> int | None:
    """The `step` of one complete metrics line, None for a torn or malformed one."""
    try:
        obj: Any = json.loads(line)
    except ValueError:
        return None
    step = obj.get("step") if isinstance(obj, dict) else None
    return step if isinstance(step, int) else None


def trim_metrics(path: Path, step: int) -> int:
    """Atomically rewrite a metrics.jsonl without torn lines or lines past `step`; return dropped."""
    if not path.is_file():
        return 0
    lines = path.read_bytes().split(b"\n")
    tail = lines.pop()  # b"" after a final newline, else a torn last line
    kept = [ln for ln in lines if (s := _line_step(ln)) is not None and s <= step]
    dropped = len(lines) - len(kept) + (1 if tail.strip() else 0)
    if dropped:
        from pfgmctl.engine.rundir import atomic_write_bytes  # rundir imports this module

        atomic_write_bytes(path, b"".join(ln + b"\n" for ln in kept))
    return dropped


def trim_torn_tail(path: Path) -> bool:
    """Cut a trailing partial line (a write killed midway) from an append-only JSONL file."""
    if not path.is_file():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    with open(path, "r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)
    return True


def repair_run_dir(run_dir: Path, step: int) -> None:
    """Before resuming at `step`: trim metrics past it, a torn events tail and stale `.tmp` files."""
    trim_metrics(run_dir / "metrics.jsonl", step)
    trim_torn_tail(run_dir / "events.jsonl")
    for tmp in (run_dir / "checkpoints").glob("*.tmp"):
        tmp.unlink(missing_ok=True)


def bad_run_message(step: int, bad_run: int, limit: int, saved: int, run_dir: Path) -> str:
    """The one-line error after `limit` consecutive non-finite losses."""
    kept = f"step {saved}" if saved else "none"
    return (
        f"loss is not finite at step {step} ({bad_run} consecutive bad steps, "
        f"train.max_bad_steps={limit}); last good checkpoint in {run_dir}: {kept}; "
        "lower train.lr or check the data for NaN/inf"
    )
