"""One-line summaries of run directories for `pfgmctl runs` and the run picker (torch-free)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pfgmctl.engine.rundir import EVENTS_FILE, METRICS_FILE, RUN_RE, list_runs, read_latest
from pfgmctl.errors import UsageError
from pfgmctl.tui.model import read_profile

TAIL_BYTES = 256 << 10
"""Bytes read from the end of a JSONL file to find its last lines (files may be huge)."""
STALE_S = 300.0
"""A run without `run_end` whose files are older than this is reported as 'stopped'."""


@dataclass(frozen=True)
class RunSummary:
    """What `pfgmctl runs` prints for one run."""

    number: int | None
    name: str
    path: str
    profile: str
    method: str
    step: int | None
    kimg: float | None
    loss: float | None
    status: str
    checkpoint: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def tail_lines(path: Path, nbytes: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """The complete JSON-object lines in the last `nbytes` of `path` ([] if unreadable)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - nbytes))
            data = f.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if size > nbytes:
        lines = lines[1:]  # the first one is probably cut
    out: list[dict[str, Any]] = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def run_status(run_dir: Path, events: list[dict[str, Any]]) -> str:
    """done | interrupted | failed from the last run_end after the last run_start, else running/stopped."""
    for ev in reversed(events):
        if ev.get("type") == "run_end":
            return str(ev.get("status", "ended"))
        if ev.get("type") == "run_start":
            break
    mtimes = []
    for name in (METRICS_FILE, EVENTS_FILE):
        try:
            mtimes.append((run_dir / name).stat().st_mtime)
        except OSError:
            continue
    if not mtimes:
        return "empty"
    return "running" if time.time() - max(mtimes) < STALE_S else "stopped"


def summarize_run(run_dir: Path) -> RunSummary:
    """Number, profile, last step/kimg/loss, status and latest checkpoint of one run."""
    _, profile = read_profile(run_dir)
    metrics = tail_lines(run_dir / METRICS_FILE)
    last = metrics[-1] if metrics else {}
    latest = read_latest(run_dir) or {}
    match = RUN_RE.match(run_dir.name)
    method = profile.get("method")
    return RunSummary(
        number=int(match.group(1)) if match else None,
        name=run_dir.name,
        path=str(run_dir),
        profile=str(profile.get("name", "?")),
        method=str(method.get("kind", "?")) if isinstance(method, dict) else "?",
        step=last.get("step") if isinstance(last.get("step"), int) else None,
        kimg=_number(last.get("kimg")),
        loss=_number(last.get("loss")),
        status=run_status(run_dir, tail_lines(run_dir / EVENTS_FILE)),
        checkpoint=str(latest["ema"]) if "ema" in latest else None,
    )


def _number(value: Any) -> float | None:
    """A float, or None for anything else."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def resolve_run(spec: str, outdir: Path) -> Path:
    """A run directory from a path, a run number ('12' or '00012') or a directory name."""
    path = Path(spec)
    if path.is_dir():
        return path
    runs = list_runs(outdir)
    for run in runs:
        match = RUN_RE.match(run.name)
        if run.name == spec or (spec.isdigit() and match and int(match.group(1)) == int(spec)):
            return run
    hint = (
        f"'pfgmctl runs --outdir {outdir}' lists them" if runs else "start one with 'pfgmctl train'"
    )
    raise UsageError(f"run {spec!r}: no such run directory under {outdir}; {hint}")
