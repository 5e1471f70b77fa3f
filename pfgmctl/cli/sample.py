"""`pfgmctl sample`: draw samples from a run, a checkpoint, or the exact field of a data set."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pfgmctl import __version__
from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import check_output, emit_json, free_path, runs_dir, seeds_from_options
from pfgmctl.cli.train import Device, ProfileOpt, SetOpt
from pfgmctl.config.load import load_profile, profile_to_toml
from pfgmctl.config.schema import ArrayData, Profile, ToyData
from pfgmctl.engine.rundir import newest_run
from pfgmctl.errors import UsageError

if TYPE_CHECKING:
    from torch import Tensor

    from pfgmctl.engine.distill import DistilledGenerator, DistilledModel
    from pfgmctl.engine.inference import Loaded


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
    loaded, run_dir = trained_loaded(run, checkpoint, overrides)
    return loaded.profile, (loaded.model, loaded.item_shape, None), run_dir


def trained_loaded(
    run: Path | None,
    checkpoint: Path | None,
    overrides: tuple[str, ...],
    *,
    allow_distilled: bool = False,
) -> tuple[Loaded | DistilledModel, Path | None]:
    """The loaded checkpoint of --checkpoint FILE or of --run DIR (default: the newest run).

    An IPFM generator (a `pfgmctl distill` run) has no ODE: only `sample` takes one
    (`allow_distilled`); every other command gets a one-line usage error.
    """
    from pfgmctl.engine.distill import is_distilled, load_distilled
    from pfgmctl.engine.inference import latest_checkpoint, load_checkpoint

    source = checkpoint if checkpoint is not None else run
    if source is not None and source.exists() and is_distilled(source):
        if not allow_distilled:
            raise UsageError(
                f"{source} is a distilled generator (pfgmctl distill): it has no ODE to "
                "integrate; use its teacher run here, or 'pfgmctl sample' with it"
            )
        return load_distilled(source, overrides), (run if checkpoint is None else None)
    if checkpoint is not None:
        return load_checkpoint(checkpoint, overrides), None
    if run is None:
        run = newest_run(runs_dir(None))
        if run is None:
            raise UsageError(
                f"no runs under {runs_dir(None)}; train one with 'pfgmctl train', "
                "or pass --run DIR, --checkpoint FILE or --exact DATA"
            )
    if not run.is_dir():
        raise UsageError(f"--run {run}: no such run directory")
    if is_distilled(run):
        return trained_loaded(run, None, overrides, allow_distilled=allow_distilled)
    return load_checkpoint(latest_checkpoint(run, "ema"), overrides), run


def _generator_sampling(
    prof: Profile,
    model: DistilledGenerator,
    solver: str | None,
    steps: int | None,
    rtol: float | None,
    atol: float | None,
    latents: Path | None,
) -> Profile:
    """A distilled generator samples in K = --steps evaluations (default: the K it was trained for)."""
    if solver is not None or rtol is not None or atol is not None or latents is not None:
        raise UsageError(
            "a distilled generator takes no --solver/--rtol/--atol/--latents; "
            "--steps K sets its number of evaluations"
        )
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be at least 1 (got {steps})")
    k = steps if steps is not None else model.steps
    return prof.model_copy(
        update={"sample": prof.sample.model_copy(update={"solver": "generator", "steps": k})}
    )


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


@dataclass(frozen=True)
class Origin:
    """Where samples come from, for PNG text chunks and the manifest."""

    profile: str
    checkpoint: str  # a checkpoint path, or "exact:<data>"
    step: int | None
    num_classes: int = 0
    class_names: tuple[str, ...] = ()

    def class_label(self, k: int) -> str:
        """`3` or `3 (cat)` when the class has a name that is not its index."""
        name = self.class_names[k] if k < len(self.class_names) else str(k)
        return str(k) if name == str(k) else f"{k} ({name})"


@dataclass(frozen=True)
class Written:
    """What a sampling call produced: the samples, their seeds, labels and NFE."""

    x: Tensor
    seeds: list[int]
    labels: list[int] | None
    classes: list[int] | None
    nfe: int


def parse_classes(specs: list[str], num_classes: int, class_names: tuple[str, ...]) -> list[int]:
    """`--class` values → class indices: names from the checkpoint, `3`, or ranges like `0-9`.

    Each value may be a comma list. A value equal to a class name is that class (names win over
    indices, so folder classes named "1", "2" are addressed by name). Order is kept, repeats dropped.
    """
    out: list[int] = []
    for spec in specs:
        for part in (p.strip() for p in spec.split(",")):
            for k in _class_part(part, spec, class_names):
                if not 0 <= k < num_classes:
                    raise UsageError(
                        f"--class {spec}: class {k} is out of range; this model has classes "
                        f"0-{num_classes - 1}{_names_hint(class_names)}"
                    )
                if k not in out:
                    out.append(k)
    return out


def _class_part(part: str, spec: str, class_names: tuple[str, ...]) -> list[int]:
    """One comma-separated item of a --class value: a name, `K` or `A-B`."""
    if part in class_names:
        return [class_names.index(part)]
    m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
    if m is None:
        raise UsageError(
            f"--class {spec}: {part!r} is not a class index, range (0-9) or class name"
            f"{_names_hint(class_names)}"
        )
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if hi < lo:
        raise UsageError(f"--class {spec}: range {lo}-{hi} is empty")
    return list(range(lo, hi + 1))


def _names_hint(class_names: tuple[str, ...]) -> str:
    if not class_names or class_names == tuple(str(i) for i in range(len(class_names))):
        return ""
    shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
    return f" (names: {shown})"


def labels_for_seeds(seeds: list[int], classes: list[int]) -> list[int]:
    """The class of seed s is classes[s mod len(classes)]: a property of the seed, not its slot."""
    return [classes[s % len(classes)] for s in seeds]


def _resolve_classes(
    class_: list[str] | None, origin: Origin, exact: str | None
) -> list[int] | None:
    """Classes to sample (None: unconditional); all classes when --class is omitted."""
    if class_ and exact is not None:
        raise UsageError("--class does not work with --exact (the exact field has no classes)")
    if origin.num_classes == 0:
        if class_:
            raise UsageError(
                f"--class: the model of {origin.checkpoint} is unconditional; train with "
                "[data] conditional = true to sample by class"
            )
        return None
    if not class_:
        return list(range(origin.num_classes))
    return parse_classes(class_, origin.num_classes, origin.class_names)


# ---------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------


def _out_dir(out: str | None) -> Path | None:
    """The directory of `--out DIR/` (trailing slash, or an existing directory), else None."""
    if out is None:
        return None
    if out.endswith(("/", os.sep)) or Path(out).is_dir():
        return Path(out)
    return None


def image_files(folder: Path, seeds: list[int]) -> list[Path]:
    """`DIR/{seed:06d}.png` per seed, then the manifest `DIR/samples.json`."""
    return [folder / f"{s:06d}.png" for s in seeds] + [folder / "samples.json"]


def _check_dir_output(folder: Path, seeds: list[int], force: bool) -> None:
    """Refuse (before sampling) to overwrite any per-image file or the manifest without --force."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder}/: exists and is not a directory")
    if force:
        return
    taken = [p for p in image_files(folder, seeds) if p.exists()]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise UsageError(
            f"--out {folder}/: {taken[0].name}{more} already exists; pass --force to overwrite"
        )


