"""`pfgmctl train`: train a profile into an auto-numbered run directory."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import emit_json, resume_source, runs_dir, show_data_warnings
from pfgmctl.config.load import DEFAULT_PROFILE, load_profile, profile_from_text, profile_to_toml
from pfgmctl.config.schema import Profile
from pfgmctl.engine.rundir import atomic_write_text, create_run_dir
from pfgmctl.errors import UsageError


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


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


def _summary(profile: Profile, dataset: Any, n_params: int | None) -> dict[str, Any]:
    """Run facts for the start line and the dry run; `dataset` None: the data is not loaded."""
    return {
        "profile": profile.name,
        "method": profile.method.kind,
        "data": dataset.name if dataset is not None else profile.data.kind,
        "n_train": len(dataset.train) if dataset is not None else None,
        "n_holdout": len(dataset.holdout) if dataset is not None else None,
        "item_shape": list(dataset.item_shape) if dataset is not None else None,
        "num_classes": dataset.num_classes if dataset is not None else None,
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
        state_path, run = resume_source(resume, out, "train")
        prof = _profile_of_run(run, state_path, overrides)
        if profile is not None and profile not in (prof.name, f"{prof.name}.toml"):
            err_console.print(
                f"note: --resume uses the run's profile '{prof.name}', not {profile!r}"
            )
    else:
        prof = load_profile(profile, overrides)
    if dry_run:
        _dry_run(prof, device, json_out)
        return
    dataset = build_dataset(prof.data)
    show_data_warnings(dataset)
    prof = resolve(prof, dataset)
    if device is not None:
        prof = prof.model_copy(
            update={"train": prof.train.model_copy(update={"device": device.value})}
        )
    model = build_model(prof, dataset.item_shape, dataset.num_classes)
    n_params = sum(p.numel() for p in model.parameters())
    summary = _summary(prof, dataset, n_params)
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
    run = resume_source(resume, out, "train")[1] if resume is not None else None
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


def _print_dry_run(
    prof: Profile, summary: dict[str, Any], json_out: bool, notes: dict[str, str] | None = None
) -> None:
    """The resolved profile on stdout (derived keys commented), the summary on stderr.

    With --json: one JSON object with the summary and the profile text instead.
    """
    text = _annotate(profile_to_toml(prof), "method", notes or {})
    if json_out:
        emit_json({**summary, "resolved_profile": text})
        return
    typer.echo(text)
    for key, value in _summary_lines(summary):
        err_console.print(f"{key:>12}: {value}", highlight=False, markup=False, soft_wrap=True)


def _summary_lines(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Human lines of a dry-run summary: profile, method, net, parameters, data, derived keys."""
    params = summary["parameters"]
    count = f"{params:,}" if params is not None else "unknown (needs the data's item shape)"
    lines = [
        ("profile", str(summary["profile"])),
        ("method", str(summary["method"])),
        ("net", str(summary.get("net", ""))),
        ("parameters", count),
    ]
    data = summary.get("data_summary")
    lines.append(("data", data if data is not None else str(summary["data"])))
    if summary.get("derived"):
        lines.append(("derived", f"{', '.join(summary['derived'])} ({summary['derived_note']})"))
    return lines


