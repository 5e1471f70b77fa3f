"""Gradient accumulation (train.micro_batch): shards, the mean-loss gradient, resume, validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from pfgmctl.cli import app
from pfgmctl.config.load import load_profile
from pfgmctl.config.schema import TrainConfig
from pfgmctl.data import build_dataset
from pfgmctl.engine import train as train_mod
from pfgmctl.engine.build import build_method, resolve
from pfgmctl.engine.checkpoint import save_state
from pfgmctl.engine.rundir import RunSink, create_run_dir, read_latest
from pfgmctl.engine.shards import (
    Transforms,
    plan_shards,
    shard_batch,
    stream_generator,
    stream_seed,
)
from pfgmctl.engine.train import _init_state, _seeded_generator, _train_step, train
from pfgmctl.errors import ProfileError

FAST = ["train.preview_n=0", "train.tick_kimg=0.064", "train.ckpt_ticks=5"]


def _setup(tiny_keys: list[str], name: str, *extra: str) -> tuple[Any, Any]:
    prof = load_profile(name, [*tiny_keys, *FAST, *extra])
    dataset = build_dataset(prof.data)
    return resolve(prof, dataset), dataset


def _losses(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {json.loads(x)["step"]: json.loads(x)["loss"] for x in lines}


@pytest.mark.parametrize("name", ["toy2d-pfgmpp", "toy2d-pfgm"])
def test_two_shards_give_the_mean_loss_gradient(tiny_keys: list[str], name: str) -> None:
    """S = 2 on one process: grad = ∇ mean over both shards' rows, each with its own generators."""
    keys = ("train.micro_batch=32", "train.grad_clip=0", "net.dropout=0.1")
    prof, dataset = _setup(tiny_keys, name, *keys)
    dev = torch.device("cpu")
    state = _init_state(prof, dataset, dev)
    ref_model = copy.deepcopy(state.model)
    method = build_method(prof)
    assert _train_step(state, method, prof, dev) is not None

    # Independent recomputation: the same global rows, shard by shard, one mean over all 64 rows.
    b, m, seed = prof.train.batch_size, 32, prof.train.seed
    stream_gen = _seeded_generator(seed, 0, torch.device("cpu"))
    idx = torch.randperm(len(dataset.train), generator=stream_gen)[: method.rows_needed(b)]
    rows = dataset.train[idx]
    per_row = []
    for s in range(2):
        y = rows[s * m : (s + 1) * m]
        others = torch.cat([rows[: s * m], rows[(s + 1) * m :]]).flip(0)  # field: order-free
        charges = torch.cat([y, others]) if name == "toy2d-pfgm" else None
        torch.manual_seed(stream_seed(seed, 0, s, "dropout"))  # what dropout draws from
        gen = stream_generator(seed, 0, s, "noise", dev)
        per_row.append(method.loss(ref_model, y, gen=gen, charges=charges).loss)
    torch.cat(per_row).mean().backward()
    for p, q in zip(state.model.parameters(), ref_model.parameters(), strict=True):
        assert q.grad is not None
        assert p.grad is not None
        scale = float(q.grad.abs().max())  # float32 sums in another order (charges reordered)
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5 * scale)


def test_shard_batch_puts_y_first_among_charges_with_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(10, 3, 4, 4, generator=gen)
    labels = torch.arange(10)
    out = shard_batch(rows, labels, 4, 2, charges=True, transforms=Transforms(), gen=None)
    assert torch.equal(out.y, rows[4:6])
    assert out.charges is not None
    assert out.labels is not None
    assert torch.equal(out.charges[:2], rows[4:6])
    assert torch.equal(out.labels, torch.tensor([4, 5, 0, 1, 2, 3, 6, 7, 8, 9]))
    assert torch.equal(out.charges, rows[out.labels])  # every charge keeps its own label
    plain = shard_batch(rows, labels, 4, 2, charges=False, transforms=Transforms(), gen=None)
    assert plain.charges is None
    assert torch.equal(plain.labels, labels[4:6])  # type: ignore[arg-type]