def _check_image_shape(shape: tuple[int, ...], folder: Path) -> None:
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise UsageError(
            f"--out {folder}/: per-image PNGs need image samples [1|3, H, W], this model makes "
            f"{list(shape)}; use --out FILE.npz or FILE.png"
        )


def _meta(prof: Profile, origin: Origin, nfe: int) -> dict[str, str]:
    """PNG text chunks shared by the grid and per-image files."""
    meta = {
        "Software": f"pfgmctl {__version__}",
        "pfgmctl_version": __version__,
        "profile_name": origin.profile,
        "checkpoint": origin.checkpoint,
        "solver": prof.sample.solver,
        "steps": str(prof.sample.steps),
        "nfe": str(nfe),
    }
    if origin.step is not None:
        meta["step"] = str(origin.step)
    return meta


def _write(path: Path, w: Written, prof: Profile, ref: Any, origin: Origin) -> None:
    """A grid picture (.png) or arrays (.npz) of all samples."""
    import io

    import numpy as np
    import torch

    from pfgmctl.engine.grid import samples_picture, save_png
    from pfgmctl.engine.rundir import atomic_write_bytes

    text = profile_to_toml(prof)
    if path.suffix.lower() == ".npz":
        arrays: dict[str, Any] = {
            "samples": w.x.numpy(),
            "seeds": np.asarray(w.seeds, dtype=np.int64),
            "nfe": np.asarray(w.nfe),
            "profile": np.asarray(text),
        }
        if w.labels is not None:
            arrays["labels"] = np.asarray(w.labels, dtype=np.int64)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())
        return
    meta = {**_meta(prof, origin, w.nfe), "seeds": _seed_text(w.seeds), "profile": text}
    if w.classes is not None:
        meta["classes"] = ", ".join(origin.class_label(k) for k in w.classes)
    labels = torch.as_tensor(w.labels) if w.labels is not None else None
    try:
        picture = samples_picture(w.x, ref=ref, labels=labels, classes=w.classes)
    except ValueError as err:
        raise UsageError(
            f"--out {path}: cannot draw samples of shape {tuple(w.x.shape[1:])} "
            f"as a picture ({err}); use a .npz output"
        ) from None
    save_png(picture, path, meta)


