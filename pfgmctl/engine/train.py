"""The training loop: Adam with warm-up, grad clipping, EMA by half-life, ticks, checkpoints, previews."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pfgmctl import __version__
from pfgmctl.config.load import profile_to_toml
from pfgmctl.config.schema import Profile
from pfgmctl.data import Dataset
from pfgmctl.data.stream import DataStream
from pfgmctl.engine.build import build_method, build_model
from pfgmctl.engine.checkpoint import (
    ema_name,
    load_module_strict,
    load_state,
    prune,
    save_state,
    save_weights,
    state_name,
)
from pfgmctl.engine.ema import EMA
from pfgmctl.engine.faults import (
    StopRequest,
    Terminated,
    bad_run_message,
    crash_point,
    deferred_interrupts,
    ignore_sigterm,
    repair_run_dir,
)
from pfgmctl.engine.grid import samples_picture, save_png
from pfgmctl.engine.preview import sample_with_events
from pfgmctl.engine.rundir import Sink, write_latest
from pfgmctl.errors import CheckpointError, PfgmctlError
from pfgmctl.methods import Method


@dataclass
class TrainState:
    """Everything that changes during training and must survive a resume."""

    model: nn.Module
    ema: EMA
    opt: torch.optim.Optimizer
    stream: DataStream
    noise_gen: torch.Generator
    step: int = 0
    nimg: int = 0
    bins: dict[str, list[float]] = field(default_factory=dict)
    skipped: int = 0  # non-finite-loss steps since the last tick (metrics key skipped_steps)
    bad_run: int = 0  # consecutive non-finite-loss steps
    saved: int = 0  # step of the newest checkpoint on disk


@dataclass(frozen=True)
class TrainResult:
    """Where training stopped and how."""

    run_dir: Path
    step: int
    kimg: float
    status: str  # done | interrupted
    signal: str = ""  # SIGINT | SIGTERM when interrupted


def preview_labels(n: int, num_classes: int, device: torch.device) -> Tensor | None:
    """Classes for a preview grid: row-major 0, 1, …, num_classes − 1, repeated (None: unconditional)."""
    if num_classes == 0:
        return None
    return torch.arange(n, device=device) % num_classes


def _seeded_generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    """Independent generators per purpose (and later per rank) from one profile seed."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + stream)


def _init_state(profile: Profile, dataset: Dataset, device: torch.device) -> TrainState:
    model = build_model(profile, dataset.item_shape, dataset.num_classes).to(device)
    t = profile.train
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), eps=1e-8)
    gen = _seeded_generator(t.seed, 0, torch.device("cpu"))
    stream = DataStream(dataset.train, gen, dataset.train_labels)
    noise_gen = _seeded_generator(t.seed, 1, device)
    return TrainState(model, EMA(model, t.ema_halflife_kimg, t.ema_rampup), opt, stream, noise_gen)


def _state_dict(state: TrainState, profile_text: str, dataset: Dataset) -> dict[str, Any]:
    """Plain tensors, numbers and strings only: loadable with weights_only=True."""
    return {
        "net": state.model.state_dict(),
        "ema": state.ema.state_dict(),
        "opt": state.opt.state_dict(),
        "step": state.step,
        "nimg": state.nimg,
        "rng": {
            "stream": state.stream.state_dict(),
            "noise": state.noise_gen.get_state(),
            "torch": torch.get_rng_state(),  # dropout draws from the global generator
        },
        "profile": profile_text,
        "item_shape": list(dataset.item_shape),
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
        "version": __version__,
    }


