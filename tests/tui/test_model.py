"""RunModel and helpers: incremental reads, bounded windows, trajectories, defensive PNG loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tui_fixtures import append, make_run, metrics_line, sample_events, write_png

from pfgmctl.engine.rundir import JsonlTail
from pfgmctl.tui.images import load_png
from pfgmctl.tui.model import MAX_READ, START_TAIL, Decimator, RunModel, newest_preview
from pfgmctl.tui.panels import duration, log_position


def test_tail_partial_line_truncation_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    tail = JsonlTail(path, MAX_READ, START_TAIL)
    assert tail.read_new() == []  # missing file
    path.write_text('{"a": 1}\nnot json\n[1]\n{"b":')
    assert tail.read_new() == [{"a": 1}]
    assert tail.skipped == 2
    append(path, partial=' 2}\n{"c": 3}\n')
    assert tail.read_new() == [{"b": 2}, {"c": 3}]
    path.write_text('{"d": 4}\n')  # truncated and rewritten
    assert tail.read_new() == [{"d": 4}]


def test_huge_file_is_read_from_its_tail_in_bounded_chunks(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"step": i}) + "\n" for i in range(20000)))
    tail = JsonlTail(path, max_bytes=4096, start_tail=40960)
    first = tail.read_new()
    assert 0 < len(first) < 500
    assert first[0]["step"] > 15000  # started near the end, first cut line dropped
    rows = first
    while tail.pending:
        rows += tail.read_new()
    assert rows[-1] == {"step": 19999}
    assert [r["step"] for r in rows] == list(range(rows[0]["step"], 20000))


def test_decimator_stays_bounded_and_spans_the_run() -> None:
    dec = Decimator(cap=100)
    for i in range(100_000):
        dec.add((float(i), 1.0))
    assert len(dec.points) <= 100
    assert dec.points[0][0] == 0.0
    assert dec.points[-1][0] > 90_000


def test_model_windows_eta_and_batched_trajectory(tmp_path: Path) -> None:
    run = make_run(tmp_path, steps=3)
    model = RunModel(run)
    assert model.poll() == {"metrics", "events"}
    assert model.status == "running"
    assert model.eta_seconds() == (10.0 - 3 * 0.064) * 1.5
    assert model.var_bounds("sigma") == (80.0, 0.002)
    append(run / "events.jsonl", *sample_events("j", n=4), *sample_events("j", n=4)[1:3])
    assert model.poll() == {"events"}
    traj = model.trajectory
    assert traj is not None
    assert (traj.passes, traj.i, traj.nfe, len(traj.history)) == (2, 2, 4, 2)  # second batch
    assert model.poll() == set()
    append(run / "metrics.jsonl", *(metrics_line(s, 1.0) for s in range(4, 2500)))
    model.poll()
    assert len(model.recent) == 2000
    assert len(model.series(zoom=True)) == 200
    assert model.series(zoom=False)[-1] == (2499.0, 1.0)


def test_pfgm_trajectory_uses_z(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    start = {"type": "sample_start", "job": "s", "solver": "rk45", "n": 4, "time_name": "z"}
    step = {"type": "sample_step", "job": "s", "i": 3, "n": None, "t": 0.5, "z": 7.5, "nfe": 20}
    append(run / "events.jsonl", start, step)
    model = RunModel(run)
    model.poll()
    assert model.trajectory is not None
    assert (model.trajectory.var, model.trajectory.value, model.trajectory.n) == ("z", 7.5, None)


def test_newest_preview_and_truncated_png(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    assert newest_preview(run) is None
    write_png(run / "samples" / "000000001.png", (1, 2, 3))
    (run / "samples" / "x.png.tmp").write_bytes(b"junk")
    os.utime(run / "samples" / "000000001.png", ns=(1, 1))
    write_png(run / "samples" / "sample.png", (4, 5, 6))
    ref = newest_preview(run)
    assert ref is not None
    assert ref.path.name == "sample.png"
    assert ref.label == "sample.png"
    img = load_png(ref.path)
    assert img is not None
    assert img.getpixel((0, 0)) == (4, 5, 6)
    data = ref.path.read_bytes()
    ref.path.write_bytes(data[:40])
    assert load_png(ref.path) is None
    assert load_png(run / "missing.png") is None


def test_panel_helpers() -> None:
    assert log_position(80.0, 80.0, 0.002) == 0.0
    assert log_position(0.002, 80.0, 0.002) == 1.0
    assert abs(log_position(0.4, 80.0, 0.002) - 0.5) < 1e-9
    assert (duration(5), duration(125), duration(3725), duration(None)) == (
        "5s",
        "2m05s",
        "1h02m",
        "–",
    )
