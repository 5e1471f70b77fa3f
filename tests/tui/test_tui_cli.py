"""`pfgmctl runs`, `pfgmctl tui` argument handling and the `train --tui` child-process helpers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tui_fixtures import append, make_run
from typer.testing import CliRunner

import pfgmctl.cli.runs
import pfgmctl.cli.tui
from pfgmctl.cli import app
from pfgmctl.cli.tui import _finish_child, child_command, wait_for_run
from pfgmctl.errors import PfgmctlError

runner = CliRunner()
assert pfgmctl.cli.runs.runs_app is not None  # registers `runs` and `tui` on `app`


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), prog_name="pfgmctl")
    return result.exit_code, result.stdout, result.stderr


def test_runs_list_and_show(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", 0)
    done = make_run(tmp_path / "runs", 3, steps=2)
    append(done / "events.jsonl", {"type": "run_end", "status": "interrupted", "step": 2})
    code, out, err = invoke("runs", "--json")
    assert code == 0, err
    rows = json.loads(out)["runs"]
    assert [(r["number"], r["step"], r["status"]) for r in rows] == [
        (0, 5, "running"),
        (3, 2, "interrupted"),
    ]
    assert rows[1]["loss"] == pytest.approx(1.0)
    code, out, err = invoke("runs")
    assert code == 0, err
    assert "toy2d-pfgmpp" in out
    assert "interrupted" in out
    code, out, err = invoke("runs", "show", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["name"] == done.name
    code, out, err = invoke("runs", "show", "7")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "no such run directory" in err


def test_tui_without_runs_is_a_one_line_usage_error(tmp_path: Path) -> None:
    code, _, err = invoke("tui", "--outdir", str(tmp_path / "nothing"))
    assert code == 2
    assert "no runs under" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = invoke("tui", "--image-protocol", "braille")
    assert code == 2


def test_train_tui_rejects_json() -> None:
    code, _, err = invoke("train", "--tui", "--json")
    assert code == 2
    assert "--tui cannot be combined with --json" in err


def test_tui_modules_do_not_import_torch() -> None:
    code = (
        "import sys; import pfgmctl.cli.tui, pfgmctl.cli.runs, pfgmctl.tui.app, "
        "pfgmctl.tui.runinfo; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_child_command_repeats_the_options() -> None:
    cmd = child_command("toy2d-pfgm", ["train.kimg=1", "data.n=64"], Path("o"), None, "cpu")
    assert cmd[1:] == [
        "-m", "pfgmctl", "train", "--profile", "toy2d-pfgm", "--set", "train.kimg=1",
        "--set", "data.n=64", "--outdir", "o", "--device", "cpu",
    ]  # fmt: skip


def test_wait_for_run_then_stop_the_child(tmp_path: Path) -> None:
    out, log = tmp_path / "runs", tmp_path / "log"
    script = (
        "import pathlib, sys, time; r = pathlib.Path(sys.argv[1]) / '00000-x'; r.mkdir(parents=True);"
        "(r / 'profile.toml').write_text('name = 1'); time.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(out)])
    run = wait_for_run(child, out, set(), log)
    assert run.name == "00000-x"
    _finish_child(child, "stop", run, log)  # SIGINT, then wait
    assert child.returncode is not None
    log.write_text("boom: bad profile\n")
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(PfgmctlError, match="boom: bad profile"):
        wait_for_run(dead, out, {run}, log)
