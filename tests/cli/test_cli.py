"""End-to-end CLI tests with Typer's CliRunner: train → sample → files, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pfgmctl.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), prog_name="pfgmctl")
    return result.exit_code, result.stdout, result.stderr


def train_tiny(tiny: list[str], profile: str = "toy2d-edm", *extra: str) -> dict:
    code, out, err = invoke("train", "--profile", profile, *tiny, *extra, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("profile", ["toy2d-pfgmpp", "toy2d-edm", "toy2d-pfgm"])
def test_train_then_sample_png_and_npz(tiny: list[str], profile: str) -> None:
    info = train_tiny(tiny, profile)
    run = Path(info["run_dir"])
    assert info["status"] == "done"
    assert info["step"] == 10
    assert (run / "profile.toml").is_file()
    assert Path(info["picture"]).is_file()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert {"step", "kimg", "loss", "lr", "img_per_s", "loss_bins"} <= json.loads(lines[-1]).keys()

    code, out, err = invoke("sample", "-n", "12", "--steps", "3", "--out", "s.npz", "--json")
    assert code == 0, err
    res = json.loads(out)
    npz = np.load("s.npz")
    assert npz["samples"].shape == (12, 2)
    assert list(npz["seeds"]) == list(range(12))
    assert int(npz["nfe"]) == res["nfe"]
    assert np.isfinite(npz["samples"]).all()

    code, out, err = invoke("sample", "--run", str(run), "-n", "12", "--out", "s.png", "--json")
    assert code == 0, err
    with Image.open("s.png") as im:
        assert im.size[0] > 0
        assert "profile" in im.text


def test_sample_is_seed_deterministic_at_any_batch(tiny: list[str]) -> None:
    train_tiny(tiny)
    invoke("sample", "--seeds", "3-6", "--out", "a.npz", "--batch", "4")
    invoke("sample", "--seeds", "0-9", "--out", "b.npz", "--batch", "3", "--solver", "heun")
    a, b = np.load("a.npz")["samples"], np.load("b.npz")["samples"]
    np.testing.assert_allclose(a, b[3:7], rtol=1e-5, atol=1e-6)


def test_resume_continues_step_count(tiny: list[str]) -> None:
    first = train_tiny(tiny, "toy2d-edm", "--set", "train.kimg=0.32")
    assert first["step"] == 5
    code, out, err = invoke("train", "--resume", "latest", "--set", "train.kimg=0.64", "--json")
    assert code == 0, err
    second = json.loads(out)
    assert second["run_dir"] == first["run_dir"]
    assert second["step"] == 10
    lines = Path(first["run_dir"], "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [2, 4, 5, 6, 8, 10]


def test_exact_sampling_needs_no_training() -> None:
    code, out, err = invoke(
        "sample",
        "--exact",
        "8gaussians",
        "--set",
        "data.n=64",
        "-n",
        "32",
        "--out",
        "e.npz",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["nfe"] == 2 * 31 + 1  # 32 Heun steps: 31 Heun + one denoiser step
    assert np.load("e.npz")["samples"].shape == (32, 2)


def test_dry_run_prints_resolved_pfgm_profile() -> None:
    code, out, err = invoke("train", "--profile", "toy2d-pfgm", "--dry-run")
    assert code == 0, err
    assert "z_max = " in out
    assert "upper_norm = " in out
    assert "parameters" in err
    assert not Path("runs").exists()


def test_profile_list_and_show() -> None:
    code, out, _ = invoke("profile", "list", "--json")
    names = {p["name"] for p in json.loads(out)["profiles"]}
    assert {"toy2d-pfgmpp", "toy2d-pfgm", "toy2d-edm"} <= names
    code, out, _ = invoke("profile", "show", "toy2d-pfgmpp", "--set", "method.aug_dim=inf")
    assert code == 0
    assert "aug_dim = inf" in out


def assert_one_line_error(code: int, err: str, expected_code: int, *needles: str) -> None:
    assert code == expected_code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", "--set", "train.lr=abc"], ["train.lr", "number"]),
        (["train", "--set", "train.nope=1"], ["train.nope", "unknown key"]),
        (["train", "--set", "method.aug_dim=0"], ["method.aug_dim", "> 0"]),
        (["train", "--set", "method.aug_dim=-3"], ["method.aug_dim"]),
        (["train", "--profile", "nope.toml"], ["nope"]),
        (["train", "--set", "data.kind=array", "--set", "data.path=missing.npy"], ["missing.npy"]),
        (["train", "--set", "net.precond=field", "--dry-run"], ["net.precond"]),
        (["sample", "-n", "0"], ["-n"]),
        (["sample", "--exact", "moons", "--steps", "0"], ["--steps"]),
        (["sample", "--seeds", "1-x"], ["--seeds"]),
        (["sample", "--seeds", "0-3", "-n", "4"], ["--seeds"]),
        (["sample"], ["no runs"]),
        (["sample", "--checkpoint", "missing.safetensors"], ["missing.safetensors"]),
        (["sample", "--exact", "moons", "--solver", "rk99"], ["rk99"]),
        (["sample", "--exact", "nothing"], ["nothing"]),
        (["sample", "--exact", "moons", "--out", "x.jpg"], ["x.jpg"]),
        (["train", "--bogus"], ["--bogus"]),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], needles: list[str]) -> None:
    code, _, err = invoke(*args)
    assert_one_line_error(code, err, 2, *needles)


def test_bad_profile_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlr = 'fast'\n")
    code, _, err = invoke("train", "--profile", str(bad))
    assert_one_line_error(code, err, 2, "train.lr", "bad")
    bad.write_text("[train\n")
    code, _, err = invoke("train", "--profile", str(bad))
    assert_one_line_error(code, err, 2, "bad.toml")


def test_array_with_wrong_shape(tmp_path: Path) -> None:
    np.save(tmp_path / "flat.npy", np.zeros(5, dtype=np.float32))
    code, _, err = invoke("train", "--set", "data.kind=array", "--set", "data.path=flat.npy")
    assert_one_line_error(code, err, 2, "flat.npy")


def test_corrupt_checkpoint_exit_1(tiny: list[str]) -> None:
    info = train_tiny(tiny)
    ema = sorted(Path(info["run_dir"], "checkpoints").glob("ema-*.safetensors"))[-1]
    ema.write_bytes(ema.read_bytes()[:100])
    code, _, err = invoke("sample", "--checkpoint", str(ema))
    assert_one_line_error(code, err, 1, ema.name)
    state = sorted(Path(info["run_dir"], "checkpoints").glob("state-*.pt"))[-1]
    state.write_bytes(state.read_bytes()[:200])
    code, _, err = invoke("train", "--resume", str(state))
    assert_one_line_error(code, err, 1, state.name)


def test_existing_output_not_overwritten() -> None:
    Path("keep.npz").write_bytes(b"precious")
    code, _, err = invoke("sample", "--exact", "moons", "--set", "data.n=32", "--out", "keep.npz")
    assert_one_line_error(code, err, 2, "--force")
    assert Path("keep.npz").read_bytes() == b"precious"
    code, _, err = invoke(
        "sample",
        "--exact",
        "moons",
        "--set",
        "data.n=32",
        "-n",
        "4",
        "--out",
        "keep.npz",
        "--force",
    )
    assert code == 0, err
    assert np.load("keep.npz")["samples"].shape == (4, 2)


def test_help_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys; import pfgmctl.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    proc = subprocess.run(
        [sys.executable, "-m", "pfgmctl", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert "train" in proc.stdout
