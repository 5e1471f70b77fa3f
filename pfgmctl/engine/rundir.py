"""Run directories (architecture §7): numbering, atomic writers, JSONL sinks and tailing.

This module must not import torch: the TUI reads run dirs through it.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Self

from pfgmctl.engine.faults import crash_armed, crash_now

RUN_RE = re.compile(r"^(\d{5,})-(.+)$")
"""Run directory names: `NNNNN-<name>` (5-digit zero-padded run number)."""

Sink = Callable[[dict[str, Any]], None]
"""An event consumer: `sink({"type": ..., ...})`."""

METRICS_FILE = "metrics.jsonl"
EVENTS_FILE = "events.jsonl"
LATEST_FILE = "latest.json"
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]")
_CREATE_RETRIES = 100


def safe_run_name(name: str) -> str:
    """Replace characters outside [A-Za-z0-9._-] with '-' (empty name → 'run')."""
    return _UNSAFE_RE.sub("-", name) or "run"


def _run_number(path: Path) -> int | None:
    """The run number of a run directory name, or None for anything else."""
    match = RUN_RE.match(path.name)
    return int(match.group(1)) if match else None


def list_runs(outdir: Path) -> list[Path]:
    """Run directories under `outdir`, sorted by run number (missing outdir → [])."""
    if not outdir.is_dir():
        return []
    runs = [p for p in outdir.iterdir() if p.is_dir() and _run_number(p) is not None]
    return sorted(runs, key=lambda p: (_run_number(p), p.name))


def newest_run(outdir: Path) -> Path | None:
    """The run directory with the highest run number, or None if there is none."""
    runs = list_runs(outdir)
    return runs[-1] if runs else None


def create_run_dir(outdir: Path, name: str) -> Path:
    """Create `outdir/NNNNN-<name>/` (next free number) with `checkpoints/` and `samples/`."""
    outdir.mkdir(parents=True, exist_ok=True)
    safe = safe_run_name(name)
    for _ in range(_CREATE_RETRIES):
        numbers = [_run_number(p) for p in list_runs(outdir)]
        num = max((n for n in numbers if n is not None), default=-1) + 1
        run_dir = outdir / f"{num:05d}-{safe}"
        try:
            run_dir.mkdir(exist_ok=False)
        except FileExistsError:  # another process took this number first
            continue
        (run_dir / "checkpoints").mkdir()
        (run_dir / "samples").mkdir()
        return run_dir
    raise FileExistsError(f"could not create a new run directory under {outdir}")


def atomic_write_bytes(path: Path, data: bytes, crash: str = "") -> None:
    """Write `data` to `path` via `<path>.tmp`, fsync and `os.replace` (readers never see a half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            if crash and crash_armed(crash):  # test-only: die with half a file in <path>.tmp
                f.write(data[: len(data) // 2])
                f.flush()
                crash_now()
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically write UTF-8 text to `path`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def finite_json(obj: Any) -> Any:
    """Recursively map non-finite floats to None, paths to str and 0-d scalars to Python numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    if not isinstance(obj, str | int | bool) and obj is not None and hasattr(obj, "item"):
        return finite_json(obj.item())  # numpy / torch scalars, without importing either
    return obj


def json_line(obj: dict[str, Any]) -> str:
    """One strict-JSON line (no NaN/Infinity tokens), newline-terminated."""
    return json.dumps(finite_json(obj), allow_nan=False, separators=(",", ":")) + "\n"


class JsonlWriter:
    """Append-only JSONL file: each line goes out in one `os.write` (architecture §7)."""

    def __init__(self, path: Path, crash: str = "") -> None:
        self.path = path
        self.crash = crash  # test-only crash point (see pfgmctl.engine.faults)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, obj: dict[str, Any]) -> None:
        """Append `obj` as one JSON line."""
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        data = json_line(obj).encode("utf-8")
        if self.crash and crash_armed(self.crash):  # test-only: die with a torn line
            os.write(self._fd, data[: len(data) // 2])
            crash_now()
        written = os.write(self._fd, data)
        while written < len(data):  # regular files practically never write short
            written += os.write(self._fd, data[written:])

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class JsonlTail:
    """Incremental JSONL reader by byte offset; buffers a trailing partial line.

    `max_bytes` bounds one read (a huge file is caught up over several calls, see `pending`);
    `start_tail` starts a file larger than that many bytes near its end, dropping the first
    (partial) line. A truncated or replaced file is read again from the start.
    """

    def __init__(
        self, path: Path, max_bytes: int | None = None, start_tail: int | None = None
    ) -> None:
        self.path = path
        self.max_bytes, self.start_tail = max_bytes, start_tail
        self.offset = 0
        self.size = 0
        self.skipped = 0
        self._partial = b""
        self._inode: int | None = None
        self._drop_first = False

    @property
    def pending(self) -> bool:
        """Whether bytes known to exist are still unread."""
        return self.offset < self.size

    def _chunk(self) -> bytes:
        """The next block of bytes."""
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            if self._inode is None and self.start_tail is not None and st.st_size > self.start_tail:
                self.offset, self._drop_first = st.st_size - self.start_tail, True
            elif st.st_size < self.offset or self._inode not in (None, st.st_ino):
                self.offset, self._partial = 0, b""  # truncated or replaced
            self._inode, self.size = st.st_ino, st.st_size
            f.seek(self.offset)
            return f.read(-1 if self.max_bytes is None else self.max_bytes)

    def read_new(self) -> list[dict[str, Any]]:
        """Complete lines appended since the last call (malformed ones are counted in `.skipped`)."""
        try:
            chunk = self._chunk()
        except OSError:  # missing (not yet written, or deleted) or unreadable
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        if self._drop_first and b"\n" in data:
            data, self._drop_first = data.split(b"\n", 1)[1], False
        *lines, self._partial = data.split(b"\n")
        return [obj for obj in map(self._parse, lines) if obj is not None]

    def _parse(self, line: bytes) -> dict[str, Any] | None:
        """Decode one complete line; None for a blank or malformed one."""
        if not line.strip():
            return None
        try:
            obj = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            obj = None
        if not isinstance(obj, dict):
            self.skipped += 1
            return None
        return obj


class RunSink:
    """Routes events into a run dir: ticks → metrics.jsonl, progress → dropped, rest → events.jsonl."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._metrics: JsonlWriter | None = None
        self._events: JsonlWriter | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind is None:
            raise ValueError(f"event without a 'type': {sorted(event)}")
        if kind == "progress":
            return
        if kind == "tick":
            if self._metrics is None:
                self._metrics = JsonlWriter(self.run_dir / METRICS_FILE, crash="metrics-write")
            self._metrics.write({k: v for k, v in event.items() if k != "type"})
            return
        if self._events is None:
            self._events = JsonlWriter(self.run_dir / EVENTS_FILE)
        self._events.write({**event, "time": event.get("time", time.time())})

    def close(self) -> None:
        """Close both JSONL files."""
        for writer in (self._metrics, self._events):
            if writer is not None:
                writer.close()
        self._metrics = self._events = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class NullSink:
    """Ignores every event (non-zero ranks, tests)."""

    def __call__(self, event: dict[str, Any]) -> None:
        return None


class FanoutSink:
    """Forwards every event to each of its sinks in order."""

    def __init__(self, *sinks: Sink) -> None:
        self.sinks = sinks

    def __call__(self, event: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink(event)


def write_latest(run_dir: Path, info: dict[str, Any]) -> None:
    """Atomically replace `checkpoints/latest.json` with `info` ({state, ema, step, ...})."""
    text = json.dumps(finite_json(info), allow_nan=False, indent=1) + "\n"
    atomic_write_text(run_dir / "checkpoints" / LATEST_FILE, text)


def read_latest(run_dir: Path) -> dict[str, Any] | None:
    """`checkpoints/latest.json` as a dict, or None if it is missing or unreadable."""
    try:
        obj = json.loads((run_dir / "checkpoints" / LATEST_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
