"""`pfgmctl benchmark` end to end on tiny runs, and evaluation during training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import pfgmctl.cli.benchmark  # noqa: F401  (registers the command until the lead adds it to cli)
from pfgmctl.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), prog_name="pfgmctl")
    return result.exit_code, result.stdout, result.stderr


def train_tiny(tiny: list[str], *extra: str, profile: str = "toy2d-pfgmpp") -> Path:
    code, out, err = invoke("train", "--profile", profile, *tiny, *extra, "--json")
    assert code == 0, err
    return Path(json.loads(out)["run_dir"])


@pytest.fixture
def two_runs(tiny: list[str]) -> list[Path]:
    return [train_tiny(tiny, "--set", "method.aug_dim=1"), train_tiny(tiny, profile="toy2d-edm")]


def test_quick_benchmark_writes_json_csv_and_plot(two_runs: list[Path]) -> None:
    runs = [str(r) for r in two_runs]
    code, out, err = invoke("benchmark", *runs, "--quick", "-n", "64", "--out", "b", "--json")
    assert code == 0, err
    res = json.loads(out)
    rows = res["rows"]
    assert len(rows) == 2 * 2  # 2 runs × steps 4,8, metric swd (auto for toys)
    assert {r["aug_dim"] for r in rows} == {1.0, None}  # inf is written as null in JSON
    assert {r["metric"] for r in rows} == {"swd"}
    assert all(r["nfe"] in (7, 15) and len(r["values"]) == 1 for r in rows)
    assert all(r["mean"] > r["floor"] > 0 for r in rows)  # a 10-step model is worse than data
    saved = json.loads(Path("b/benchmark.json").read_text())
    assert saved["rows"] == rows
    csv_lines = Path("b/benchmark.csv").read_text().splitlines()
    assert csv_lines[0].startswith("run,method,aug_dim")
    assert len(csv_lines) == 1 + len(rows)
    with Image.open("b/quality-vs-nfe-swd.png") as im:
        assert im.size == (900, 560)
        assert len(im.convert("RGB").getcolors(1 << 20) or []) > 3  # lines were drawn


def test_robustness_sweep_and_table(tiny: list[str]) -> None:
    run = str(train_tiny(tiny))
    args = ("--steps", "4", "-n", "32", "--seed-sets", "2", "--out", "r")
    code, _, err = invoke("benchmark", run, *args, "--alpha", "0.1", "--bits", "6")
    assert code == 0, err
    assert "quality per NFE" in err
    rows = json.loads(Path("r/benchmark.json").read_text())["rows"]
    assert [r["perturbation"] for r in rows] == ["none", "alpha=0.1", "bits=6"]
    assert all(len(r["values"]) == 2 and r["std"] >= 0 for r in rows)
    assert len({r["mean"] for r in rows}) == 3
    assert rows[0]["delta"] is None
    for r in rows[1:]:  # paired with the clean row: same seeds, same references
        assert r["delta"] == pytest.approx(r["mean"] - rows[0]["mean"])
        assert r["delta_se"] >= 0


def test_several_metrics(tiny: list[str]) -> None:
    run = str(train_tiny(tiny))
    code, out, err = invoke(
        "benchmark", run, "--steps", "3", "-n", "32", "--seed-sets", "1",
        "--metric", "swd,energy,kid,nn1", "--out", "m", "--json",
    )  # fmt: skip
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [r["metric"] for r in rows] == ["swd", "energy", "kid", "nn1"]
    assert len({r["nfe"] for r in rows}) == 1
    assert 0 <= rows[-1]["mean"] <= 1
    assert {p.name for p in Path("m").iterdir()} >= {
        f"quality-vs-nfe-{m}.png" for m in ("swd", "nn1")
    }


def test_settings_grid_handles_adaptive_solvers() -> None:
    from pfgmctl.benchmark import Setting, settings

    grid = settings(["heun", "rk45"], [4, 8], [0.0, 0.1], [6])
    assert grid[:4] == [Setting("heun", 4), Setting("heun", 8), Setting("heun", 4, alpha=0.1),
                        Setting("heun", 8, alpha=0.1)]  # fmt: skip
    rk = [g for g in grid if g.solver == "rk45"]
    assert rk == [Setting("rk45", 0), Setting("rk45", 0, bits=6)]  # no steps, no noise injection
    assert [g.perturbation for g in grid[3:5]] == ["alpha=0.1", "bits=6"]


def test_speed_mode(tiny: list[str]) -> None:
    run = str(train_tiny(tiny))
    code, out, err = invoke(
        "benchmark", run, "--mode", "speed", "-n", "64", "--steps", "3", "--json"
    )
    assert code == 0, err
    res = json.loads(out)
    assert [r["solver"] for r in res["rows"]] == ["euler", "heun"]
    assert all(r["overhead"] > 0 and r["nfe"] > 0 for r in res["rows"])
    assert res["rows"][-1]["train_img_per_s"] > 0
    target = res["pfgm_target"]
    assert target["naive_mib"] > target["matmul_mib"]


def test_fid_without_extra_is_one_clear_line(tiny: list[str]) -> None:
    run = str(train_tiny(tiny))
    code, _, err = invoke("benchmark", run, "--quick", "--metric", "fid")
    assert code == 1
    assert "optional 'fid' extra" in err
    assert len(err.strip().splitlines()) == 1 or "pfgmctl[fid]" in err.replace("\n", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "four"], "--steps"),
        (["--steps", "0"], "integers ≥ 1"),
        (["--alpha", "-0.1"], "--alpha"),
        (["--metric", "fidd"], "unknown"),
        (["--solver", "nope"], "unknown solver"),
    ],
)
def test_bad_options_are_usage_errors(args: list[str], message: str) -> None:
    code, _, err = invoke("benchmark", "nowhere", "--quick", "-n", "8", *args)
    assert code == 2
    assert message in err


def test_missing_run_is_a_usage_error() -> None:
    code, _, err = invoke("benchmark", "nowhere")
    assert code == 2
    assert "no such run" in err
    code, _, err = invoke("benchmark")
    assert code == 2
    assert "no runs under" in err


def test_eval_during_training_goes_to_metrics_jsonl(tiny: list[str]) -> None:
    run = train_tiny(tiny, "--set", "train.eval_every_kimg=0.256", "--set", "train.eval_n=64")
    ticks = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [(t["kimg"], t["eval"]) for t in ticks if "eval" in t]
    # ticks every 0.128 kimg: due at 0.256 and 0.512, plus the last tick (0.64)
    assert [round(k, 3) for k, _ in evals] == [0.256, 0.512, 0.64]
    assert all(e["metric"] == "swd" and e["n"] == 64 and e["value"] > 0 for _, e in evals)
    code, _, err = invoke(
        "train", "--profile", "toy2d-edm", "--set", "train.eval_metric=fid", "--dry-run"
    )
    assert code != 0
    assert "eval_metric" in err