def test_shard_batch_flips_all_charges_and_augments_y_only() -> None:
    rows = torch.randn(12, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    tf = Transforms(xflip=True, augment=1.0)
    out = shard_batch(
        rows, None, 4, 4, charges=True, transforms=tf, gen=torch.Generator().manual_seed(7)
    )
    assert out.charges is not None
    assert out.aug_labels is not None
    assert out.aug_labels.shape == (4, 9)
    assert torch.equal(out.charges[:4], out.y)  # the trained rows are among the charges
    front = torch.cat([rows[4:8], rows[:4], rows[8:]])
    for got, src in zip(out.charges[4:], front[4:], strict=True):  # flipped or not, never warped
        assert torch.equal(got, src) or torch.equal(got, src.flip(-1))
    assert any(
        torch.equal(g, s.flip(-1)) and not torch.equal(g, s)
        for g, s in zip(out.charges[4:], front[4:], strict=True)
    )


def test_accumulated_resume_is_bit_exact(tmp_path: Path, tiny_keys: list[str]) -> None:
    prof, dataset = _setup(tiny_keys, "toy2d-pfgm", "train.micro_batch=16", "net.dropout=0.1")
    dev = torch.device("cpu")
    run_a = create_run_dir(tmp_path / "runs", prof.name)
    train(prof, dataset, run_a, device=dev, sink=RunSink(run_a))
    half = prof.model_copy(update={"train": prof.train.model_copy(update={"kimg": 0.32})})
    run_b = create_run_dir(tmp_path / "runs", prof.name)
    train(half, dataset, run_b, device=dev, sink=RunSink(run_b))
    state = run_b / "checkpoints" / str(read_latest(run_b)["state"])  # type: ignore[index]
    train(prof, dataset, run_b, device=dev, sink=RunSink(run_b), resume=state)
    assert _losses(run_a) == _losses(run_b)
    assert list(_losses(run_b)) == list(range(1, 11))


def test_nonfinite_gradients_are_counted_and_zeroed(
    tmp_path: Path, tiny_keys: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prof, dataset = _setup(tiny_keys, "toy2d-edm", "train.tick_kimg=0.128")
    real = train_mod._init_state

    def poisoned(*args: Any, **kwargs: Any) -> Any:
        state = real(*args, **kwargs)
        bad = {"n": 0}

        def hook(g: torch.Tensor) -> torch.Tensor:
            bad["n"] += 1
            return g * float("nan") if bad["n"] in (2, 3, 7) else g

        next(state.model.parameters()).register_hook(hook)
        return state

    monkeypatch.setattr(train_mod, "_init_state", poisoned)
    run = create_run_dir(tmp_path / "runs", prof.name)
    train(prof, dataset, run, device=torch.device("cpu"), sink=RunSink(run))
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["nonfinite_grads"] for r in rows] == [1, 1, 0, 1, 0]  # ticks of 2 steps
    assert [r["skipped_steps"] for r in rows] == [0] * 5  # the loss was finite: steps taken
    weights = torch.load(run / "checkpoints" / "state-000000010.pt", weights_only=True)["net"]
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_plan_shards_and_its_errors() -> None:
    plan = plan_shards(TrainConfig(batch_size=64, micro_batch=16), 2)
    assert (plan.count, plan.accum, plan.micro) == (4, 2, 16)
    assert list(plan.of_rank(1)) == [2, 3]
    assert plan_shards(TrainConfig(batch_size=64), 2).count == 2  # one shard per rank
    assert plan_shards(TrainConfig(batch_size=64, micro_batch=500), 1).count == 1  # a cap
    with pytest.raises(ProfileError, match=r"train.batch_size=64 .*world size 3"):
        plan_shards(TrainConfig(batch_size=64), 3)
    with pytest.raises(ProfileError, match=r"train.micro_batch=24 .* use train.micro_batch=16$"):
        plan_shards(TrainConfig(batch_size=64, micro_batch=24), 1)


def test_cli_rejects_a_micro_batch_that_does_not_divide(tiny: list[str]) -> None:
    result = CliRunner().invoke(
        app, ["train", "-p", "toy2d-edm", *tiny, "--set", "train.micro_batch=24"]
    )
    assert result.exit_code == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "train.micro_batch=24" in lines[0]
    assert not list(Path("runs").glob("*"))  # no run dir is left behind


def test_old_checkpoints_with_generator_states_still_resume(
    tmp_path: Path, tiny_keys: list[str]
) -> None:
    """Checkpoints from before the stateless noise (rng.noise / rng.torch saved) load."""
    prof, dataset = _setup(tiny_keys, "toy2d-edm")
    state = _init_state(prof, dataset, torch.device("cpu"))
    old = train_mod._state_dict(state, "", dataset)
    old["rng"] = {
        "stream": old["rng"]["stream"],
        "noise": torch.Generator().get_state(),
        "torch": torch.get_rng_state(),
    }
    old["step"], old["nimg"] = 3, 192
    path = tmp_path / "state-000000003.pt"
    save_state(path, old)
    fresh = _init_state(prof, dataset, torch.device("cpu"))
    train_mod._restore(fresh, path)
    assert (fresh.step, fresh.nimg) == (3, 192)
