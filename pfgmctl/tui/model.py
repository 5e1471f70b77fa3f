"""Run-directory state for the dashboard: bounded, incremental and torch-free (architecture §7)."""

from __future__ import annotations

import math
import os
import time
import tomllib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pfgmctl.engine.rundir import EVENTS_FILE, METRICS_FILE, JsonlTail

RECENT = 200
"""Points shown when the loss chart is zoomed to the recent window."""
WINDOW = 2000
"""Most recent metrics points kept at full resolution."""
OVERVIEW = 1000
"""Cap on the decimated whole-run loss history."""
MAX_READ = 8 << 20
"""Bytes read from one JSONL file per poll (a huge file is caught up over several polls)."""
START_TAIL = 32 << 20
"""A JSONL file larger than this on first sight is read from its last START_TAIL bytes."""
LOG_LINES = 200
TRAJ_HISTORY = 256


class Decimator:
    """Bounded whole-history buffer: keeps every `stride`-th point, doubling stride when full."""

    def __init__(self, cap: int = OVERVIEW) -> None:
        self.cap = cap
        self.stride = 1
        self.points: list[tuple[float, float]] = []
        self._seen = 0

    def add(self, point: tuple[float, float]) -> None:
        """Offer one point; the buffer never exceeds `cap` entries."""
        if self._seen % self.stride == 0:
            self.points.append(point)
            if len(self.points) > self.cap:
                self.points = self.points[::2]
                self.stride *= 2
        self._seen += 1


@dataclass
class Trajectory:
    """Progress of one sampling job from `sample_*` events (z for PFGM, σ and r for PFGM++)."""

    job: str
    solver: str = "?"
    var: str = "sigma"
    steps: int | None = None
    n_images: int | None = None
    i: int = 0
    n: int | None = None
    nfe: int = 0
    progress: float = 0.0
    value: float | None = None
    r: float | None = None
    done: bool = False
    passes: int = 1
    seconds: float | None = None
    history: deque[float] = field(default_factory=lambda: deque(maxlen=TRAJ_HISTORY))


@dataclass(frozen=True)
class Checkpoint:
    """One `checkpoint` event."""

    step: int
    kimg: float
    state: str
    sample: str


@dataclass(frozen=True)
class PreviewRef:
    """Identity of a preview PNG on disk (a changed mtime or size means a new picture)."""

    path: Path
    mtime_ns: int
    size: int

    @property
    def label(self) -> str:
        """'step N' for a training preview, else the file name."""
        return f"step {int(self.path.stem)}" if self.path.stem.isdigit() else self.path.name


def read_profile(run_dir: Path) -> tuple[str, dict[str, Any]]:
    """(`profile.toml` text, parsed dict); empty on a missing or unreadable file."""
    try:
        text = (run_dir / "profile.toml").read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "", {}


def newest_preview(run_dir: Path) -> PreviewRef | None:
    """The most recently written `samples/*.png` (temporary files ignored)."""
    best: PreviewRef | None = None
    try:
        entries = list(os.scandir(run_dir / "samples"))
    except OSError:
        return None
    for entry in entries:
        if not entry.name.endswith(".png") or not entry.is_file():
            continue
        try:
            st = entry.stat()
        except OSError:
            continue
        ref = PreviewRef(Path(entry.path), st.st_mtime_ns, st.st_size)
        if best is None or (ref.mtime_ns, ref.path.name) > (best.mtime_ns, best.path.name):
            best = ref
    return best


def format_event(ev: dict[str, Any]) -> str | None:
    """One log line for a lifecycle event (None for per-step sampling events)."""
    kind = ev.get("type")
    if kind == "sample_step":
        return None
    if kind == "run_start":
        text = (
            f"run_start on {ev.get('device')} ×{ev.get('world_size', 1)}, step {ev.get('step', 0)}"
        )
    elif kind == "checkpoint":
        text = f"checkpoint step {ev.get('step')} ({_num(ev.get('kimg'))} kimg) {ev.get('state')}"
    elif kind == "sample_start":
        plan = f"{ev['steps']} steps" if "steps" in ev else f"rtol {ev.get('rtol')}"
        text = f"sample_start {ev.get('job')}: {ev.get('solver')} {plan}, n={ev.get('n')}"
    elif kind == "sample_done":
        text = f"sample_done {ev.get('job')}: {ev.get('nfe')} NFE in {_num(ev.get('seconds'))} s"
    elif kind == "run_end":
        text = f"run_end {ev.get('status')} at step {ev.get('step')}"
    else:
        text = f"{kind} " + " ".join(f"{k}={v}" for k, v in ev.items() if k not in ("type", "time"))
    stamp = ev.get("time")
    if isinstance(stamp, int | float):
        text = time.strftime("%H:%M:%S ", time.localtime(stamp)) + text
    return text


def _num(value: Any) -> str:
    """A compact number (3 significant digits) or '?'."""
    return f"{value:.3g}" if isinstance(value, int | float) else "?"


