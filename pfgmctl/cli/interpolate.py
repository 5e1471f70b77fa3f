"""`pfgmctl interpolate`: latent interpolation and latent-norm (temperature) sweeps (pfgm.md §7)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import check_output, emit_json, parse_seeds
from pfgmctl.cli.encode import (
    CheckpointOpt,
    DataOpt,
    ExactOpt,
    JsonOpt,
    RunOpt,
    Source,
    flow_settings,
    load_rows,
    load_source,
)
from pfgmctl.cli.train import Device, ProfileOpt, SetOpt
from pfgmctl.errors import UsageError

if TYPE_CHECKING:
    from PIL import Image
    from torch import Tensor

MODES = ("slerp", "linear", "temperature")


def _endpoints(
    src: Source, method: Any, seeds: str | None, rows: str | None, data: str, cfg: Any, dev: Any
) -> Tensor:
    """Latents [P, ...]: prior draws of --seeds, or --rows of --data encoded by the forward ODE."""
    from pfgmctl.latent import encode
    from pfgmctl.sampling import prior_for_seeds

    if seeds is not None and rows is not None:
        raise UsageError("use --seeds or --rows, not both")
    if rows is None:
        seed_list = parse_seeds(seeds if seeds is not None else "0,1")
        return prior_for_seeds(method, seed_list, src.item_shape, dev)[0]
    idx = parse_seeds(rows)
    x = load_rows(src, data, None).x
    if max(idx) >= len(x):
        raise UsageError(f"--rows {rows}: --data {data} has only {len(x)} rows")
    return encode(method, src.model, x[idx].to(dev), cfg).x


def _paths(z: Tensor, mode: str, k: int, lo: float, hi: float) -> Tensor:
    """[P, K, ...] latents: consecutive pairs interpolated, or each latent's norm scaled."""
    import torch

    from pfgmctl.latent import interpolate, scale_norms

    if mode == "temperature":
        factors = torch.linspace(lo, hi, k, dtype=torch.float64)
        return torch.stack([scale_norms(zi, factors) for zi in z])
    if len(z) % 2:
        raise UsageError(f"--mode {mode} needs pairs of inputs (got {len(z)}); give an even count")
    return torch.stack([interpolate(z[i], z[i + 1], k, mode) for i in range(0, len(z), 2)])


