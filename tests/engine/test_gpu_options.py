"""GPU options on a CPU machine: amp / channels_last noted and ignored, compile, missing devices."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from pfgmctl.config.load import load_profile
from pfgmctl.config.schema import TrainConfig, UNetNet
from pfgmctl.data import build_dataset
from pfgmctl.engine.build import pick_device, resolve
from pfgmctl.engine.gpu import Autocast, gpu_options
from pfgmctl.engine.rundir import RunSink, create_run_dir
from pfgmctl.engine.train import train
from pfgmctl.errors import UsageError


def _run(
    tmp_path: Path, name: str, keys: list[str], net: UNetNet | None = None
) -> tuple[Path, list[dict[str, Any]]]:
    prof = load_profile(name, keys)
    if net is not None:
        prof = prof.model_copy(update={"net": net})
    dataset = build_dataset(prof.data)
    prof = resolve(prof, dataset)
    run = create_run_dir(tmp_path / "runs", prof.name)
    train(prof, dataset, run, device=torch.device("cpu"), sink=RunSink(run))
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    return run, events


def test_gpu_options_per_device() -> None:
    t = TrainConfig(amp="bf16", channels_last=True, compile=False, tf32=True)
    cpu = gpu_options(t, torch.device("cpu"), (3, 16, 16))
    assert (cpu["amp"], cpu["channels_last"], cpu["tf32"]) == ("off", False, False)
    assert any("train.amp=bf16 is ignored on cpu" in n for n in cpu["notes"])
    assert any("train.channels_last is ignored on cpu" in n for n in cpu["notes"])
    cuda = gpu_options(t, torch.device("cuda", 0), (3, 16, 16))  # pure: no GPU needed
    assert (cuda["amp"], cuda["channels_last"], cuda["tf32"], cuda["notes"]) == (
        "bf16",
        True,
        True,
        [],
    )
    flat = gpu_options(t, torch.device("cuda", 0), (2,))
    assert flat["channels_last"] is False
    assert "4-D image nets" in flat["notes"][0]
    assert gpu_options(TrainConfig(), torch.device("cpu"), (2,))["notes"] == []


def test_amp_and_channels_last_train_on_cpu_with_a_note(
    tmp_path: Path, tiny_keys: list[str]
) -> None:
    keys = [*tiny_keys, "train.preview_n=0", "train.kimg=0.128", "train.amp=bf16"]
    keys += ["train.channels_last=true"]
    _, events = _run(tmp_path, "toy2d-edm", keys)
    start = events[0]
    assert start["type"] == "run_start"
    assert start["options"]["amp"] == "off"
    assert len(start["options"]["notes"]) == 2
    assert events[-1]["status"] == "done"


def test_autocast_wrapper_returns_float32_and_keeps_names() -> None:
    net = torch.nn.Linear(3, 2)
    wrapped = Autocast(net)
    assert list(dict(wrapped.named_parameters())) == ["inner.weight", "inner.bias"]
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CPU-only torch: "CUDA is not available, disabling"
        out = wrapped(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, net(x))


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_missing_mps_is_a_one_line_usage_error() -> None:
    with pytest.raises(UsageError, match=r"^--device mps: .*use --device cpu or auto$"):
        pick_device("mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_a_one_line_usage_error() -> None:
    with pytest.raises(UsageError, match=r"^--device cuda: .*use --device cpu or auto$"):
        pick_device("cuda")
    assert pick_device("auto") == torch.device("cpu")


def test_image_transforms_and_augment_train(tmp_path: Path, tiny_keys: list[str]) -> None:
    """Shapes with xflip + dequantize + EDM augmentation through the training step (UNet)."""
    keys = [
        "data.kind=shapes",
        "data.n=64",
        "data.resolution=8",
        "data.channels=1",
        "data.xflip=true",
        "data.dequantize=true",
        "train.augment=0.5",
        "train.batch_size=16",
        "train.micro_batch=8",
        "train.kimg=0.032",
        "train.tick_kimg=0.016",
        "train.ckpt_ticks=2",
        "train.preview_n=0",
        "train.device=cpu",
    ]
    net = UNetNet(model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=())
    run, events = _run(tmp_path, "digits", keys, net)
    assert events[0]["shards"] == 2
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["loss"] is not None for r in rows)


@pytest.mark.slow
def test_compile_trains_like_eager(tmp_path: Path, tiny_keys: list[str]) -> None:
    keys = [*tiny_keys, "train.preview_n=0", "train.kimg=0.128", "train.tick_kimg=0.064"]
    eager, _ = _run(tmp_path / "eager", "toy2d-edm", keys)
    compiled, events = _run(tmp_path / "compiled", "toy2d-edm", [*keys, "train.compile=true"])
    assert events[0]["options"]["compile"] is True
    a = [json.loads(x)["loss"] for x in (eager / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x)["loss"] for x in (compiled / "metrics.jsonl").read_text().splitlines()]
    assert b == pytest.approx(a, rel=1e-4)
