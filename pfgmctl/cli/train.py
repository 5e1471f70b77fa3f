"""`pfgmctl train`: train a profile into an auto-numbered run directory."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import emit_json, runs_dir
from pfgmctl.config.load import DEFAULT_PROFILE, load_profile, profile_from_text, profile_to_toml
from pfgmctl.config.schema import Profile
from pfgmctl.engine.rundir import atomic_write_text, create_run_dir, newest_run
from pfgmctl.errors import UsageError


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile", "-p", help=f"Profile name or TOML path (default: {DEFAULT_PROFILE})."
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a profile key, e.g. --set train.lr=1e-4 (repeatable)."
    ),
]


def _resume_source(resume: str, outdir: Path) -> tuple[Path, Path]:
    """(state checkpoint, run dir) for --resume latest | RUN_DIR | state-*.pt."""
    from pfgmctl.engine.inference import latest_checkpoint

    if resume == "latest":
        run = newest_run(outdir)
        if run is None:
            raise UsageError(
                f"--resume latest: no runs under {outdir}; start one with 'pfgmctl train'"
            )
        return latest_checkpoint(run, "state"), run
    path = Path(resume)
    if path.is_dir():
        return latest_checkpoint(path, "state"), path
    if not path.is_file():
        raise UsageError(f"--resume {resume}: no such file or run directory")
    run = path.parent.parent
    return path, run


def _summary(profile: Profile, dataset: Any, n_params: int) -> dict[str, Any]:
    return {
        "profile": profile.name,
        "method": profile.method.kind,
        "data": dataset.name,
        "n_train": len(dataset.train),
        "n_holdout": len(dataset.holdout),
        "item_shape": list(dataset.item_shape),
        "parameters": n_params,
    }


@app.command(rich_help_panel="Training")
def train(
    profile: ProfileOpt = None,
    set_: SetOpt = None,
    outdir: Annotated[
        Path | None, typer.Option("--outdir", "-o", help="Runs directory (default ./runs).")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Continue 'latest', a run directory or a state-*.pt file.")
    ] = None,
    device: Annotated[Device | None, typer.Option(help="Override train.device.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the resolved profile and exit.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON result on stdout.")
    ] = False,
    tui: Annotated[
        bool,
        typer.Option("--tui", help="Train in a child process and watch it in the dashboard."),
    ] = False,
) -> None:
    """Train a profile into a run dir; Ctrl-C / SIGTERM save a checkpoint and exit 130 / 143."""
    if tui and not dry_run:
        _train_tui(profile, set_, outdir, resume, device, json_out)
        return
    from pfgmctl.data import build_dataset
    from pfgmctl.engine.build import build_model, resolve

    overrides = tuple(set_ or ())
    out = runs_dir(outdir)
    state_path = run = None
    if resume is not None:
        state_path, run = _resume_source(resume, out)
        prof = _profile_of_run(run, state_path, overrides)
        if profile is not None and profile not in (prof.name, f"{prof.name}.toml"):
            err_console.print(
                f"note: --resume uses the run's profile '{prof.name}', not {profile!r}"
            )
    else:
        prof = load_profile(profile, overrides)
    dataset = build_dataset(prof.data)
    prof = resolve(prof, dataset)
    if device is not None:
        prof = prof.model_copy(
            update={"train": prof.train.model_copy(update={"device": device.value})}
        )
    model = build_model(prof, dataset.item_shape, dataset.num_classes)
    n_params = sum(p.numel() for p in model.parameters())
    summary = _summary(prof, dataset, n_params)
    if dry_run:
        _print_dry_run(prof, summary, json_out)
        return
    _run(prof, dataset, out, run, state_path, summary, json_out)


def _train_tui(
    profile: str | None,
    set_: list[str] | None,
    outdir: Path | None,
    resume: str | None,
    device: Device | None,
    json_out: bool,
) -> None:
    """`train --tui`: the same training as a child process, watched by `pfgmctl tui`."""
    from pfgmctl.cli.tui import child_command, train_with_tui

    if json_out:
        raise UsageError("--tui cannot be combined with --json; drop one of them")
    out = runs_dir(outdir)
    run = _resume_source(resume, out)[1] if resume is not None else None
    dev = device.value if device is not None else None
    cmd = child_command(profile, list(set_ or ()), outdir, resume, dev)
    train_with_tui(cmd, out, run, None)


def _profile_of_run(run: Path, state_path: Path, overrides: tuple[str, ...]) -> Profile:
    """The profile a resumed run was trained with (from the checkpoint itself), plus --set."""
    from pfgmctl.engine.checkpoint import load_state

    saved = load_state(state_path)
    if "profile" not in saved:
        raise UsageError(f"--resume {state_path}: not a pfgmctl training state")
    return profile_from_text(str(saved["profile"]), f"{state_path} (embedded)", overrides)


def _print_dry_run(prof: Profile, summary: dict[str, Any], json_out: bool) -> None:
    text = profile_to_toml(prof)
    if json_out:
        emit_json({**summary, "resolved_profile": text})
        return
    typer.echo(text)
    for key, value in summary.items():
        err_console.print(f"{key:>12}: {value}", highlight=False)


def _run(
    prof: Profile,
    dataset: Any,
    out: Path,
    run: Path | None,
    state_path: Path | None,
    summary: dict[str, Any],
    json_out: bool,
) -> None:
    from pfgmctl.cli.render import TrainRenderer
    from pfgmctl.engine.build import pick_device
    from pfgmctl.engine.rundir import FanoutSink, RunSink
    from pfgmctl.engine.train import train as train_loop

    device = pick_device(prof.train.device)
    if run is None or not (run / "profile.toml").is_file():
        run = create_run_dir(out, prof.name)
        atomic_write_text(run / "profile.toml", profile_to_toml(prof))
    err_console.print(
        f"run {run}  ·  {summary['method']} on {summary['data']} ({summary['n_train']} rows)"
        f"  ·  {summary['parameters']:,} parameters  ·  {device}",
        highlight=False,
    )
    t0 = time.perf_counter()
    with TrainRenderer(err_console, quiet=json_out) as renderer:
        result = train_loop(
            prof,
            dataset,
            run,
            device=device,
            sink=FanoutSink(RunSink(run), renderer),
            resume=state_path,
        )
    preview = run / "samples" / f"{result.step:09d}.png"
    picture = preview if preview.is_file() else None
    info = {
        "run_dir": str(run),
        "status": result.status,
        "step": result.step,
        "kimg": result.kimg,
        "seconds": time.perf_counter() - t0,
        "picture": str(picture) if picture else None,
    }
    if json_out:
        emit_json(info)
    if result.status == "interrupted":  # exit 128 + signal number: 130 Ctrl-C, 143 SIGTERM
        err_console.print(
            f"interrupted ({result.signal}) at step {result.step}; "
            f"continue with: pfgmctl train --resume {run}",
            highlight=False,
        )
        raise typer.Exit(143 if result.signal == "SIGTERM" else 130)
    err_console.print(
        f"done: step {result.step} ({result.kimg:.1f} kimg) in "
        f"{info['seconds']:.1f} s; samples: {picture}",
        highlight=False,
    )