def _write_dir(folder: Path, w: Written, prof: Profile, origin: Origin) -> None:
    """`DIR/{seed:06d}.png` per image (native resolution, own metadata) + `DIR/samples.json`."""
    from pfgmctl.engine.grid import image_png, save_png
    from pfgmctl.engine.rundir import atomic_write_text

    base = _meta(prof, origin, w.nfe)
    files = image_files(folder, w.seeds)
    entries = []
    for i, (seed, path) in enumerate(zip(w.seeds, files, strict=False)):
        meta = {**base, "seed": str(seed)}
        entry: dict[str, Any] = {"file": path.name, "seed": seed}
        if w.labels is not None:
            meta["class"] = origin.class_label(w.labels[i])
            entry["class"] = w.labels[i]
        save_png(image_png(w.x[i]), path, meta)
        entries.append(entry)
    manifest = {
        "pfgmctl_version": __version__,
        "profile": origin.profile,
        "checkpoint": origin.checkpoint,
        "step": origin.step,
        "solver": prof.sample.solver,
        "steps": prof.sample.steps,
        "nfe": w.nfe,
        "seeds": w.seeds,
        "classes": w.labels,
        "class_names": list(origin.class_names) if w.labels is not None else None,
        "images": entries,
    }
    atomic_write_text(files[-1], json.dumps(manifest, indent=1) + "\n")


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
    class_: Annotated[
        list[str] | None,
        typer.Option(
            "--class",
            help="Class-conditional models: class index, range or name, e.g. 3, 0-9, cat "
            "(repeatable). Seed s gets class number (s mod n) of the n values; default: all "
            "classes, cycled over the seeds (grid rows = classes).",
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Solver steps (default: profile).")] = None,
    solver: Annotated[
        str | None, typer.Option(help="euler | heun | rk45 | any torchdiffeq method.")
    ] = None,
    rtol: Annotated[float | None, typer.Option(help="Adaptive solver rtol.")] = None,
    atol: Annotated[float | None, typer.Option(help="Adaptive solver atol.")] = None,
    batch: Annotated[int | None, typer.Option(help="Samples per solver batch.")] = None,
    out: Annotated[
        str | None,
        typer.Option(
            help="Output: FILE.png (grid), FILE.npz (arrays), or DIR/ (one DIR/{seed:06d}.png "
            "per image + DIR/samples.json)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing outputs.")] = False,
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
    """Generate samples by integrating the backward ODE from the prior (or given --latents).

    Conditional models: seed s gets class number (s mod n) of the n --class values (default: all).

    A grid .png of a conditional model has one row per class.

    --out DIR/ writes DIR/{seed:06d}.png per image and DIR/samples.json.

    PNG text chunks record version, profile, checkpoint, step, seeds, class, solver and NFE.
    """
    from pfgmctl.cli.render import SampleRenderer
    from pfgmctl.engine.build import build_method, pick_device
    from pfgmctl.engine.distill import DistilledGenerator, sample_distilled_with_events
    from pfgmctl.engine.preview import sample_with_events
    from pfgmctl.engine.rundir import FanoutSink, NullSink, RunSink

    if sum(x is not None for x in (run, checkpoint, exact)) > 1:
        raise UsageError("use only one of --run, --checkpoint and --exact")
    if profile is not None and exact is None:
        raise UsageError("--profile only goes with --exact (a trained model carries its profile)")
    if latents is not None and (n, seed, seeds) != (None, None, None):
        raise UsageError("--latents fixes the samples; drop -n/--seed/--seeds")
    if class_ and exact is not None:
        raise UsageError("--class does not work with --exact (the exact field has no classes)")
    seed_list = seeds_from_options(n, seed, seeds)
    overrides = tuple(set_ or ())
    folder = _out_dir(out)
    out_file = None if out is None or folder is not None else Path(out)
    if out_file is not None:
        if not out_file.suffix:
            raise UsageError(
                f"--out {out}: give FILE.png (grid), FILE.npz (arrays) or DIR/ with a trailing "
                "slash (one PNG per image)"
            )
        check_output(out_file, force, (".png", ".npz"))
    if exact is not None:
        prof, (model, shape, ref) = exact_source(exact, profile, overrides)
        run_dir, origin = None, Origin(prof.name, f"exact:{exact}", None)
    else:
        loaded, run_dir = trained_loaded(run, checkpoint, overrides, allow_distilled=True)
        prof, model, shape, ref = loaded.profile, loaded.model, loaded.item_shape, None
        origin = Origin(
            prof.name, str(loaded.source), loaded.step, loaded.num_classes, loaded.class_names
        )
    classes = _resolve_classes(class_, origin, exact)
    distilled = isinstance(model, DistilledGenerator)
    if distilled:
        prof = _generator_sampling(prof, model, solver, steps, rtol, atol, latents)
    else:
        prof = _with_sampling(prof, solver, steps, rtol, atol, batch)
    x_init = _read_latents(latents, prof, model, shape) if latents is not None else None
    if x_init is not None:
        seed_list = list(range(len(x_init)))
    if folder is not None:
        _check_image_shape(tuple(shape), folder)
        _check_dir_output(folder, seed_list, force)
    labels = labels_for_seeds(seed_list, classes) if classes is not None else None
    dev = pick_device(device.value)
    job = _job_name(run_dir)
    if out_file is None and folder is None:
        where = run_dir / "samples" if run_dir is not None else Path.cwd()
        out_file = free_path(where, job if run_dir is not None else "samples", ".png")
    target = str(folder) + "/" if folder is not None else str(out_file)
    sink = RunSink(run_dir) if run_dir is not None else NullSink()
    with interruptible(target):
        t0 = time.perf_counter()
        with SampleRenderer(err_console, quiet=json_out) as renderer:
            label_t = _label_tensor(labels)
            result = (
                _decode(x_init, build_method(prof), model.to(dev), prof, dev, label_t)
                if x_init is not None
                else sample_distilled_with_events(
                    model,
                    seeds=seed_list,
                    device=dev,
                    sink=FanoutSink(sink, renderer),
                    job=job,
                    path=target,
                    steps=prof.sample.steps,
                    labels=label_t,
                    batch=batch or prof.sample.batch,
                )
                if distilled
                else sample_with_events(
                    build_method(prof),
                    model.to(dev),
                    prof.sample,
                    seeds=seed_list,
                    shape=shape,
                    device=dev,
                    sink=FanoutSink(sink, renderer),
                    job=job,
                    path=target,
                    labels=label_t,
                )
            )
        written = Written(result.x, seed_list, labels, classes, result.nfe)
        if folder is not None:
            _write_dir(folder, written, prof, origin)
        else:
            assert out_file is not None
            _write(out_file, written, prof, ref, origin)
    info: dict[str, Any] = {
        "path": target,
        "n": len(seed_list),
        "shape": list(result.x.shape[1:]),
        "nfe": result.nfe,
        "solver": prof.sample.solver,
        "steps": prof.sample.steps,
        "seconds": time.perf_counter() - t0,
        "prior_clipped": result.prior_clipped,
    }
    if classes is not None:
        info["classes"] = classes
    if json_out:
        emit_json(info)
    else:
        err_console.print(
            f"wrote {target}: {len(seed_list)} samples, NFE {result.nfe}, "
            f"{info['seconds']:.2f} s" + _clip_note(result.prior_clipped),
            highlight=False,
        )


@contextmanager
def interruptible(target: str) -> Iterator[None]:
    """Ctrl-C / SIGTERM while sampling: one line, exit 130 / 143, no partial output.

    Outputs are written atomically (temp file + rename), so an interrupted write leaves the old
    file (or none) in place.
    """
    from pfgmctl.engine.faults import Terminated, sigterm_raises

    try:
        with sigterm_raises():
            yield
    except KeyboardInterrupt as exc:
        sig = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        err_console.print(f"interrupted ({sig}): {target} not written", highlight=False)
        raise typer.Exit(143 if sig == "SIGTERM" else 130) from None


def _label_tensor(labels: list[int] | None) -> Tensor | None:
    import torch

    return None if labels is None else torch.as_tensor(labels, dtype=torch.int64)


def _read_latents(path: Path, prof: Profile, model: Any, shape: tuple[int, ...]) -> Tensor:
    """Latents of an `encode` file, checked against this model (id and item shape)."""
    from pfgmctl.cli.encode import Source, model_fingerprint, read_latents

    src = Source(prof, model, tuple(shape), model_fingerprint(model, tuple(shape), prof), None)
    return read_latents(path, src)


def _decode(
    x_init: Tensor, method: Any, model: Any, prof: Profile, dev: Any, labels: Tensor | None
) -> Any:
    """Integrate from given latents at grid[0] with the profile's sampler (final step included)."""
    from pfgmctl.sampling import sample_with

    seeds, shape = list(range(len(x_init))), tuple(x_init.shape[1:])
    return sample_with(
        method,
        model,
        prof.sample,
        seeds=seeds,
        shape=shape,
        device=dev,
        x_init=x_init,
        labels=labels,
    )


def _clip_note(share: float) -> str:
    return f", prior clipped {share:.0%}" if share > 0 else ""


def _job_name(run_dir: Path | None) -> str:
    if run_dir is None:
        return "sample"
    return free_path(run_dir / "samples", "sample", ".png").stem
