"""Text of the dashboard panels, built from a RunModel (pure functions, easy to test)."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table
from rich.text import Text

from pfgmctl.tui.model import RunModel, Trajectory

BAR = 28
"""Width in cells of the log-scale trajectory bar."""
SYMBOL = {"sigma": "σ", "z": "z"}


def _fmt(value: Any, spec: str = ".4g", unit: str = "") -> str:
    """`value` formatted with `spec`, or '–' when it is not a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:{spec}}{unit}"
    return "–"


def duration(seconds: float | None) -> str:
    """'1h02m', '3m05s', '12s' or '–'."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def stats_table(model: RunModel) -> Table:
    """Step, loss, lr, throughput, ETA, EMA, device and profile of the run."""
    last, train = model.last, model.section("train")
    info, method = model.run_info, model.section("method")
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    status = "run directory deleted" if model.missing else model.status
    rows = [
        ("status", status),
        ("profile", f"{model.profile.get('name', '?')} ({method.get('kind', '?')})"),
        ("step", f"{_fmt(last.get('step'), 'd')} / {_fmt(info.get('total_steps'), 'd')}"),
        ("kimg", f"{_fmt(last.get('kimg'), '.1f')} / {_fmt(train.get('kimg'), '.4g')}"),
        ("loss", _fmt(last.get("loss"), ".4f")),
        ("lr", _fmt(last.get("lr"), ".2e")),
        ("speed", f"{_fmt(last.get('img_per_s'), '.0f', ' img/s')}"),
        ("ETA", duration(model.eta_seconds())),
        ("EMA", f"half-life {_fmt(train.get('ema_halflife_kimg'), '.3g', ' kimg')}"),
        ("device", f"{info.get('device', train.get('device', '?'))} ×{info.get('world_size', 1)}"),
        ("ticks", f"{model.n_metrics} × batch {_fmt(train.get('batch_size'), 'd')}"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def log_position(value: float, hi: float, lo: float) -> float:
    """Where `value` lies between `hi` (0) and `lo` (1) on a log scale, clamped to [0, 1]."""
    if value <= 0 or not 0 < lo < hi:
        return 0.0
    frac = (math.log(hi) - math.log(value)) / (math.log(hi) - math.log(lo))
    return min(max(frac, 0.0), 1.0)


def trajectory_text(model: RunModel) -> Text:
    """Current z or σ/r on a log bar from max to min, step k of K, NFE and the job."""
    traj = model.trajectory
    if traj is None:
        return Text("no sampling yet (previews run at each checkpoint)", style="dim")
    sym = SYMBOL.get(traj.var, traj.var)
    state = "done" if traj.done else "running"
    head = f"{traj.job} · {traj.solver}" + (f" · {traj.steps} steps" if traj.steps else "")
    text = Text(f"{head} · {state}\n", style="bold")
    value = f"{sym} = {_fmt(traj.value, '.4g')}"
    if traj.r is not None:
        value += f"  (r = {traj.r:.4g})"
    total = "?" if traj.n is None else str(traj.n)
    text.append(f"{value}   step {traj.i}/{total} · NFE {traj.nfe}")
    if traj.passes > 1:
        text.append(f" · batch {traj.passes}")
    if traj.seconds is not None:
        text.append(f" · {traj.seconds:.1f} s")
    text.append("\n")
    text.append_text(_log_bar(model, traj, sym))
    return text


def _log_bar(model: RunModel, traj: Trajectory, sym: str) -> Text:
    """`σ 80 ▕████░░░░▏ 0.002` — the sampler's position on a log scale."""
    bounds = model.var_bounds(traj.var)
    if bounds is None and traj.history:
        bounds = (max(traj.history), min(traj.history))
    if bounds is None or traj.value is None or bounds[0] <= bounds[1]:
        return Text(f"log {sym}: waiting for steps", style="dim")
    hi, lo = bounds
    filled = round(log_position(traj.value, hi, lo) * BAR)
    text = Text(f"log {sym} {hi:.3g} ▕")
    text.append("█" * filled, style="green")
    text.append("░" * (BAR - filled), style="dim")
    text.append(f"▏ {lo:.3g}")
    return text


def bin_labels(edges: list[Any], count: int) -> list[str]:
    """Short x labels for loss bins: the left edge of each bin."""
    labels = [_fmt(e, ".2g") for e in edges[:count]]
    return labels + [str(i) for i in range(len(labels), count)]
