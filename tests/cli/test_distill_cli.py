"""`pfgmctl distill` end to end: tiny teacher → distill → run dir, resume, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomli
from typer.testing import CliRunner

from pfgmctl.cli import app
from pfgmctl.engine.checkpoint import load_weights

runner = CliRunner()

DISTILL = [
    "distill.batch_size=16",
    "distill.kimg=0.032",
    "distill.tick_kimg=0.016",
    "distill.ckpt_ticks=1",
    "distill.preview_n=4",
    "distill.steps=2",
    "train.device=cpu",
]


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), prog_name="pfgmctl")
    return result.exit_code, result.stdout, result.stderr


def sets(items: list[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        out += ["--set", item]
    return out


def assert_one_line_error(code: int, err: str, expected_code: int, *needles: str) -> None:
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def teacher(tiny: list[str]) -> Path:
    code, out, err = invoke(
        "train", "-p", "toy2d-pfgmpp", *tiny, "--set", "train.kimg=0.128", "--json"
    )
    assert code == 0, err
    return Path(json.loads(out)["run_dir"])


def test_distill_run_dir_sample_metadata_and_resume(teacher: Path) -> None:
    code, out, err = invoke("distill", "--teacher", str(teacher), *sets(DISTILL), "--json")
    assert code == 0, err
    info = json.loads(out)
    run = Path(info["run_dir"])
    assert (info["status"], info["step"], info["nfe"]) == ("done", 2, 2)
    prof = tomli.loads((run / "profile.toml").read_text())
    assert prof["distill"]["teacher"].endswith(".safetensors")
    assert prof["method"]["aug_dim"] == 128.0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert {"loss", "loss_gen", "loss_fake", "lr", "img_per_s", "loss_bins"} <= set(rows[0])
    events = [json.loads(x)["type"] for x in (run / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run_start"
    assert events[-1] == "run_end"
    assert "sample_step" in events
    assert (run / "samples" / "000000002.png").is_file()
    _, meta = load_weights(run / "checkpoints" / "ema-000000002.safetensors")
    assert (meta["kind"], meta["steps"], meta["teacher_profile"]) == (
        "distill",
        "2",
        "toy2d-pfgmpp",
    )

    code, out, err = invoke(
        "distill", "--resume", "latest", "--set", "distill.kimg=0.064", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["step"] == 4
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]

    # benchmark accepts the distilled run: one setting at NFE = K
    code, out, err = invoke("benchmark", str(run), "--quick", "-n", "16", "--json", "--out", "b")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [(r["solver"], r["nfe"]) for r in rows] == [("generator", 2)]

    # a distilled run is not a teacher
    code, _, err = invoke("distill", "--teacher", str(run))
    assert_one_line_error(code, err, 2, "distilled")


def test_bad_teachers_are_one_line_errors(teacher: Path, tiny: list[str]) -> None:
    code, _, err = invoke("distill")
    assert_one_line_error(code, err, 2, "--teacher")
    code, _, err = invoke("distill", "--teacher", "missing-run")
    assert_one_line_error(code, err, 2, "missing-run")
    code, _, err = invoke("distill", "--teacher", str(teacher), "--set", "method.aug_dim=64")
    assert_one_line_error(code, err, 2, "mismatched D")
    ema = sorted((teacher / "checkpoints").glob("ema-*.safetensors"))[-1]
    bad = Path("bad.safetensors")
    bad.write_bytes(ema.read_bytes()[:100])
    code, _, err = invoke("distill", "--teacher", str(bad))
    assert_one_line_error(code, err, 1, "bad.safetensors")
    assert not Path("runs").exists() or len(list(Path("runs").iterdir())) == 1  # nothing created

    code, out, err = invoke(
        "train", "-p", "toy2d-pfgm", *tiny, "--set", "train.kimg=0.064", "--json"
    )
    assert code == 0, err
    code, _, err = invoke("distill", "--teacher", json.loads(out)["run_dir"])
    assert_one_line_error(code, err, 2, "pfgm", "PFGM++")


def test_sample_uses_the_generator_and_other_commands_refuse_it(teacher: Path) -> None:
    code, out, err = invoke("distill", "--teacher", str(teacher), *sets(DISTILL), "--json")
    assert code == 0, err
    run = json.loads(out)["run_dir"]
    code, out, err = invoke("sample", "--run", run, "-n", "6", "--out", "g.npz", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["nfe"], info["solver"], info["steps"]) == (2, "generator", 2)
    import numpy as np

    first = np.load("g.npz")["samples"]
    assert first.shape == (6, 2)
    assert np.isfinite(first).all()
    code, out, err = invoke("sample", "--run", run, "--seeds", "3-5", "--steps", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["nfe"] == 1
    code, _, err = invoke("sample", "--run", run, "-n", "4", "--solver", "rk45")
    assert_one_line_error(code, err, 2, "--solver")
    code, _, err = invoke("encode", "--run", run, "--data", "train")
    assert_one_line_error(code, err, 2, "distilled generator")