def _dry_run(prof: Profile, device: Device | None, json_out: bool) -> None:
    """`train --dry-run`: resolved profile, parameter count and data summary; nothing written.

    Missing data (a path that does not exist) is reported as `data: MISSING (...)` after the
    profile and the parameter count (taken from the item shape the profile implies), then the
    command exits 1: the profile is fine but training could not start.
    """
    from pfgmctl.data import build_dataset, mean_norm
    from pfgmctl.engine.build import check_precond, resolve
    from pfgmctl.errors import DataError, PfgmctlError

    if device is not None:
        prof = prof.model_copy(
            update={"train": prof.train.model_copy(update={"device": device.value})}
        )
    check_precond(prof)
    try:
        dataset = build_dataset(prof.data)
        show_data_warnings(dataset)
    except DataError as err:
        missing = _missing_path(prof)
        if missing is None:
            raise
        shape, classes = _implied_item(prof)
        summary = _summary(prof, None, _count_parameters(prof, shape, classes or 0))
        pending = _pending_keys(prof)
        summary.update(
            net=_net_text(prof),
            item_shape=list(shape) if shape is not None else None,
            num_classes=classes,
            data_missing=str(err),
            derived=pending,
            derived_note="to be derived from the data, pfgm.md §2.6",
            data_summary=f"MISSING ({err})",
        )
        _print_dry_run(prof, summary, json_out)
        raise PfgmctlError(
            f"data missing: [data] path '{missing}' does not exist (see the MISSING line); "
            "get the data or point at it with --set data.path=..., then run again"
        ) from None
    resolved = resolve(prof, dataset)
    notes = _derived_notes(prof, resolved)
    n_params = _count_parameters(resolved, dataset.item_shape, dataset.num_classes)
    summary = _summary(resolved, dataset, n_params)
    summary.update(
        net=_net_text(resolved),
        data_kind=prof.data.kind,
        class_names=list(dataset.class_names),
        mean_norm=mean_norm(dataset.train),
        derived=[f"{k} = {getattr(resolved.method, k):.6g}" for k in notes],
        derived_note="from the data, pfgm.md §2.6",
        data_missing=None,
    )
    summary["data_summary"] = _data_text(summary)
    _print_dry_run(resolved, summary, json_out, notes)


def _missing_path(prof: Profile) -> str | None:
    """The `[data] path` of a file-backed source when it does not exist (else None)."""
    path = getattr(prof.data, "path", None)
    if path is None:
        return None
    return path if not path or not Path(path).expanduser().exists() else None


def _implied_item(prof: Profile) -> tuple[tuple[int, ...] | None, int | None]:
    """(item shape, classes) a data source will have, known without loading it where possible."""
    d = prof.data
    classes = 10 if getattr(d, "conditional", False) else 0
    if d.kind == "cifar10":
        return (3, 32, 32), classes
    if d.kind == "folder":  # classes = sub-folders: unknown without the data
        return (3, d.resolution, d.resolution), None if d.conditional else 0
    if d.kind == "shapes":
        return (d.channels, d.resolution, d.resolution), 3 if d.conditional else 0
    if d.kind == "digits":
        return (1, 8, 8), classes
    if d.kind == "toy":
        return (2,), 0
    return None, None


def _count_parameters(
    prof: Profile, item_shape: tuple[int, ...] | None, num_classes: int
) -> int | None:
    """Trainable parameters of the profile's model.

    U-Nets are built on the meta device (no memory, no init: 62M parameters in well under a
    second once torch's meta kernels are imported); small MLPs are faster to build on the CPU.
    """
    import torch

    from pfgmctl.engine.build import build_model

    if item_shape is None:
        return None
    if prof.net.kind == "mlp":
        model = build_model(prof, tuple(item_shape), num_classes)
        return sum(p.numel() for p in model.parameters())
    try:
        with torch.device("meta"):
            model = build_model(prof, tuple(item_shape), num_classes)
    except (NotImplementedError, RuntimeError):  # a net that cannot be built on meta: use the CPU
        model = build_model(prof, tuple(item_shape), num_classes)
    return sum(p.numel() for p in model.parameters())


def _net_text(prof: Profile) -> str:
    """One line describing the network config, e.g. `unet ddpmpp, 128 ch × [1, 2, 2, 2], ...`."""
    net = prof.net
    head = f"precond {prof.precond}"
    if net.kind == "unet":
        return (
            f"unet {net.arch}, {net.model_channels} ch × {list(net.channel_mult)}, "
            f"{net.num_blocks} blocks/res, attention at {list(net.attn_resolutions)}, "
            f"dropout {net.dropout:g}, {net.embedding} embedding, {head}"
        )
    return (
        f"{net.kind}, hidden {net.hidden} × {net.blocks} blocks, emb {net.emb_dim}, "
        f"dropout {net.dropout:g}, {head}"
    )


