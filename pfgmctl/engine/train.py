"""The training loop: Adam with warm-up, grad clipping, EMA by half-life, ticks, checkpoints, previews.

Scale (architecture.md §9, as decided for issue 3):

- **Shards.** The global batch B_S = `train.batch_size` is cut into S equal shards of m rows
  (m = `train.micro_batch`, default B_S / world size). Rank r trains shards r·A … r·A + A − 1 one
  after the other (A = S / world size accumulation steps), each loss scaled by 1/A so that, after
  DDP's average over ranks, the gradient is that of the mean loss over all B_S rows.
- **Data is world-size invariant.** Every rank draws the same global rows each step from one
  stream seeded by `train.seed` alone and keeps its shards' rows.
- **Randomness is stateless.** Shard s of step k draws its noise (and data transforms, and
  dropout) from generators seeded by a hash of (seed, k, s): a run is a function of (profile, S),
  whatever the world size, and resume is bit-exact with nothing but the data stream to save.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pfgmctl import __version__
from pfgmctl.config.load import profile_to_toml
from pfgmctl.config.schema import Profile, TrainConfig
from pfgmctl.data import Dataset
from pfgmctl.data.stream import DataStream
from pfgmctl.engine import dist
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
from pfgmctl.engine.dist import SINGLE, World
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
from pfgmctl.engine.gpu import Autocast, apply_backend_flags, gpu_options
from pfgmctl.engine.grid import samples_picture, save_png
from pfgmctl.engine.preview import sample_with_events
from pfgmctl.engine.rundir import Sink, write_latest
from pfgmctl.engine.shards import (
    Shards,
    plan_shards,
    seed_dropout,
    shard_batch,
    stream_generator,
    stream_seed,
    transforms_of,
)
from pfgmctl.errors import CheckpointError, PfgmctlError
from pfgmctl.methods import Method

RNG_SCHEME = 2
"""Checkpoint `rng.scheme`: 2 = stateless per-(seed, step, shard) noise; only the stream is saved."""

DEVICE_DATA_BYTES = 2 << 30
"""Training rows up to this size live on the accelerator (no host gather or copy per step)."""


@dataclass
class TrainState:
    """Everything that changes during training and must survive a resume."""

    model: nn.Module  # the bare preconditioned net: checkpoints, EMA, previews
    ema: EMA
    opt: torch.optim.Optimizer
    stream: DataStream
    net: nn.Module | None = None  # what the step calls: `model` under autocast / DDP / compile
    ddp: nn.Module | None = None  # the DistributedDataParallel wrapper (for no_sync)
    step: int = 0
    nimg: int = 0
    bins: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0  # non-finite-loss steps since the last tick (metrics key skipped_steps)
    bad_run: int = 0  # consecutive non-finite-loss steps
    saved: int = 0  # step of the newest checkpoint on disk
    nonfinite: Tensor | None = None  # steps with NaN/inf gradients since the last tick (device)
    stop_signal: str = ""  # a SIGINT/SIGTERM seen by any rank at the last step (distributed)
    channels_last: bool = False  # image rows go to the net in channels_last memory format


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
    """Independent generators per purpose from one profile seed (the data order: stream 0)."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + stream)


def _stream_rows(dataset: Dataset, device: torch.device) -> tuple[Tensor, Tensor | None]:
    """Training rows (and labels) for the stream: on the accelerator when they fit comfortably."""
    rows, labels = dataset.train, dataset.train_labels
    if device.type != "cpu" and rows.numel() * rows.element_size() <= DEVICE_DATA_BYTES:
        rows = rows.to(device)
        labels = None if labels is None else labels.to(device)
    return rows, labels


