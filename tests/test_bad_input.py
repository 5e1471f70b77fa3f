"""Bad-input corpus (issue 8): every case is one `error:` line on stderr, exit 2 or 1, no traceback,
and nothing in the working directory is created, changed or removed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from pfgmctl.cli import app
from pfgmctl.engine.checkpoint import save_weights

runner = CliRunner()
ARR = ["--set", "data.kind=array"]
PFGM = ["--set", "method.kind=pfgm"]


def _s(*items: str) -> list[str]:
    """`--set` arguments for `items`."""
    return [a for item in items for a in ("--set", item)]


def _write_corpus(root: Path) -> None:
    """Files the cases point at; all are bad in some way except `keep.npz` and `ok.npy`."""
    (root / "broken.toml").write_text("[train\nlr = 1\n")
    (root / "badtype.toml").write_text("[train]\nlr = 'fast'\n")
    (root / "badbool.toml").write_text("[train]\nbatch_size = true\n")
    (root / "badtable.toml").write_text("[bogus]\nx = 1\n")
    (root / "badkey.toml").write_text("[net]\nwidth = 3\n")
    (root / "binary.toml").write_bytes(b"\xff\xfe\x00garbage\x80")
    (root / "adir").mkdir()
    (root / "adir.npy").mkdir()
    (root / "adir.safetensors").mkdir()
    np.save(root / "empty.npy", np.zeros((0, 2), dtype=np.float32))
    np.save(root / "nan.npy", np.array([[0.0, 1.0], [np.nan, 2.0]] * 8, dtype=np.float32))
    np.save(root / "inf.npy", np.array([[0.0, 1.0], [np.inf, 2.0]] * 8, dtype=np.float32))
    np.save(root / "flat.npy", np.zeros(5, dtype=np.float32))
    np.save(root / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.savez(root / "arrays.npz", x=np.zeros((16, 2), dtype=np.float32))
    np.save(root / "ok.npy", np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32))
    (root / "text.npy").write_text("not an array\n")
    (root / "keep.npz").write_bytes(b"precious")
    save_weights(root / "good.safetensors", {"w": torch.zeros(4, 4)}, {"step": "1"})
    data = (root / "good.safetensors").read_bytes()
    (root / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    buf = root / "state-000000001.pt"
    torch.save({"net": {"w": torch.zeros(3)}, "ema": {}, "profile": "", "step": 1}, buf)
    (root / "trunc.pt").write_bytes(buf.read_bytes()[:100])
    buf.unlink()
    torch.save({"ema": {}, "profile": "[train]\n", "step": 1, "hook": print}, root / "evil.pt")
    torch.save({"ema": nn.Linear(2, 2), "profile": "", "step": 1}, root / "module.pt")
    torch.save([torch.zeros(2)], root / "list.pt")
    (root / "weights.bin").write_bytes(b"\x00" * 16)
    (root / "notarun").mkdir()


CASES: list[tuple[str, list[str], int, list[str]]] = [
    # --- profiles: TOML files ---
    ("toml-syntax", ["train", "-p", "broken.toml", "--dry-run"], 2, ["broken.toml"]),
    ("toml-type", ["train", "-p", "badtype.toml", "--dry-run"], 2, ["train.lr"]),
    ("toml-bool-for-int", ["train", "-p", "badbool.toml", "--dry-run"], 2, ["batch_size"]),
    ("toml-unknown-table", ["train", "-p", "badtable.toml", "--dry-run"], 2, ["bogus"]),
    ("toml-unknown-key", ["train", "-p", "badkey.toml", "--dry-run"], 2, ["net.width"]),
    ("toml-binary", ["train", "-p", "binary.toml", "--dry-run"], 2, ["binary.toml"]),
    ("profile-missing", ["train", "-p", "nope.toml", "--dry-run"], 2, ["nope"]),
    ("profile-is-dir", ["train", "-p", "adir", "--dry-run"], 2, ["adir"]),
    ("profile-show-missing", ["profile", "show", "nothing-here"], 2, ["nothing-here"]),
    # --- profiles: --set values ---
    ("set-not-number", ["train", *_s("train.lr=abc"), "--dry-run"], 2, ["train.lr"]),
    ("set-unknown-key", ["train", *_s("train.nope=1"), "--dry-run"], 2, ["train.nope"]),
    ("set-no-equals", ["train", "--set", "train.lr", "--dry-run"], 2, ["train.lr"]),
    ("set-nan", ["train", *_s("train.lr=nan"), "--dry-run"], 2, ["train.lr"]),
    ("aug-dim-zero", ["train", *_s("method.aug_dim=0"), "--dry-run"], 2, ["method.aug_dim"]),
    ("aug-dim-neg", ["train", *_s("method.aug_dim=-3"), "--dry-run"], 2, ["method.aug_dim"]),
    ("z-max-zero", ["train", *PFGM, *_s("method.z_max=0"), "--dry-run"], 2, ["method.z_max"]),
    ("z-max-neg", ["train", *PFGM, *_s("method.z_max=-5"), "--dry-run"], 2, ["method.z_max"]),
    ("batch-neg", ["train", *_s("train.batch_size=-1"), "--dry-run"], 2, ["train.batch_size"]),
    ("batch-zero", ["train", *_s("train.batch_size=0"), "--dry-run"], 2, ["train.batch_size"]),
    ("kimg-zero", ["train", *_s("train.kimg=0"), "--dry-run"], 2, ["train.kimg"]),
    ("sample-steps-zero", ["train", *_s("sample.steps=0"), "--dry-run"], 2, ["sample.steps"]),
    ("keep-ckpts-zero", ["train", *_s("train.keep_ckpts=0"), "--dry-run"], 2, ["keep_ckpts"]),
    ("bad-steps-zero", ["train", *_s("train.max_bad_steps=0"), "--dry-run"], 2, ["max_bad"]),
    ("beta1-range", ["train", *_s("train.beta1=1.5"), "--dry-run"], 2, ["train.beta1"]),
    ("holdout-range", ["train", *_s("data.holdout=1.0"), "--dry-run"], 2, ["data.holdout"]),
    ("device-enum", ["train", *_s("train.device=tpu"), "--dry-run"], 2, ["train.device"]),
    ("method-kind", ["train", *_s("method.kind=banana"), "--dry-run"], 2, ["method.kind"]),
    ("precond-conflict", ["train", *_s("net.precond=field"), "--dry-run"], 2, ["net.precond"]),
    # --- data sets ---
    ("data-missing", ["train", *ARR, *_s("data.path=missing.npy"), "--dry-run"], 2, ["missing"]),
    ("data-is-dir", ["train", *ARR, *_s("data.path=adir.npy"), "--dry-run"], 2, ["adir.npy"]),
    ("data-empty", ["train", *ARR, *_s("data.path=empty.npy"), "--dry-run"], 2, ["empty.npy"]),
    ("data-nan", ["train", *ARR, *_s("data.path=nan.npy"), "--dry-run"], 2, ["nan.npy"]),
    ("data-inf", ["train", *ARR, *_s("data.path=inf.npy"), "--dry-run"], 2, ["inf.npy"]),
    ("data-1d", ["train", *ARR, *_s("data.path=flat.npy"), "--dry-run"], 2, ["flat.npy"]),
    ("data-objects", ["train", *ARR, *_s("data.path=objects.npy"), "--dry-run"], 2, ["objects"]),
    ("data-text", ["train", *ARR, *_s("data.path=text.npy"), "--dry-run"], 2, ["text.npy"]),
    (
        "data-npz-key",
        ["train", *ARR, *_s("data.path=arrays.npz", "data.key=nope"), "--dry-run"],
        2,
        ["nope"],
    ),
    ("toy-unknown", ["train", *_s("data.name=nothing"), "--dry-run"], 2, ["nothing"]),
    # --- checkpoints ---
    ("ckpt-missing", ["sample", "--checkpoint", "missing.safetensors"], 2, ["missing"]),
    ("ckpt-is-dir", ["sample", "--checkpoint", "adir.safetensors"], 2, ["adir.safetensors"]),
    ("ckpt-extension", ["sample", "--checkpoint", "weights.bin"], 2, ["weights.bin"]),
    ("ckpt-trunc-st", ["sample", "--checkpoint", "trunc.safetensors"], 1, ["trunc.safetensors"]),
    ("ckpt-trunc-pt", ["train", "--resume", "trunc.pt"], 1, ["trunc.pt"]),
    ("ckpt-callable", ["sample", "--checkpoint", "evil.pt"], 1, ["evil.pt"]),
    ("ckpt-callable-resume", ["train", "--resume", "evil.pt"], 1, ["evil.pt"]),
    ("ckpt-module", ["sample", "--checkpoint", "module.pt"], 1, ["module.pt"]),
    ("ckpt-not-dict", ["train", "--resume", "list.pt"], 1, ["list.pt"]),
    ("ckpt-no-profile", ["sample", "--checkpoint", "good.safetensors"], 1, ["good.safetensors"]),
    ("resume-missing", ["train", "--resume", "gone.pt"], 2, ["gone.pt"]),
    ("resume-latest-none", ["train", "--resume", "latest"], 2, ["no runs"]),
    ("resume-not-a-run", ["train", "--resume", "notarun"], 2, ["notarun"]),
    ("sample-run-not-a-run", ["sample", "--run", "notarun"], 2, ["notarun"]),
    ("sample-no-runs", ["sample"], 2, ["no runs"]),
    (
        "latents-missing",
        ["sample", "--exact", "moons", "--latents", "nolatents.npz"],
        2,
        ["nolatents.npz"],
    ),
    # --- conflicting / bad options, existing outputs ---
    ("seeds-and-n", ["sample", "--exact", "moons", "--seeds", "0-3", "-n", "4"], 2, ["--seeds"]),
    ("n-zero", ["sample", "--exact", "moons", "-n", "0"], 2, ["-n"]),
    ("steps-neg", ["sample", "--exact", "moons", "--steps", "-1"], 2, ["--steps"]),
    ("out-exists", ["sample", "--exact", "moons", "--out", "keep.npz"], 2, ["--force"]),
    ("out-type", ["sample", "--exact", "moons", "--out", "x.jpg"], 2, ["x.jpg"]),
    ("out-is-dir", ["sample", "--exact", "moons", "--out", "adir.npy"], 2, ["adir.npy"]),
    ("solver-unknown", ["sample", "--exact", "moons", "--solver", "rk99"], 2, ["rk99"]),
    ("tui-and-json", ["train", "--tui", "--json"], 2, ["--tui"]),
    ("device-option", ["train", "--device", "gpu", "--dry-run"], 2, ["gpu"]),
    ("unknown-option", ["train", "--bogus"], 2, ["--bogus"]),
]


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path → content hash ('dir' for folders) of everything under `root`."""
    return {
        str(p.relative_to(root)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if "config" not in p.relative_to(root).parts[:1]
    }


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("args", "code", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line(
    isolated_env: Path, args: list[str], code: int, needles: list[str]
) -> None:
    _write_corpus(isolated_env)
    before = _snapshot(isolated_env)
    result = runner.invoke(app, args, prog_name="pfgmctl")
    err = result.stderr
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert result.exit_code == code, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error:"), err
    assert "Traceback" not in err
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert _snapshot(isolated_env) == before  # nothing created, changed or removed
