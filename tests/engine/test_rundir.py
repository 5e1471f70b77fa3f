"""Run-directory contract: numbering, atomic writes, JSONL writer/tail and event routing."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pfgmctl.engine.rundir import (
    RUN_RE,
    FanoutSink,
    JsonlTail,
    JsonlWriter,
    NullSink,
    RunSink,
    atomic_write_bytes,
    atomic_write_text,
    create_run_dir,
    list_runs,
    newest_run,
    read_latest,
    write_latest,
)


def test_rundir_does_not_import_torch() -> None:
    code = "import sys, pfgmctl.engine.rundir; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_create_run_dir_numbering(tmp_path: Path) -> None:
    outdir = tmp_path / "runs"
    first = create_run_dir(outdir, "toy2d-edm")
    assert first.name == "00000-toy2d-edm"
    assert (first / "checkpoints").is_dir()
    assert (first / "samples").is_dir()
    (outdir / "00007-other").mkdir()
    (outdir / "notes").mkdir()
    (outdir / "00099-a-file").write_text("not a dir")
    second = create_run_dir(outdir, "my run/é")
    assert second.name == "00008-my-run--"
    assert RUN_RE.match(second.name)
    assert [p.name for p in list_runs(outdir)] == ["00000-toy2d-edm", "00007-other", second.name]
    assert newest_run(outdir) == second


def test_list_runs_missing_outdir(tmp_path: Path) -> None:
    assert list_runs(tmp_path / "nope") == []
    assert newest_run(tmp_path / "nope") is None


def test_atomic_write_replaces_and_leaves_no_tmp(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "file.json"
    atomic_write_text(path, "old")
    atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert sorted(p.name for p in path.parent.iterdir()) == ["file.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    atomic_write_text(path, "keep me")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_text() == "keep me"
    assert not (tmp_path / "f.txt.tmp").exists()


def test_jsonl_writer_one_line_per_write_and_nonfinite(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    with JsonlWriter(path) as w:
        w.write({"step": 1, "loss": math.nan, "bins": [1.0, math.inf, {"x": -math.inf}]})
        w.write({"step": 2, "path": tmp_path / "a.png"})
    with JsonlWriter(path) as w:  # append mode keeps earlier lines
        w.write({"step": 3})
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0]) == {"step": 1, "loss": None, "bins": [1.0, None, {"x": None}]}
    assert json.loads(lines[1])["path"] == str(tmp_path / "a.png")
    assert "NaN" not in path.read_text()
    assert json.loads(lines[2]) == {"step": 3}


def test_jsonl_tail_partial_appended_malformed(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    tail = JsonlTail(path)
    assert tail.read_new() == []  # missing file: nothing yet
    path.write_bytes(b'{"a": 1}\n{"b": ')
    assert tail.read_new() == [{"a": 1}]
    assert tail.read_new() == []  # the partial line stays buffered
    with open(path, "ab") as f:
        f.write(b'2}\nnot json\n[1, 2]\n\n{"c": 3}\n')
    assert tail.read_new() == [{"b": 2}, {"c": 3}]
    assert tail.skipped == 2
    assert tail.read_new() == []


def test_jsonl_tail_truncation_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n')
    tail = JsonlTail(path)
    assert len(tail.read_new()) == 2
    path.write_text('{"z": 0}\n')  # truncated in place, shorter
    assert tail.read_new() == [{"z": 0}]
    other = tmp_path / "new.jsonl"
    other.write_text('{"r": 1}\n{"r": 2}\n{"r": 3}\n')
    os.replace(other, path)  # replaced by a longer file
    assert tail.read_new() == [{"r": 1}, {"r": 2}, {"r": 3}]


def test_run_sink_routing(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "r")
    with RunSink(run) as sink:
        sink({"type": "run_start", "format": 1, "version": "0.1.0", "world_size": 1})
        sink({"type": "progress", "i": 3})
        tick = {"step": 10, "kimg": 0.64, "loss": 1.5, "lr": 1e-3, "img_per_s": 100.0}
        sink({"type": "tick", **tick})
        sink({"type": "checkpoint", "step": 10, "time": 123.0})
        sink({"type": "custom_thing", "x": 1})
        with pytest.raises(ValueError, match="type"):
            sink({"step": 1})
    metrics = JsonlTail(run / "metrics.jsonl").read_new()
    events = JsonlTail(run / "events.jsonl").read_new()
    assert metrics == [tick]
    assert [e["type"] for e in events] == ["run_start", "checkpoint", "custom_thing"]
    assert all(isinstance(e["time"], float) for e in events)
    assert events[1]["time"] == 123.0


def test_fanout_and_null_sinks() -> None:
    got: list[dict[str, object]] = []
    fan = FanoutSink(got.append, NullSink(), got.append)
    fan({"type": "tick", "step": 1})
    assert got == [{"type": "tick", "step": 1}] * 2


def test_latest_round_trip(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "r")
    assert read_latest(run) is None
    info = {"state": "state-000000010.pt", "ema": "ema-000000010.safetensors", "step": 10}
    write_latest(run, info)
    assert read_latest(run) == info
    (run / "checkpoints" / "latest.json").write_text("{broken")
    assert read_latest(run) is None