def _picture(x: Tensor, k: int, ref: Tensor | None) -> Image.Image:
    """Image rows (one per path) or a 2-D scatter of every path point."""
    from PIL import Image

    from pfgmctl.engine.grid import image_grid, samples_picture

    if x.ndim == 4 and x.shape[1] in (1, 3):
        grid = image_grid(x, nrow=k)
        f = max(1, 48 // max(x.shape[2], 1))
        return grid.resize((grid.width * f, grid.height * f), Image.Resampling.NEAREST)
    try:
        return samples_picture(x.reshape(len(x), -1), ref=ref)
    except ValueError as err:
        raise UsageError(f"cannot draw items of shape {tuple(x.shape[1:])} ({err})") from None


def _decode(src: Source, method: Any, z: Tensor, cfg: Any, dev: Any) -> Any:
    """The sampler from given latents at grid[0] (final denoising step included)."""
    from pfgmctl.sampling import sample_with

    seeds = list(range(len(z)))
    return sample_with(
        method, src.model, cfg, seeds=seeds, shape=src.item_shape, device=dev, x_init=z
    )


def _reference(src: Source) -> Tensor | None:
    """Training rows to draw under 2-D paths (the exact model's data, else the profile's data)."""
    from pfgmctl.data import build_dataset
    from pfgmctl.errors import PfgmctlError

    if src.exact_data is not None:
        return src.exact_data
    try:
        return build_dataset(src.profile.data).train[:4000]
    except PfgmctlError:
        return None  # the training data is not at hand: draw the paths alone


def _gif(path: Path, x: Tensor, p: int, k: int, ref: Tensor | None) -> None:
    """Animated GIF: frame j shows point j of every path (Pillow merges identical frames)."""
    import io

    from pfgmctl.engine.rundir import atomic_write_bytes

    paths = x.reshape(p, k, *x.shape[1:])
    frames = []
    for j in range(k):
        frames.append(_picture(paths[:, j], p, ref).convert("P"))
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    atomic_write_bytes(path, buf.getvalue())


@app.command(rich_help_panel="Generation")
def interpolate(
    out: Annotated[Path, typer.Option(help="Output PNG grid.")] = Path("interpolation.png"),
    mode: Annotated[str, typer.Option(help="slerp | linear | temperature.")] = "slerp",
    k: Annotated[int, typer.Option("-k", help="Points per path.")] = 10,
    seeds: Annotated[
        str | None, typer.Option(help="Prior seeds, taken in pairs (default 0,1).")
    ] = None,
    rows: Annotated[str | None, typer.Option(help="Rows of --data to encode, e.g. 3,17.")] = None,
    data: DataOpt = "holdout",
    scale_min: Annotated[float, typer.Option(help="temperature: first norm factor.")] = 0.6,
    scale_max: Annotated[float, typer.Option(help="temperature: last norm factor.")] = 1.4,
    gif: Annotated[Path | None, typer.Option(help="Also write an animated GIF.")] = None,
    run: RunOpt = None,
    checkpoint: CheckpointOpt = None,
    exact: ExactOpt = None,
    profile: ProfileOpt = None,
    solver: Annotated[str | None, typer.Option(help="Solver (default: profile).")] = None,
    steps: Annotated[int | None, typer.Option(help="Steps (default: profile).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing outputs.")] = False,
    set_: SetOpt = None,
    device: Annotated[Device, typer.Option(help="Device to run on.")] = Device.auto,
    json_out: JsonOpt = False,
) -> None:
    """Decode latent interpolations (slerp/linear) or latent-norm sweeps to a PNG grid."""
    from pfgmctl.engine.build import build_method, pick_device
    from pfgmctl.engine.grid import save_png

    if mode not in MODES:
        raise UsageError(f"--mode {mode!r}: choose from {', '.join(MODES)}")
    if k < 2:
        raise UsageError(f"-k must be at least 2 (got {k})")
    if mode == "temperature" and not 0 < scale_min <= scale_max:
        raise UsageError("--scale-min/--scale-max: need 0 < scale-min ≤ scale-max")
    check_output(out, force, (".png",))
    if gif is not None:
        check_output(gif, force, (".gif",))
    src = load_source(run, checkpoint, exact, profile, tuple(set_ or ()))
    sc = src.profile.sample
    cfg = flow_settings(
        solver if solver is not None else sc.solver,
        steps if steps is not None else sc.steps,
        sc.rtol,
        sc.atol,
        sc.batch,
    )
    dev = pick_device(device.value)
    method, t0 = build_method(src.profile), time.perf_counter()
    src = Source(src.profile, src.model.to(dev), src.item_shape, src.model_id, src.exact_data)
    z = _paths(_endpoints(src, method, seeds, rows, data, cfg, dev), mode, k, scale_min, scale_max)
    p = len(z)
    flat = z.reshape(p * k, *src.item_shape)
    res = _decode(src, method, flat, cfg, dev)
    ref = _reference(src) if res.x.ndim == 2 else None
    save_png(_picture(res.x, k, ref), out, {"mode": mode, "k": str(k), "model_id": src.model_id})
    if gif is not None:
        _gif(gif, res.x, p, k, ref)
    info: dict[str, Any] = {
        "path": str(out),
        "gif": str(gif) if gif else None,
        "mode": mode,
        "paths": p,
        "k": k,
    }
    info.update(nfe=res.nfe, seconds=time.perf_counter() - t0)
    if json_out:
        emit_json(info)
    else:
        err_console.print(f"wrote {out}: {p} paths × {k} points, NFE {res.nfe}", highlight=False)
