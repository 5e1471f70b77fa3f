"""Fixture run directories for the dashboard tests (no torch, no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROFILE = """name = "toy2d-pfgmpp"
[method]
kind = "pfgmpp"
sigma_min = 0.002
sigma_max = 80.0
[train]
kimg = 10.0
batch_size = 64
ema_halflife_kimg = 0.5
device = "cpu"
"""


def metrics_line(step: int, loss: float) -> dict[str, Any]:
    """One metrics.jsonl row in the trainer's format."""
    return {
        "step": step,
        "kimg": step * 0.064,
        "loss": loss,
        "lr": 1e-3,
        "img_per_s": 640.0,
        "sec_per_kimg": 1.5,
        "loss_bins": {
            "var": "sigma",
            "edges": [0.002, 0.1, 1.0, 80.0],
            "mean": [0.5, 1.0, 2.0],
            "count": [10, 10, 10],
        },
    }


def append(path: Path, *objs: dict[str, Any], partial: str = "") -> None:
    """Append JSON lines (and optionally an unterminated partial line)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(o) + "\n" for o in objs) + partial)


def write_png(path: Path, color: tuple[int, int, int], size: int = 16) -> None:
    """A solid-colour PNG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path)


def make_run(root: Path, number: int = 0, steps: int = 5) -> Path:
    """A run dir with profile, `steps` metrics lines, a run_start event and one checkpoint."""
    run = root / f"{number:05d}-toy2d-pfgmpp"
    (run / "samples").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "profile.toml").write_text(PROFILE, encoding="utf-8")
    append(run / "metrics.jsonl", *(metrics_line(s, 2.0 / s) for s in range(1, steps + 1)))
    start = {"type": "run_start", "device": "cpu", "world_size": 1, "step": 0, "total_steps": 156}
    ck = {"type": "checkpoint", "step": steps, "kimg": 0.32, "state": "s.pt", "sample": "a.png"}
    append(run / "events.jsonl", start, ck)
    return run


def sample_events(job: str, n: int = 4) -> list[dict[str, Any]]:
    """sample_start and n sample_step events going down from σ_max."""
    events: list[dict[str, Any]] = [
        {
            "type": "sample_start",
            "job": job,
            "solver": "heun",
            "n": 16,
            "time_name": "sigma",
            "steps": n,
        }
    ]
    for i in range(1, n + 1):
        sigma = 80.0 * (0.002 / 80.0) ** (i / n)
        events.append(
            {
                "type": "sample_step",
                "job": job,
                "i": i,
                "n": n,
                "t": sigma,
                "nfe": 2 * i,
                "progress": i / n,
                "sigma": sigma,
                "r": sigma * 11.3,
            }
        )
    return events
