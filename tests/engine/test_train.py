"""Training engine: bit-exact resume, metrics schema, checkpoints, Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pfgmctl.config.load import load_profile
from pfgmctl.data import build_dataset
from pfgmctl.engine.build import resolve
from pfgmctl.engine.checkpoint import load_state, load_weights
from pfgmctl.engine.rundir import RunSink, create_run_dir, read_latest
from pfgmctl.engine.train import train


def _setup(tmp_path: Path, tiny: list[str], name: str, *extra: str) -> tuple[Any, Any, Path]:
    overrides = [*tiny, "train.tick_kimg=0.064", "train.ckpt_ticks=5", *extra]
    prof = load_profile(name, overrides)
    dataset = build_dataset(prof.data)
    prof = resolve(prof, dataset)
    return prof, dataset, create_run_dir(tmp_path / "runs", prof.name)


def _losses(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {json.loads(x)["step"]: json.loads(x)["loss"] for x in lines}


@pytest.mark.parametrize("name", ["toy2d-pfgmpp", "toy2d-pfgm"])
def test_resume_is_bit_exact(tmp_path: Path, tiny_keys: list[str], name: str) -> None:
    prof, dataset, run_a = _setup(tmp_path, tiny_keys, name, "net.dropout=0.1")
    dev = torch.device("cpu")
    train(prof, dataset, run_a, device=dev, sink=RunSink(run_a))

    half = prof.model_copy(update={"train": prof.train.model_copy(update={"kimg": 0.32})})
    run_b = create_run_dir(tmp_path / "runs", prof.name)
    train(half, dataset, run_b, device=dev, sink=RunSink(run_b))
    state = run_b / "checkpoints" / str(read_latest(run_b)["state"])  # type: ignore[index]
    result = train(prof, dataset, run_b, device=dev, sink=RunSink(run_b), resume=state)

    assert result.step == 10
    losses_a, losses_b = _losses(run_a), _losses(run_b)
    assert list(losses_b) == list(range(1, 11))
    assert losses_a == losses_b  # exact float equality, every step
    ema_a, _ = load_weights(run_a / "checkpoints" / str(read_latest(run_a)["ema"]))  # type: ignore[index]
    ema_b, _ = load_weights(run_b / "checkpoints" / str(read_latest(run_b)["ema"]))  # type: ignore[index]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_metrics_events_and_checkpoints(tmp_path: Path, tiny_keys: list[str]) -> None:
    prof, dataset, run = _setup(tmp_path, tiny_keys, "toy2d-pfgmpp", "train.keep_ckpts=1")
    events: list[dict[str, Any]] = []

    def sink(event: dict[str, Any]) -> None:
        events.append(event)
        RunSink(run)(event)

    result = train(prof, dataset, run, device=torch.device("cpu"), sink=sink)
    assert result.status == "done"
    tick = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    bins = tick["loss_bins"]
    assert bins["var"] == "sigma"
    assert len(bins["edges"]) == prof.train.loss_bins + 1
    assert sum(bins["count"]) == prof.train.batch_size  # one step per tick
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_start"
    assert kinds[-1] == "run_end"
    assert "sample_step" in kinds
    assert kinds.count("checkpoint") == 2
    assert len(list((run / "checkpoints").glob("state-*.pt"))) == 1  # keep_ckpts = 1
    state = load_state(run / "checkpoints" / "state-000000010.pt")
    assert state["step"] == 10
    assert "[method]" in state["profile"]
    assert (run / "samples" / "000000010.png").is_file()


def test_ctrl_c_saves_and_reports_interrupted(tmp_path: Path, tiny_keys: list[str]) -> None:
    prof, dataset, run = _setup(tmp_path, tiny_keys, "toy2d-edm")
    calls = {"n": 0}

    def sink(event: dict[str, Any]) -> None:
        RunSink(run)(event)
        if event["type"] == "progress":
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt

    result = train(prof, dataset, run, device=torch.device("cpu"), sink=sink)
    assert result.status == "interrupted"
    assert result.step == 3
    assert read_latest(run)["step"] == 3  # type: ignore[index]
    last = json.loads((run / "events.jsonl").read_text().splitlines()[-1])
    assert last == {**last, "type": "run_end", "status": "interrupted", "step": 3}