def _init_state(
    profile: Profile, dataset: Dataset, device: torch.device, world: World = SINGLE
) -> TrainState:
    t = profile.train
    model = build_model(profile, dataset.item_shape, dataset.num_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr, betas=(t.beta1, t.beta2), eps=1e-8)
    ema = EMA(model, t.ema_halflife_kimg, t.ema_rampup)  # every rank: identical updates
    gen = _seeded_generator(t.seed, 0, torch.device("cpu"))  # rank-independent: global rows
    rows, labels = _stream_rows(dataset, device)
    stream = DataStream(rows, gen, labels)
    options = gpu_options(t, device, dataset.item_shape)
    if options["channels_last"]:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    net: nn.Module = Autocast(model) if options["amp"] == "bf16" else model
    ddp = None
    if world.distributed:
        net = ddp = dist.wrap_ddp(net, world, device)
    if t.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    zero = torch.zeros((), dtype=torch.int64, device=device)
    return TrainState(
        model,
        ema,
        opt,
        stream,
        net=net,
        ddp=ddp,
        nonfinite=zero,
        channels_last=options["channels_last"],
    )


def _state_dict(state: TrainState, profile_text: str, dataset: Dataset) -> dict[str, Any]:
    """Plain tensors, numbers and strings only: loadable with weights_only=True."""
    return {
        "net": state.model.state_dict(),
        "ema": state.ema.state_dict(),
        "opt": state.opt.state_dict(),
        "step": state.step,
        "nimg": state.nimg,
        "rng": {"scheme": RNG_SCHEME, "stream": state.stream.state_dict()},
        "profile": profile_text,
        "item_shape": list(dataset.item_shape),
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
        "version": __version__,
    }


