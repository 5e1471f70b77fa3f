"""Two CPU ranks (gloo, torchrun): identical weights, world-size invariance, resume on one process.

A run is a function of (profile, S shards): 2 ranks × 1 shard equals 1 process × 2 shards up to
float summation order. Each test launches torchrun (two fresh interpreters), hence `slow`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from pfgmctl.config.load import load_profile
from pfgmctl.data import build_dataset
from pfgmctl.engine.build import resolve
from pfgmctl.engine.rundir import RunSink, create_run_dir, read_latest
from pfgmctl.engine.train import train

pytestmark = pytest.mark.slow

WORKER = """
import sys
from pathlib import Path

import torch

from pfgmctl.config.load import load_profile
from pfgmctl.data import build_dataset
from pfgmctl.engine import dist
from pfgmctl.engine import train as train_mod
from pfgmctl.engine.build import resolve
from pfgmctl.engine.rundir import RunSink, create_run_dir

out, overrides = Path(sys.argv[1]), sys.argv[2:]
torch.set_num_threads(1)
prof = load_profile("toy2d-pfgm", overrides)
dataset = build_dataset(prof.data)
prof = resolve(prof, dataset)
world, device = dist.init_from_env(torch.device("cpu"))
run = create_run_dir(out / "runs", prof.name) if world.main else None
run = dist.broadcast_path(run, world)
grab = {}
real = train_mod._init_state


def capture(*args, **kwargs):
    grab["state"] = real(*args, **kwargs)
    return grab["state"]


train_mod._init_state = capture
train_mod.train(prof, dataset, run, device=device, sink=RunSink(run), world=world)
torch.save(grab["state"].model.state_dict(), out / f"rank{world.rank}.pt")
if world.main:
    (out / "run.txt").write_text(str(run))
dist.cleanup()
"""

KEYS = [
    "train.preview_n=0",
    "train.tick_kimg=0.064",
    "train.ckpt_ticks=5",
    "train.keep_ckpts=3",
    "net.dropout=0.1",
]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    return subprocess.run(
        [*cmd, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300
    )


def _metrics(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {json.loads(x)["step"]: json.loads(x)["loss"] for x in lines}


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_two_ranks_match_one_process_and_resume_on_one(
    tmp_path: Path, tiny_keys: list[str]
) -> None:
    overrides = [*tiny_keys, *KEYS]
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "ddp"
    out.mkdir()
    proc = _torchrun(str(script), str(out), *overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # DDP keeps the ranks in lockstep
    run2 = Path((out / "run.txt").read_text())
    events = [json.loads(x) for x in (run2 / "events.jsonl").read_text().splitlines()]
    start = events[0]
    assert (start["world_size"], start["shards"], start["accumulation"]) == (2, 2, 1)

    # One process with the same S = 2 (micro_batch = B_S / 2): the same run up to float order.
    prof = load_profile("toy2d-pfgm", [*overrides, "train.micro_batch=32"])
    dataset = build_dataset(prof.data)
    prof = resolve(prof, dataset)
    dev = torch.device("cpu")
    run1 = create_run_dir(tmp_path / "one", prof.name)
    train(prof, dataset, run1, device=dev, sink=RunSink(run1))
    state1 = torch.load(run1 / "checkpoints" / "state-000000010.pt", weights_only=True)
    _close(state1["net"], rank0)
    loss1, loss2 = _metrics(run1), _metrics(run2)
    assert list(loss1) == list(loss2) == list(range(1, 11))
    for step in loss1:
        assert loss1[step] == pytest.approx(loss2[step], rel=1e-5)

    # The 2-rank step-5 checkpoint resumes on one process and continues at step 6.
    resumed = create_run_dir(tmp_path / "resumed", prof.name)
    for name in ("state-000000005.pt",):
        (resumed / "checkpoints" / name).write_bytes((run2 / "checkpoints" / name).read_bytes())
    result = train(
        prof,
        dataset,
        resumed,
        device=dev,
        sink=RunSink(resumed),
        resume=resumed / "checkpoints" / "state-000000005.pt",
    )
    assert result.step == 10
    assert list(_metrics(resumed)) == list(range(6, 11))
    final = torch.load(resumed / "checkpoints" / "state-000000010.pt", weights_only=True)
    _close(final["net"], rank0)
    assert read_latest(resumed)["step"] == 10  # type: ignore[index]


def test_cli_under_torchrun_writes_one_run_dir(tmp_path: Path, tiny: list[str]) -> None:
    args = ["-m", "pfgmctl", "train", "-p", "toy2d-edm", *tiny, "--set", "train.preview_n=0"]
    proc = _torchrun(*args, "--json", "-o", "runs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 1  # rank 1 created nothing
    info: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (info["status"], info["step"]) == ("done", 10)
    start = json.loads((runs[0] / "events.jsonl").read_text().splitlines()[0])
    assert start["world_size"] == 2
    ticks = (runs[0] / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(t)["step"] for t in ticks] == [2, 4, 6, 8, 10]  # written once, by rank 0