def _float(value: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class RunModel:
    """Everything the dashboard shows about one run directory, updated by `poll()`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.profile_text, self.profile = read_profile(run_dir)
        self.metrics_tail = JsonlTail(run_dir / METRICS_FILE, MAX_READ, START_TAIL)
        self.events_tail = JsonlTail(run_dir / EVENTS_FILE, MAX_READ, START_TAIL)
        self.recent: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self.overview = Decimator()
        self.n_metrics = 0
        self.last: dict[str, Any] = {}
        self.loss_bins: dict[str, Any] | None = None
        self.run_info: dict[str, Any] = {}
        self.status = "waiting"
        self.checkpoints: list[Checkpoint] = []
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.new_log: list[str] = []
        self.trajectory: Trajectory | None = None
        self.missing = False

    def poll(self) -> set[str]:
        """Read what is new; returns the parts that changed ('metrics', 'events', 'missing')."""
        changed: set[str] = set()
        missing = not self.run_dir.is_dir()
        if missing != self.missing:
            self.missing = missing
            changed.add("missing")
        if missing:
            return changed
        if not self.profile:
            self.profile_text, self.profile = read_profile(self.run_dir)
        if self._take_metrics(self.metrics_tail.read_new()):
            changed.add("metrics")
        if self._take_events(self.events_tail.read_new()):
            changed.add("events")
        return changed

    def _take_metrics(self, rows: list[dict[str, Any]]) -> bool:
        """Fold metrics lines into the windows; True if any had a usable loss."""
        used = False
        for row in rows:
            step, loss = _float(row.get("step")), _float(row.get("loss"))
            if step is None or loss is None:
                continue
            self.recent.append((step, loss))
            self.overview.add((step, loss))
            self.n_metrics += 1
            self.last = row
            if isinstance(row.get("loss_bins"), dict):
                self.loss_bins = row["loss_bins"]
            used = True
        if used and self.status == "waiting":
            self.status = "running"
        return used

    def _take_events(self, events: list[dict[str, Any]]) -> bool:
        """Fold lifecycle and sampling events into state and the log."""
        self.new_log = []
        for ev in events:
            self._apply_event(ev)
            line = format_event(ev)
            if line is not None:
                self.log.append(line)
                self.new_log.append(line)
        return bool(events)

    def _apply_event(self, ev: dict[str, Any]) -> None:
        """Update run status, checkpoints or the sampling trajectory from one event."""
        kind = ev.get("type")
        if kind == "run_start":
            self.run_info, self.status = ev, "running"
        elif kind == "run_end":
            self.status = str(ev.get("status", "ended"))
        elif kind == "checkpoint":
            ck = Checkpoint(
                int(_float(ev.get("step")) or 0),
                _float(ev.get("kimg")) or 0.0,
                str(ev.get("state", "")),
                str(ev.get("sample", "")),
            )
            self.checkpoints.append(ck)
        elif kind in ("sample_start", "sample_step", "sample_done"):
            self._apply_sample(kind, ev)

    def _apply_sample(self, kind: str, ev: dict[str, Any]) -> None:
        """Move the trajectory of the current sampling job."""
        job = str(ev.get("job", "?"))
        traj = self.trajectory
        if kind == "sample_start" or traj is None or traj.job != job:
            traj = self.trajectory = Trajectory(job=job)
        if kind == "sample_start":
            traj.solver = str(ev.get("solver", "?"))
            traj.var = "z" if ev.get("time_name") == "z" else "sigma"
            steps = ev.get("steps")
            traj.steps = int(steps) if isinstance(steps, int) else None
            traj.n_images = ev.get("n") if isinstance(ev.get("n"), int) else None
        elif kind == "sample_step":
            self._apply_step(traj, ev)
        else:
            traj.done, traj.progress = True, 1.0
            traj.nfe = int(_float(ev.get("nfe")) or traj.nfe)
            traj.seconds = _float(ev.get("seconds"))

    @staticmethod
    def _apply_step(traj: Trajectory, ev: dict[str, Any]) -> None:
        """One `sample_step`: current z or σ/r, step k of K, NFE, progress."""
        if "z" in ev:
            traj.var = "z"
        value = _float(ev.get(traj.var, ev.get("t")))
        traj.value, traj.r = value, _float(ev.get("r"))
        i = int(_float(ev.get("i")) or 0)
        if i < traj.i:  # the next batch of the same job starts again from z_max / σ_max
            traj.passes += 1
            traj.history.clear()
        if value is not None and value > 0:
            traj.history.append(value)
        traj.i = i
        n = ev.get("n")
        traj.n = int(n) if isinstance(n, int) else None
        traj.nfe = int(_float(ev.get("nfe")) or 0)
        traj.progress = min(max(_float(ev.get("progress")) or 0.0, 0.0), 1.0)

    def series(self, zoom: bool) -> list[tuple[float, float]]:
        """Loss points to plot: the last RECENT when zoomed, else the decimated whole run."""
        if zoom:
            return list(self.recent)[-RECENT:]
        points = list(self.overview.points)
        if self.recent and (not points or points[-1] != self.recent[-1]):
            points.append(self.recent[-1])
        return points

    def section(self, name: str) -> dict[str, Any]:
        """A table of the resolved profile ({} if absent)."""
        value = self.profile.get(name)
        return value if isinstance(value, dict) else {}

    def var_bounds(self, var: str) -> tuple[float, float] | None:
        """(max, min) of the sampling variable from the profile: σ_max/σ_min or z_max/z_min."""
        method = self.section("method")
        hi = _float(method.get("sigma_max" if var == "sigma" else "z_max"))
        lo = _float(method.get("sigma_min" if var == "sigma" else "z_min"))
        if hi is None or lo is None or not 0 < lo < hi:
            return None
        return hi, lo

    def eta_seconds(self) -> float | None:
        """Seconds of training left from kimg remaining × s/kimg (None when unknown)."""
        total = _float(self.section("train").get("kimg"))
        kimg = _float(self.last.get("kimg"))
        per = _float(self.last.get("sec_per_kimg"))
        if per is None and (ips := _float(self.last.get("img_per_s"))):
            per = 1000.0 / ips
        if total is None or kimg is None or per is None or self.status != "running":
            return None
        return max(total - kimg, 0.0) * per