def _restore(state: TrainState, path: Path) -> None:
    """Load a full training state; any mismatch is a one-line CheckpointError.

    Noise, transforms and dropout are seeded per (seed, step, shard), so only the data stream's
    state is restored. Older checkpoints (saved noise/torch generator states) load too: their
    continuation draws fresh per-step noise instead of continuing the saved generator.
    """
    saved = load_state(path)
    try:
        load_module_strict(state.model, saved["net"], str(path))
        state.ema.load_state_dict(saved["ema"])
        state.opt.load_state_dict(saved["opt"])
        state.stream.load_state_dict(saved["rng"]["stream"])
        state.step, state.nimg = int(saved["step"]), int(saved["nimg"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot resume from {path}: {err}") from None


def _uses_charges(method: Method) -> bool:
    """PFGM's target is the field of all B_L drawn rows; the other methods only use y."""
    return method.kind == "pfgm"


def _draw(
    state: TrainState,
    method: Method,
    t: TrainConfig,
    shards: Shards,
    world: World,
    device: torch.device,
) -> tuple[Tensor, Tensor | None, int]:
    """This step's rows on the device and the row offset of this rank's first shard in them.

    Every rank draws the same global indices. With charges (PFGM) every rank keeps all B_L rows,
    so each rank's target sees the same global charge set as one process would, with no
    all_gather. Without charges a rank gathers only its own shards' rows.
    """
    idx = state.stream.next_indices(method.rows_needed(t.batch_size))
    first = shards.of_rank(world.rank).start * shards.micro
    if not _uses_charges(method):
        idx, first = idx[first : first + shards.accum * shards.micro], 0
    data, labels = state.stream.data, state.stream.labels
    rows = data[idx.to(data.device)]
    lab = None if labels is None else labels[idx.to(labels.device)]
    return rows.to(device, non_blocking=True), None if lab is None else lab.to(device), first


def _train_step(
    state: TrainState,
    method: Method,
    profile: Profile,
    device: torch.device,
    shards: Shards | None = None,
    world: World = SINGLE,
    stop: StopRequest | None = None,
) -> Tensor | None:
    """One optimiser step on B_S rows (PFGM: B_L charges); the global mean loss, or None.

    Rank r runs its A shards, each backward of mean(loss)/A, DDP averaging over ranks on the last
    (earlier ones under no_sync), so the gradient is that of the mean loss over all B_S rows.
    One all_reduce per step carries the loss sum and any stop signal; all ranks see the same
    non-finite loss and skip the update together.
    """
    t = profile.train
    shards = shards or plan_shards(t, world.size)
    net = state.net if state.net is not None else state.model
    rows, labels, first = _draw(state, method, t, shards, world, device)
    if state.channels_last:
        rows = rows.contiguous(memory_format=torch.channels_last)
    uses = _uses_charges(method)
    tf = transforms_of(profile)
    state.opt.zero_grad(set_to_none=True)
    loss_sum = torch.zeros((), dtype=_sum_dtype(device), device=device)
    outs: list[tuple[Tensor, Tensor]] = []
    mine = shards.of_rank(world.rank)
    for i, s in enumerate(mine):
        lo = (s * shards.micro) if uses else first + i * shards.micro
        data_gen = None
        if tf.any:
            data_gen = stream_generator(t.seed, state.step, s, "data", device)
        batch = shard_batch(
            rows, labels, lo, shards.micro, charges=uses, transforms=tf, gen=data_gen
        )
        seed_dropout(stream_seed(t.seed, state.step, s, "dropout"), device)
        gen = stream_generator(t.seed, state.step, s, "noise", device)
        sync = state.ddp is None or i == len(mine) - 1
        ctx: AbstractContextManager[Any] = nullcontext() if sync else _no_sync(state.ddp)
        with ctx:
            out = method.loss(
                net,
                batch.y,
                gen=gen,
                charges=batch.charges,
                labels=batch.labels,
                aug_labels=batch.aug_labels,
            )
            (out.loss.mean() / shards.accum).backward()
        loss_sum += out.loss.detach().sum().to(loss_sum.dtype)
        outs.append((out.noise.detach(), out.loss.detach()))
    total, state.stop_signal = _reduce_step(loss_sum, stop, world)
    loss = total / t.batch_size
    state.step, state.nimg = state.step + 1, state.nimg + t.batch_size
    if not bool(torch.isfinite(loss)):  # one host sync per step; the update is skipped
        state.opt.zero_grad(set_to_none=True)
        state.skipped, state.bad_run = state.skipped + 1, state.bad_run + 1
        return None
    state.bad_run = 0
    _clean_grads(state, t.grad_clip)
    warm = (
        min((state.nimg - t.batch_size) / (t.warmup_kimg * 1000), 1.0) if t.warmup_kimg > 0 else 1.0
    )
    for group in state.opt.param_groups:
        group["lr"] = t.lr * max(warm, 1e-8)
    state.opt.step()
    state.ema.update(state.model, state.nimg, t.batch_size)
    for noise, per_row in outs:
        _accumulate_bins(state, noise, per_row, method, t.loss_bins)
    return loss.float()


def _sum_dtype(device: torch.device) -> torch.dtype:
    """float64 for loss sums and bins, float32 on MPS (which has no float64)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _no_sync(ddp: nn.Module | None) -> AbstractContextManager[Any]:
    no_sync = getattr(ddp, "no_sync", None)
    return no_sync() if no_sync is not None else nullcontext()


def _reduce_step(loss_sum: Tensor, stop: StopRequest | None, world: World) -> tuple[Tensor, str]:
    """(global loss sum, "SIGTERM" | "SIGINT" | "") — one all_reduce when distributed."""
    if not world.distributed:
        return loss_sum, ""
    sig = stop.signal if stop is not None else ""
    flags = [float(sig == "SIGINT"), float(sig == "SIGTERM")]
    packed = torch.cat([loss_sum.reshape(1), loss_sum.new_tensor(flags)])
    torch.distributed.all_reduce(packed)
    seen = "SIGTERM" if packed[2] > 0 else "SIGINT" if packed[1] > 0 else ""
    return packed[0], seen


def _clean_grads(state: TrainState, grad_clip: float) -> None:
    """Count a NaN/inf gradient (issue 8), zero it (EDM: it never reaches the weights), clip.

    After DDP's all-reduce every rank holds the same gradients, so the count agrees across ranks.
    """
    grads = [p.grad for p in state.model.parameters() if p.grad is not None]
    if not grads:
        return
    norm = torch.nn.utils.get_total_norm(grads)
    assert state.nonfinite is not None
    state.nonfinite += (~torch.isfinite(norm)).to(state.nonfinite.dtype)
    for g in grads:
        torch.nan_to_num_(g, nan=0.0, posinf=1e5, neginf=-1e5)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(state.model.parameters(), grad_clip)


def _accumulate_bins(
    state: TrainState, noise: Tensor, loss: Tensor, method: Method, n_bins: int
) -> None:
    """Add per-sample losses into the noise bins of the current tick (on the device, no sync)."""
    dtype = _sum_dtype(noise.device)
    if "edges" not in state.bins:
        edges = method.noise_edges(n_bins)
        state.bins["edges"] = edges
        state.bins["inner"] = torch.tensor(edges[1:-1], dtype=dtype, device=noise.device)
        state.bins["sum"] = torch.zeros(n_bins, dtype=dtype, device=noise.device)
        state.bins["count"] = torch.zeros(n_bins, dtype=dtype, device=noise.device)
    idx = torch.bucketize(noise.to(dtype), state.bins["inner"])
    state.bins["sum"].index_add_(0, idx, loss.to(dtype))
    state.bins["count"].index_add_(0, idx, torch.ones_like(loss, dtype=dtype))


def _tick_record(
    state: TrainState,
    method: Method,
    losses: list[Tensor],
    nimg0: int,
    seconds: float,
    world: World = SINGLE,
) -> dict[str, Any]:
    """One metrics.jsonl line (architecture.md §7); resets the per-bin accumulators.

    Every rank calls it: the loss bins are summed over ranks (the only tick-time collective).
    """
    edges = state.bins.get("edges", [])
    sums: list[float] = []
    counts: list[float] = []
    if edges:
        packed = torch.stack([state.bins["sum"], state.bins["count"]])
        if world.distributed:
            torch.distributed.all_reduce(packed)
        sums, counts = packed[0].tolist(), packed[1].tolist()
    state.bins.clear()
    skipped, state.skipped = state.skipped, 0
    nonfinite = 0
    if state.nonfinite is not None:
        nonfinite = int(state.nonfinite)
        state.nonfinite.zero_()
    kimg = (state.nimg - nimg0) / 1000
    record: dict[str, Any] = {
        "type": "tick",
        "step": state.step,
        "kimg": state.nimg / 1000,
        "loss": float(torch.stack(losses).mean()) if losses else math.nan,
        "lr": state.opt.param_groups[0]["lr"],
        "skipped_steps": skipped,
        "nonfinite_grads": nonfinite,
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
    device = next(state.model.parameters()).device
    if device.type == "cuda":
        record["mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return record


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
    run_dir: Path,
    state: TrainState,
    method: Method,
    profile: Profile,
    dataset: Dataset,
    sink: Sink,
    world: World = SINGLE,
) -> None:
    """`_checkpoint` on rank 0 (the others wait), a write failure (ENOSPC, ...) one line."""
    if world.main:
        try:
            _checkpoint(run_dir, state, method, profile, dataset, sink)
        except OSError as err:
            kept = f"checkpoint (step {state.saved}) is intact" if state.saved else "none was saved"
            raise PfgmctlError(
                f"cannot write the step-{state.step} checkpoint in {run_dir / 'checkpoints'} "
                f"({err.strerror or err}); the previous {kept}; "
                "free disk space or fix permissions, then pfgmctl train --resume latest"
            ) from None
    dist.barrier()  # rank 0's preview and writes; the others must not run ahead into a collective
    state.saved = state.step


def _prepare_resume(state: TrainState, run_dir: Path, resume: Path, world: World = SINGLE) -> None:
    """Restore the state (every rank) and repair the run dir (rank 0): no metrics past its step."""
    _restore(state, resume)
    state.saved = state.step
    if world.main:
        repair_run_dir(run_dir, state.step)
    dist.barrier()


def _check_stop(state: TrainState, stop: StopRequest, world: World) -> None:
    """Act on SIGINT / SIGTERM between steps; distributed, on any rank's signal (all together)."""
    if not world.distributed:
        stop.check()
    elif state.stop_signal == "SIGTERM":
        raise Terminated("SIGTERM")
    elif state.stop_signal:
        raise KeyboardInterrupt


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
    shards: Shards,
    world: World,
) -> None:
    """Steps, ticks (metrics lines) and checkpoints until `total` steps are done."""
    t = profile.train
    tick_steps = max(round(t.tick_kimg * 1000 / t.batch_size), 1)
    losses: list[Tensor] = []  # kept on the device: no host sync per step
    nimg0, t0, last_loss = state.nimg, time.perf_counter(), math.nan
    while state.step < total:
        loss = _train_step(state, method, profile, device, shards, world, stop)
        if loss is not None:
            losses.append(loss)
        if state.bad_run >= t.max_bad_steps:  # the newest checkpoint predates the bad steps
            args = (state.step, state.bad_run, t.max_bad_steps, state.saved, run_dir)
            raise PfgmctlError(bad_run_message(*args))
        tick = state.step % tick_steps == 0 or state.step >= total
        if tick:
            seconds = time.perf_counter() - t0
            record = _tick_record(state, method, losses, nimg0, seconds, world)
            last_loss, losses = record["loss"], []
            last = state.step >= total
            if world.main:
                _maybe_eval(record, state, method, profile, dataset, since_nimg=nimg0, last=last)
            sink(record)
        sink({"type": "progress", "step": state.step, "total": total, "loss": last_loss})
        if tick and ((state.step // tick_steps) % t.ckpt_ticks == 0 or state.step >= total):
            _safe_checkpoint(run_dir, state, method, profile, dataset, sink, world)
        if tick:  # checkpoint and preview time stays out of the next tick's img/s
            nimg0, t0 = state.nimg, time.perf_counter()
        _check_stop(state, stop, world)


def _null_sink(event: dict[str, Any]) -> None:
    """Ranks other than 0 write and print nothing."""


def train(
    profile: Profile,
    dataset: Dataset,
    run_dir: Path,
    *,
    device: torch.device,
    sink: Sink,
    resume: Path | None = None,
    world: World | None = None,
) -> TrainResult:
    """Train `profile` (already resolved) into `run_dir`; Ctrl-C or SIGTERM saves and stops.

    Under torchrun (`world` or an initialised process group) every rank calls this with the same
    run dir; only rank 0 writes it or calls `sink`.
    """
    t = profile.train
    world = world or dist.current()
    sink = sink if world.main else _null_sink
    shards = plan_shards(t, world.size)
    method = build_method(profile)
    apply_backend_flags(t, device)
    state = _init_state(profile, dataset, device, world)
    if resume is not None:
        _prepare_resume(state, run_dir, resume, world)
    total = max(math.ceil(t.kimg * 1000 / t.batch_size), 1)
    sink(
        {
            "type": "run_start",
            "format": 1,
            "version": __version__,
            "world_size": world.size,
            "device": str(device),
            "step": state.step,
            "total_steps": total,
            "shards": shards.count,
            "micro_batch": shards.micro,
            "accumulation": shards.accum,
            "options": gpu_options(t, device, dataset.item_shape),
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
                shards=shards,
                world=world,
            )
        except KeyboardInterrupt as exc:
            sig = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
            ignore_sigterm()  # a second SIGTERM must not cut the final save short
            if state.step > state.saved:
                _safe_checkpoint(run_dir, state, method, profile, dataset, sink, world)
            sink({"type": "run_end", "status": "interrupted", "step": state.step, "signal": sig})
            return TrainResult(run_dir, state.step, state.nimg / 1000, "interrupted", sig)
        except PfgmctlError as err:
            sink({"type": "run_end", "status": "failed", "step": state.step, "error": str(err)})
            raise
    sink({"type": "run_end", "status": "done", "step": state.step})
    return TrainResult(run_dir, state.step, state.nimg / 1000, "done")
