"""`pfgmctl distill`: IPFM distillation of a PFGM++ teacher into a 1–K step generator."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import emit_json, resume_source, runs_dir
from pfgmctl.cli.train import Device, SetOpt
from pfgmctl.config.load import load_profile, profile_from_text, profile_to_toml
from pfgmctl.engine.rundir import atomic_write_text, create_run_dir
from pfgmctl.errors import UsageError

if TYPE_CHECKING:
    from torch import Tensor

    from pfgmctl.config.schema import Profile
    from pfgmctl.engine.distill import Teacher


def _resumed(state_path: Path, overrides: tuple[str, ...]) -> tuple[Profile, Teacher]:
    """The profile and (stored) teacher of a distillation state."""
    from pfgmctl.engine.checkpoint import load_state
    from pfgmctl.engine.distill import KIND, check_matches_teacher, teacher_from_state

    saved = load_state(state_path)
    if saved.get("kind") != KIND or "profile" not in saved:
        raise UsageError(
            f"--resume {state_path}: not a distillation run; use 'pfgmctl train --resume'"
        )
    stored = profile_from_text(str(saved["profile"]), f"{state_path} (embedded)")
    teacher = teacher_from_state(saved, stored, str(state_path))
    prof = profile_from_text(str(saved["profile"]), f"{state_path} (embedded)", overrides)
    check_matches_teacher(prof, teacher)
    return prof, teacher


def _reference(prof: Profile, teacher: Teacher) -> Tensor | None:
    """Data rows drawn behind 2-D previews (None for images or when the data is not at hand)."""
    from pfgmctl.data import build_dataset
    from pfgmctl.errors import PfgmctlError

    if len(teacher.item_shape) != 1:
        return None
    try:
        return build_dataset(prof.data).train[:2000]
    except (PfgmctlError, OSError):
        return None


@app.command(rich_help_panel="Training")
def distill(
    teacher: Annotated[
        Path | None,
        typer.Option(help="PFGM++ teacher: a run directory or an ema-*/state-* checkpoint."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Profile whose distill table to use, e.g. toy2d-distill (default: paper values).",
        ),
    ] = None,
    set_: SetOpt = None,
    outdir: Annotated[
        Path | None, typer.Option("--outdir", "-o", help="Runs directory (default ./runs).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue 'latest', a distill run dir or a state-*.pt.")
    ] = None,
    device: Annotated[Device | None, typer.Option(help="Override train.device.")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON result on stdout.")
    ] = False,
) -> None:
    """Distil a PFGM++ teacher (any D, inf = SiD) into a 1–K step generator (IPFM).

    Method, net and data come from the teacher; --profile supplies only the distill table.
    Ctrl-C / SIGTERM save a checkpoint and exit 130 / 143.
    """
    from pfgmctl.engine.distill import distill_profile, load_teacher

    overrides = tuple(set_ or ())
    out = runs_dir(outdir)
    state_path = run = None
    if resume is not None:
        state_path, run = resume_source(resume, out, "distill")
        prof, teach = _resumed(state_path, overrides)
        if teacher is not None or profile is not None:
            err_console.print("note: --resume uses the run's own teacher and profile")
    else:
        if teacher is None:
            raise UsageError("--teacher is required: a PFGM++ run directory or checkpoint")
        teach = load_teacher(teacher)
        prof = distill_profile(teach, load_profile(profile) if profile else None, overrides)
    if device is not None:
        prof = prof.model_copy(
            update={"train": prof.train.model_copy(update={"device": device.value})}
        )
    _run(prof, teach, out, run, state_path, json_out)


def _run(
    prof: Profile,
    teach: Teacher,
    out: Path,
    run: Path | None,
    state_path: Path | None,
    json_out: bool,
) -> None:
    from pfgmctl.cli.render import TrainRenderer
    from pfgmctl.engine.build import pick_device
    from pfgmctl.engine.distill import distill as distill_loop
    from pfgmctl.engine.rundir import FanoutSink, RunSink

    dev = pick_device(prof.train.device)
    ref = _reference(prof, teach)
    if run is None or not (run / "profile.toml").is_file():
        run = create_run_dir(out, prof.name)
        atomic_write_text(run / "profile.toml", profile_to_toml(prof))
    cfg = prof.distill
    d = teach.profile.method.aug_dim  # type: ignore[union-attr]
    err_console.print(
        f"run {run}  ·  IPFM from {teach.profile.name} (D = {d:g})  ·  K = {cfg.steps}, "
        f"α = {cfg.alpha:g}, σ_init = {cfg.sigma_init:g}  ·  {dev}",
        highlight=False,
    )
    t0 = time.perf_counter()
    with TrainRenderer(err_console, quiet=json_out) as renderer, RunSink(run) as sink:
        result = distill_loop(
            prof,
            teach,
            run,
            device=dev,
            sink=FanoutSink(sink, renderer),
            resume=state_path,
            ref=ref,
        )
    preview = run / "samples" / f"{result.step:09d}.png"
    info: dict[str, Any] = {
        "run_dir": str(run),
        "status": result.status,
        "step": result.step,
        "kimg": result.kimg,
        "nfe": cfg.steps,
        "seconds": time.perf_counter() - t0,
        "picture": str(preview) if preview.is_file() else None,
    }
    if json_out:
        emit_json(info)
    if result.status == "interrupted":
        err_console.print(
            f"interrupted ({result.signal}) at step {result.step}; "
            f"continue with: pfgmctl distill --resume {run}",
            highlight=False,
        )
        raise typer.Exit(143 if result.signal == "SIGTERM" else 130)
    err_console.print(
        f"done: step {result.step} ({result.kimg:.1f} kimg) in {info['seconds']:.1f} s; "
        f"samples: {info['picture']}; sample with: pfgmctl sample --run {run}",
        highlight=False,
    )