def _data_text(summary: dict[str, Any]) -> str:
    """`cifar10 (kind cifar10): 50,000 train / 0 holdout, item 3×32×32, 10 classes, mean norm 31.9`."""
    shape = "×".join(str(s) for s in summary["item_shape"])
    k = summary["num_classes"]
    names = summary.get("class_names") or []
    classes = "unconditional" if not k else f"{k} classes ({', '.join(names[:10])}"
    if k:
        classes += ", ...)" if len(names) > 10 else ")"
    return (
        f"{summary['data']} (kind {summary['data_kind']}): {summary['n_train']:,} train / "
        f"{summary['n_holdout']:,} holdout, item {shape}, {classes}, "
        f"mean norm {summary['mean_norm']:.4g}"
    )


_DERIVED = ("m", "z_max", "upper_norm", "z_exp")
"""PFGM keys derived from the data when a profile omits them (pfgm.md §2.6)."""


def _pending_keys(prof: Profile) -> list[str]:
    """PFGM heuristic keys the profile leaves to the data."""
    return [k for k in _DERIVED if getattr(prof.method, k, 0) is None]


def _derived_notes(prof: Profile, resolved: Profile) -> dict[str, str]:
    """method key → why its resolved value differs from the profile (derived or capped)."""
    notes = {k: "derived from the data, pfgm.md §2.6" for k in _pending_keys(prof)}
    if "z_exp" in notes:
        notes["z_exp"] = "derived: z_max / 8"
    before, after = (
        getattr(prof.method, "n_charges", None),
        getattr(resolved.method, "n_charges", None),
    )
    if before is not None and after != before:
        notes["n_charges"] = f"capped at the training set size (profile: {before})"
    return notes


def _annotate(text: str, table: str, notes: dict[str, str]) -> str:
    """Append `# note` to the `key = value` lines of `[table]` named in `notes`."""
    out, current = [], ""
    for line in text.splitlines():
        if line.startswith("["):
            current = line.strip("[] ")
        key = line.split("=", 1)[0].strip()
        if current == table and "=" in line and key in notes:
            line = f"{line}  # {notes[key]}"
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def _no_events(event: dict[str, Any]) -> None:
    """The sink of ranks other than 0 under torchrun."""


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
    from pfgmctl.engine import dist
    from pfgmctl.engine.build import pick_device
    from pfgmctl.engine.rundir import FanoutSink, RunSink
    from pfgmctl.engine.train import plan_shards
    from pfgmctl.engine.train import train as train_loop

    # Under torchrun every rank runs this; rank 0 alone creates and writes the run dir and prints.
    world, device = dist.init_from_env(pick_device(prof.train.device))
    try:
        plan_shards(prof.train, world.size)  # batch / micro-batch errors before any run dir exists
        if world.main and (run is None or not (run / "profile.toml").is_file()):
            run = create_run_dir(out, prof.name)
            atomic_write_text(run / "profile.toml", profile_to_toml(prof))
        run = dist.broadcast_path(run, world)
        ranks = f" × {world.size} ranks" if world.distributed else ""
        if world.main:
            err_console.print(
                f"run {run}  ·  {summary['method']} on {summary['data']} ({summary['n_train']} rows)"
                f"  ·  {summary['parameters']:,} parameters  ·  {device}{ranks}",
                highlight=False,
            )
        t0 = time.perf_counter()
        with TrainRenderer(err_console, quiet=json_out or not world.main) as renderer:
            result = train_loop(
                prof,
                dataset,
                run,
                device=device,
                sink=FanoutSink(RunSink(run), renderer) if world.main else _no_events,
                resume=state_path,
                world=world,
            )
    finally:
        dist.cleanup()
    if not world.main:
        if result.status == "interrupted":
            raise typer.Exit(143 if result.signal == "SIGTERM" else 130)
        return
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