def _restore(state: TrainState, path: Path) -> None:
    """Load a full training state; any mismatch is a one-line CheckpointError."""
    saved = load_state(path)
    try:
        load_module_strict(state.model, saved["net"], str(path))
        state.ema.load_state_dict(saved["ema"])
        state.opt.load_state_dict(saved["opt"])
        state.stream.load_state_dict(saved["rng"]["stream"])
        state.noise_gen.set_state(saved["rng"]["noise"])
        torch.set_rng_state(saved["rng"]["torch"])
        state.step, state.nimg = int(saved["step"]), int(saved["nimg"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot resume from {path}: {err}") from None


def _train_step(
    state: TrainState, method: Method, profile: Profile, device: torch.device
) -> Tensor | None:
    """One optimiser step on B_S rows (PFGM: B_L charges); the loss, or None if non-finite."""
    t = profile.train
    rows, labels = state.stream.draw(method.rows_needed(t.batch_size))
    rows, labels = rows.to(device), None if labels is None else labels.to(device)
    out = method.loss(
        state.model, rows[: t.batch_size], gen=state.noise_gen, charges=rows, labels=labels
    )
    loss = out.loss.mean()
    state.opt.zero_grad(set_to_none=True)
    if not bool(torch.isfinite(loss)):  # one host sync per step; the update is skipped
        state.step, state.nimg = state.step + 1, state.nimg + t.batch_size
        state.skipped, state.bad_run = state.skipped + 1, state.bad_run + 1
        return None
    state.bad_run = 0
    loss.backward()
    for p in state.model.parameters():  # EDM: NaN/inf gradients never reach the weights
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
    if t.grad_clip > 0:
        nn.utils.clip_grad_norm_(state.model.parameters(), t.grad_clip)
    warm = min(state.nimg / (t.warmup_kimg * 1000), 1.0) if t.warmup_kimg > 0 else 1.0
    for group in state.opt.param_groups:
        group["lr"] = t.lr * max(warm, 1e-8)
    state.opt.step()
    state.step += 1
    state.nimg += t.batch_size
    state.ema.update(state.model, state.nimg, t.batch_size)
    _accumulate_bins(state, out.noise.detach(), out.loss.detach(), method, t.loss_bins)
    return loss.detach()


def _accumulate_bins(
    state: TrainState, noise: Tensor, loss: Tensor, method: Method, n_bins: int
) -> None:
    """Add this step's per-sample losses into the noise bins of the current tick."""
    if "edges" not in state.bins:
        state.bins["edges"] = method.noise_edges(n_bins)
        state.bins["sum"], state.bins["count"] = [0.0] * n_bins, [0.0] * n_bins
    inner = torch.tensor(state.bins["edges"][1:-1], dtype=torch.float64)
    idx = torch.bucketize(noise.detach().cpu().double(), inner)
    sums = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, loss.detach().cpu().double())
    counts = torch.bincount(idx, minlength=n_bins)
    for k in range(n_bins):
        state.bins["sum"][k] += float(sums[k])
        state.bins["count"][k] += float(counts[k])


def _tick_record(
    state: TrainState, method: Method, losses: list[Tensor], nimg0: int, seconds: float
) -> dict[str, Any]:
    """One metrics.jsonl line (architecture.md §7); resets the per-bin accumulators."""
    sums, counts = state.bins.get("sum", []), state.bins.get("count", [])
    edges = state.bins.get("edges", [])
    state.bins.clear()
    skipped, state.skipped = state.skipped, 0
    kimg = (state.nimg - nimg0) / 1000
    return {
        "type": "tick",
        "step": state.step,
        "kimg": state.nimg / 1000,
        "loss": float(torch.stack(losses).mean()) if losses else math.nan,
        "lr": state.opt.param_groups[0]["lr"],
        "skipped_steps": skipped,
        "img_per_s": kimg * 1000 / max(seconds, 1e-9),
        "sec_per_kimg": seconds / max(kimg, 1e-9),
        "time": time.time(),
        "loss_bins": {
            "var": method.time_name,
            "edges": edges,
            "mean": [s / c if c else None for s, c in zip(sums, counts, strict=True)],
            "count": [int(c) for c in counts],
        },
    }


def _checkpoint(
    run_dir: Path, state: TrainState, method: Method, profile: Profile, dataset: Dataset, sink: Sink
) -> None:
    """state-*.pt, ema-*.safetensors, latest.json, a fixed-seed EMA preview; prune to keep_ckpts."""
    ckpt_dir, text = run_dir / "checkpoints", profile_to_toml(profile)
    state_path, ema_path = ckpt_dir / state_name(state.step), ckpt_dir / ema_name(state.step)
    save_state(state_path, _state_dict(state, text, dataset))
    meta = {
        "profile": text,
        "item_shape": json.dumps(list(dataset.item_shape)),
        "num_classes": str(dataset.num_classes),
        "class_names": json.dumps(list(dataset.class_names)),
        "step": str(state.step),
        "kimg": str(state.nimg / 1000),
        "version": __version__,
    }
    save_weights(ema_path, state.ema.module.state_dict(), meta)
    info = {
        "state": state_path.name,
        "ema": ema_path.name,
        "step": state.step,
        "kimg": state.nimg / 1000,
    }
    crash_point("latest-write")
    write_latest(run_dir, info)
    preview = _preview(run_dir, state, method, profile, dataset, sink)
    sink({"type": "checkpoint", **info, "sample": preview})
    prune(ckpt_dir, profile.train.keep_ckpts)


def _preview(
    run_dir: Path, state: TrainState, method: Method, profile: Profile, dataset: Dataset, sink: Sink
) -> str | None:
    """Sample `preview_n` fixed seeds with the EMA net and write samples/<step>.png."""
    n = profile.train.preview_n
    if n == 0:
        return None
    device = next(state.ema.module.parameters()).device
    path = run_dir / "samples" / f"{state.step:09d}.png"
    labels = preview_labels(n, dataset.num_classes, device)
    result = sample_with_events(
        method,
        state.ema.module,
        profile.sample,
        seeds=range(n),
        shape=dataset.item_shape,
        device=device,
        sink=sink,
        job=f"preview-{state.step:09d}",
        path=str(path),
        labels=labels,
    )
    ref = dataset.train[: max(n, 2000)]
    meta = {"step": str(state.step), "seeds": f"0-{n - 1}", "nfe": str(result.nfe)}
    save_png(samples_picture(result.x, ref=ref), path, meta)
    return path.name


def _maybe_eval(
    record: dict[str, Any],
    state: TrainState,
    method: Method,
    profile: Profile,
    dataset: Dataset,
    *,
    since_nimg: int,
    last: bool,
) -> None:
    """Add an "eval" entry (EMA weights, fixed seeds) to a tick record when eval_every_kimg is due."""
    t = profile.train
    every = round(t.eval_every_kimg * 1000)
    if t.eval_every_kimg <= 0 or (
        state.nimg // max(every, 1) == since_nimg // max(every, 1) and not last
    ):
        return
    from pfgmctl.benchmark import eval_during_training  # metrics stack loads only when used

    record["eval"] = eval_during_training(
        method, state.ema.module, profile, dataset, n=t.eval_n, metric=t.eval_metric
    )


def _safe_checkpoint(
    run_dir: Path, state: TrainState, method: Method, profile: Profile, dataset: Dataset, sink: Sink
) -> None:
    """`_checkpoint`, turning a write failure (ENOSPC, EACCES, ...) into a one-line error."""
    try:
        _checkpoint(run_dir, state, method, profile, dataset, sink)
    except OSError as err:
        kept = f"checkpoint (step {state.saved}) is intact" if state.saved else "none was saved"
        raise PfgmctlError(
            f"cannot write the step-{state.step} checkpoint in {run_dir / 'checkpoints'} "
            f"({err.strerror or err}); the previous {kept}; "
            "free disk space or fix permissions, then pfgmctl train --resume latest"
        ) from None
    state.saved = state.step


def _prepare_resume(state: TrainState, run_dir: Path, resume: Path) -> None:
    """Restore the state and repair the run dir (no metrics past its step, no torn lines)."""
    _restore(state, resume)
    state.saved = state.step
    repair_run_dir(run_dir, state.step)


def _loop(
    state: TrainState,
    method: Method,
    profile: Profile,
    dataset: Dataset,
    run_dir: Path,
    *,
    device: torch.device,
    sink: Sink,
    total: int,
    stop: StopRequest,
) -> None:
    """Steps, ticks (metrics lines) and checkpoints until `total` steps are done."""
    t = profile.train
    tick_steps = max(round(t.tick_kimg * 1000 / t.batch_size), 1)
    losses: list[Tensor] = []  # kept on the device: no host sync per step
    nimg0, t0, last_loss = state.nimg, time.perf_counter(), math.nan
    while state.step < total:
        loss = _train_step(state, method, profile, device)
        if loss is not None:
            losses.append(loss)
        if state.bad_run >= t.max_bad_steps:  # the newest checkpoint predates the bad steps
            args = (state.step, state.bad_run, t.max_bad_steps, state.saved, run_dir)
            raise PfgmctlError(bad_run_message(*args))
        tick = state.step % tick_steps == 0 or state.step >= total
        if tick:
            record = _tick_record(state, method, losses, nimg0, time.perf_counter() - t0)
            last_loss, losses = record["loss"], []
            last = state.step >= total
            _maybe_eval(record, state, method, profile, dataset, since_nimg=nimg0, last=last)
            sink(record)
        sink({"type": "progress", "step": state.step, "total": total, "loss": last_loss})
        if tick and ((state.step // tick_steps) % t.ckpt_ticks == 0 or state.step >= total):
            _safe_checkpoint(run_dir, state, method, profile, dataset, sink)
        if tick:  # checkpoint and preview time stays out of the next tick's img/s
            nimg0, t0 = state.nimg, time.perf_counter()
        stop.check()  # SIGINT / SIGTERM act here, between steps


def train(
    profile: Profile,
    dataset: Dataset,
    run_dir: Path,
    *,
    device: torch.device,
    sink: Sink,
    resume: Path | None = None,
) -> TrainResult:
    """Train `profile` (already resolved) into `run_dir`; Ctrl-C or SIGTERM saves and stops."""
    t = profile.train
    method = build_method(profile)
    state = _init_state(profile, dataset, device)
    torch.manual_seed(t.seed)  # dropout draws from the global generator; saved in checkpoints
    if resume is not None:
        _prepare_resume(state, run_dir, resume)
    total = max(math.ceil(t.kimg * 1000 / t.batch_size), 1)
    sink(
        {
            "type": "run_start",
            "format": 1,
            "version": __version__,
            "world_size": 1,
            "device": str(device),
            "step": state.step,
            "total_steps": total,
        }
    )
    state.model.train()
    with deferred_interrupts() as stop:
        try:
            _loop(
                state,
                method,
                profile,
                dataset,
                run_dir,
                device=device,
                sink=sink,
                total=total,
                stop=stop,
            )
        except KeyboardInterrupt as exc:
            sig = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
            ignore_sigterm()  # a second SIGTERM must not cut the final save short
            if state.step > state.saved:
                _safe_checkpoint(run_dir, state, method, profile, dataset, sink)
            sink({"type": "run_end", "status": "interrupted", "step": state.step, "signal": sig})
            return TrainResult(run_dir, state.step, state.nimg / 1000, "interrupted", sig)
        except PfgmctlError as err:
            sink({"type": "run_end", "status": "failed", "step": state.step, "error": str(err)})
            raise
    sink({"type": "run_end", "status": "done", "step": state.step})
    return TrainResult(run_dir, state.step, state.nimg / 1000, "done")
