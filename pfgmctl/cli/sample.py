"""`pfgmctl sample`: draw samples from a run, a checkpoint, or the exact field of a data set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import check_output, emit_json, free_path, runs_dir, seeds_from_options
from pfgmctl.cli.train import Device, ProfileOpt, SetOpt
from pfgmctl.config.load import load_profile, profile_to_toml
from pfgmctl.config.schema import ArrayData, Profile, ToyData
from pfgmctl.engine.rundir import newest_run
from pfgmctl.errors import UsageError

if TYPE_CHECKING:
    from torch import Tensor


def exact_source(data: str, profile: str | None, overrides: tuple[str, ...]) -> tuple[Profile, Any]:
    """Profile P with its data replaced by DATA (a file or a built-in toy) and the exact model.

    Returns (profile, (model, item_shape, training rows)).
    """
    from pfgmctl.data import build_dataset
    from pfgmctl.data.toy2d import TOYS
    from pfgmctl.engine.build import build_exact, resolve

    prof = load_profile(profile, overrides)
    if Path(data).is_file():
        cfg: ToyData | ArrayData = ArrayData(path=data)
    elif data in TOYS:
        keep = prof.data if isinstance(prof.data, ToyData) else ToyData()
        cfg = keep.model_copy(update={"name": data})
    else:
        raise UsageError(
            f"--exact {data}: not a file and not a built-in toy ({', '.join(sorted(TOYS))})"
        )
    prof = prof.model_copy(update={"data": cfg})
    dataset = build_dataset(prof.data)
    prof = resolve(prof, dataset)
    return prof, (build_exact(prof, dataset.train), dataset.item_shape, dataset.train)


def trained_source(
    run: Path | None, checkpoint: Path | None, overrides: tuple[str, ...]
) -> tuple[Profile, Any, Path | None]:
    """The model of --checkpoint FILE or of --run DIR (default: the newest run), with its profile.

    Returns (profile, (model, item_shape, None), run_dir or None).
    """
    from pfgmctl.engine.inference import latest_checkpoint, load_checkpoint

    if checkpoint is not None:
        loaded = load_checkpoint(checkpoint, overrides)
        return loaded.profile, (loaded.model, loaded.item_shape, None), None
    if run is None:
        run = newest_run(runs_dir(None))
        if run is None:
            raise UsageError(
                f"no runs under {runs_dir(None)}; train one with 'pfgmctl train', "
                "or pass --run DIR, --checkpoint FILE or --exact DATA"
            )
    if not run.is_dir():
        raise UsageError(f"--run {run}: no such run directory")
    loaded = load_checkpoint(latest_checkpoint(run, "ema"), overrides)
    return loaded.profile, (loaded.model, loaded.item_shape, None), run


def _with_sampling(
    prof: Profile,
    solver: str | None,
    steps: int | None,
    rtol: float | None,
    atol: float | None,
    batch: int | None,
) -> Profile:
    from pfgmctl.solvers import canonical

    update: dict[str, Any] = {
        k: v
        for k, v in {
            "solver": solver,
            "steps": steps,
            "rtol": rtol,
            "atol": atol,
            "batch": batch,
        }.items()
        if v is not None
    }
    for key in ("steps", "batch"):
        if key in update and update[key] < 1:
            raise UsageError(f"--{key} must be at least 1 (got {update[key]})")
    for key in ("rtol", "atol"):
        if key in update and not update[key] > 0:
            raise UsageError(f"--{key} must be > 0 (got {update[key]})")
    try:
        canonical(update.get("solver", prof.sample.solver))
    except ValueError as err:
        raise UsageError(f"--solver: {err}") from None
    return prof.model_copy(update={"sample": prof.sample.model_copy(update=update)})


def _write(path: Path, x: Tensor, seeds: list[int], nfe: int, prof: Profile, ref: Any) -> None:
    import io

    import numpy as np

    from pfgmctl.engine.grid import samples_picture, save_png
    from pfgmctl.engine.rundir import atomic_write_bytes

    text = profile_to_toml(prof)
    if path.suffix.lower() == ".npz":
        buf = io.BytesIO()
        np.savez(
            buf,
            samples=x.numpy(),
            seeds=np.asarray(seeds, dtype=np.int64),
            nfe=np.asarray(nfe),
            profile=np.asarray(text),
        )
        atomic_write_bytes(path, buf.getvalue())
        return
    meta = {
        "seeds": _seed_text(seeds),
        "nfe": str(nfe),
        "solver": prof.sample.solver,
        "steps": str(prof.sample.steps),
        "profile": text,
    }
    try:
        picture = samples_picture(x, ref=ref)
    except ValueError as err:
        raise UsageError(
            f"--out {path}: cannot draw samples of shape {tuple(x.shape[1:])} "
            f"as a picture ({err}); use a .npz output"
        ) from None
    save_png(picture, path, meta)


def _seed_text(seeds: list[int]) -> str:
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    return f"{seeds[0]}-{seeds[-1]}" if contiguous else ",".join(map(str, seeds))


@app.command(rich_help_panel="Generation")
def sample(
    run: Annotated[
        Path | None, typer.Option(help="Run directory (default: the newest run).")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="An ema-*.safetensors or state-*.pt file.")
    ] = None,
    exact: Annotated[
        str | None,
        typer.Option(help="Sample the exact empirical field of DATA (array file or toy name)."),
    ] = None,
    profile: ProfileOpt = None,
    n: Annotated[int | None, typer.Option("-n", help="Number of samples (default 64).")] = None,
    seed: Annotated[
        int | None, typer.Option(help="First seed: seeds S..S+n-1 (default 0).")
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="Seed list, e.g. 0-63,100.")] = None,
    steps: Annotated[int | None, typer.Option(help="Solver steps (default: profile).")] = None,
    solver: Annotated[
        str | None, typer.Option(help="euler | heun | rk45 | any torchdiffeq method.")
    ] = None,
    rtol: Annotated[float | None, typer.Option(help="Adaptive solver rtol.")] = None,
    atol: Annotated[float | None, typer.Option(help="Adaptive solver atol.")] = None,
    batch: Annotated[int | None, typer.Option(help="Samples per solver batch.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output .png or .npz.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing --out.")] = False,
    set_: SetOpt = None,
    device: Annotated[Device, typer.Option(help="Device to sample on.")] = Device.auto,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON result on stdout.")
    ] = False,
    latents: Annotated[
        Path | None,
        typer.Option(help="Decode the latents of an `encode` .npz instead of prior draws."),
    ] = None,
) -> None:
    """Generate samples by integrating the backward ODE from the prior (or given --latents)."""
    from pfgmctl.cli.render import SampleRenderer
    from pfgmctl.engine.build import build_method, pick_device
    from pfgmctl.engine.preview import sample_with_events
    from pfgmctl.engine.rundir import FanoutSink, NullSink, RunSink

    if sum(x is not None for x in (run, checkpoint, exact)) > 1:
        raise UsageError("use only one of --run, --checkpoint and --exact")
    if profile is not None and exact is None:
        raise UsageError("--profile only goes with --exact (a trained model carries its profile)")
    if latents is not None and (n, seed, seeds) != (None, None, None):
        raise UsageError("--latents fixes the samples; drop -n/--seed/--seeds")
    seed_list = seeds_from_options(n, seed, seeds)
    overrides = tuple(set_ or ())
    if out is not None:
        check_output(out, force, (".png", ".npz"))
    if exact is not None:
        prof, (model, shape, ref) = exact_source(exact, profile, overrides)
        run_dir = None
    else:
        prof, (model, shape, ref), run_dir = trained_source(run, checkpoint, overrides)
    prof = _with_sampling(prof, solver, steps, rtol, atol, batch)
    x_init = _read_latents(latents, prof, model, shape) if latents is not None else None
    if x_init is not None:
        seed_list = list(range(len(x_init)))
    dev = pick_device(device.value)
    job = _job_name(run_dir)
    if out is None:
        folder = run_dir / "samples" if run_dir is not None else Path.cwd()
        out = free_path(folder, job if run_dir is not None else "samples", ".png")
    sink = RunSink(run_dir) if run_dir is not None else NullSink()
    t0 = time.perf_counter()
    with SampleRenderer(err_console, quiet=json_out) as renderer:
        result = (
            _decode(x_init, build_method(prof), model.to(dev), prof, dev)
            if x_init is not None
            else sample_with_events(
                build_method(prof),
                model.to(dev),
                prof.sample,
                seeds=seed_list,
                shape=shape,
                device=dev,
                sink=FanoutSink(sink, renderer),
                job=job,
                path=str(out),
            )
        )
    _write(out, result.x, seed_list, result.nfe, prof, ref)
    info = {
        "path": str(out),
        "n": len(seed_list),
        "shape": list(result.x.shape[1:]),
        "nfe": result.nfe,
        "solver": prof.sample.solver,
        "steps": prof.sample.steps,
        "seconds": time.perf_counter() - t0,
        "prior_clipped": result.prior_clipped,
    }
    if json_out:
        emit_json(info)
    else:
        err_console.print(
            f"wrote {out}: {len(seed_list)} samples, NFE {result.nfe}, "
            f"{info['seconds']:.2f} s" + _clip_note(result.prior_clipped),
            highlight=False,
        )


def _read_latents(path: Path, prof: Profile, model: Any, shape: tuple[int, ...]) -> Tensor:
    """Latents of an `encode` file, checked against this model (id and item shape)."""
    from pfgmctl.cli.encode import Source, model_fingerprint, read_latents

    src = Source(prof, model, tuple(shape), model_fingerprint(model, tuple(shape), prof), None)
    return read_latents(path, src)


def _decode(x_init: Tensor, method: Any, model: Any, prof: Profile, dev: Any) -> Any:
    """Integrate from given latents at grid[0] with the profile's sampler (final step included)."""
    from pfgmctl.sampling import sample_with

    seeds, shape = list(range(len(x_init))), tuple(x_init.shape[1:])
    return sample_with(
        method, model, prof.sample, seeds=seeds, shape=shape, device=dev, x_init=x_init
    )


def _clip_note(share: float) -> str:
    return f", prior clipped {share:.0%}" if share > 0 else ""


def _job_name(run_dir: Path | None) -> str:
    if run_dir is None:
        return "sample"
    return free_path(run_dir / "samples", "sample", ".png").stem
