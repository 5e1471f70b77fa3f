"""`pfgmctl encode`: data → latents by the forward ODE; plus the model/data/latents helpers that
`likelihood`, `interpolate` and `sample --latents` share."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import check_output, emit_json
from pfgmctl.cli.train import Device, ProfileOpt, SetOpt
from pfgmctl.config.schema import Profile
from pfgmctl.errors import DataError, UsageError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from pfgmctl.latent import FlowSettings

DIGITS_BIN = 1.0 / 8.0
"""Digits pixels k ∈ 0..16 map to k/8 − 1: one intensity level is 1/8 wide (offset log2 8 = 3 bits)."""

RunOpt = Annotated[Path | None, typer.Option(help="Run directory (default: the newest run).")]
CheckpointOpt = Annotated[
    Path | None, typer.Option(help="An ema-*.safetensors or state-*.pt file.")
]
ExactOpt = Annotated[
    str | None, typer.Option(help="Use the exact field of DATA (array file or toy name).")
]
DataOpt = Annotated[
    str,
    typer.Option(help="train | holdout (the model's data split) | an .npy/.npz array file."),
]
RowsOpt = Annotated[int | None, typer.Option("-n", help="Use only the first N rows.")]
SolverOpt = Annotated[str, typer.Option(help="rk45/dopri5, euler, heun or a torchdiffeq method.")]
RtolOpt = Annotated[float, typer.Option(help="Adaptive solver rtol.")]
AtolOpt = Annotated[float, typer.Option(help="Adaptive solver atol.")]
StepsOpt = Annotated[int, typer.Option(help="Steps for fixed-step solvers.")]
BatchOpt = Annotated[int, typer.Option(help="Rows per solver batch.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON result on stdout.")]


@dataclass(frozen=True)
class Source:
    """A model with its (resolved) profile, item shape, identity and exact-model data if any."""

    profile: Profile
    model: Any
    item_shape: tuple[int, ...]
    model_id: str
    exact_data: Any


@dataclass(frozen=True)
class Rows:
    """Rows in model coordinates, N·ln|scale| (own → model), and the level width in own units."""

    x: Any
    log_jac: float
    bin_width: float | None
    name: str


def load_source(
    run: Path | None,
    checkpoint: Path | None,
    exact: str | None,
    profile: str | None,
    overrides: tuple[str, ...],
) -> Source:
    """Resolve --run / --checkpoint / --exact (+ --profile) into a model, as `sample` does."""
    from pfgmctl.cli.sample import exact_source, trained_source

    if sum(x is not None for x in (run, checkpoint, exact)) > 1:
        raise UsageError("use only one of --run, --checkpoint and --exact")
    if profile is not None and exact is None:
        raise UsageError("--profile only goes with --exact (a trained model carries its profile)")
    if exact is not None:
        prof, (model, shape, data) = exact_source(exact, profile, overrides)
    else:
        prof, (model, shape, data), _ = trained_source(run, checkpoint, overrides)
    return Source(prof, model, tuple(shape), model_fingerprint(model, shape, prof), data)


def model_fingerprint(model: nn.Module, shape: tuple[int, ...], prof: Profile) -> str:
    """sha256 (16 hex) of the weights/buffers, the item shape and the method settings."""
    import hashlib

    h = hashlib.sha256(json.dumps([list(shape), prof.method.model_dump()]).encode())
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_rows(src: Source, data: str, n: int | None, key: str | None = None) -> Rows:
    """The rows named by --data, checked against the model's item shape."""
    from pfgmctl.data import build_dataset, load_array

    cfg = src.profile.data
    if data in ("train", "holdout"):
        ds = build_dataset(cfg)
        x = ds.train if data == "train" else ds.holdout
        if x.shape[0] == 0:
            raise DataError(f"--data {data}: the profile's data has no held-out rows; use train")
        bin_width = DIGITS_BIN * abs(cfg.scale) if cfg.kind == "digits" else None
        rows = Rows(x, 0.0, bin_width, f"{ds.name}:{data}")
    elif Path(data).suffix.lower() in (".npy", ".npz"):
        x = load_array(data, key)
        scale = cfg.scale if cfg.kind == "array" else 1.0
        shift = cfg.shift if cfg.kind == "array" else 0.0
        if scale == 0:
            raise UsageError(
                f"--data {data}: the profile's [data] scale is 0; set a non-zero scale"
            )
        rows = Rows(x * scale + shift, math.prod(x.shape[1:]) * math.log(abs(scale)), None, data)
    else:
        raise UsageError(f"--data {data}: expected train, holdout or an .npy/.npz file")
    if tuple(rows.x.shape[1:]) != src.item_shape:
        raise DataError(
            f"--data {data}: rows of shape {tuple(rows.x.shape[1:])}, but the model takes "
            f"{src.item_shape}; pass data of the model's shape"
        )
    if n is not None:
        if n < 1:
            raise UsageError(f"-n must be at least 1 (got {n})")
        rows = Rows(rows.x[:n], rows.log_jac, rows.bin_width, rows.name)
    return rows


def flow_settings(solver: str, steps: int, rtol: float, atol: float, batch: int) -> FlowSettings:
    """Validated solver options."""
    from pfgmctl.latent import FlowSettings
    from pfgmctl.solvers import canonical

    try:
        canonical(solver)
    except ValueError as err:
        raise UsageError(f"--solver: {err}") from None
    for name, value in (("steps", steps), ("batch", batch)):
        if value < 1:
            raise UsageError(f"--{name} must be at least 1 (got {value})")
    for name, fvalue in (("rtol", rtol), ("atol", atol)):
        if not fvalue > 0:
            raise UsageError(f"--{name} must be > 0 (got {fvalue})")
    return FlowSettings(solver=solver, steps=steps, rtol=rtol, atol=atol, batch=batch)


def write_npz(path: Path, **arrays: Any) -> None:
    """Atomic .npz write."""
    import io

    import numpy as np

    from pfgmctl.engine.rundir import atomic_write_bytes

    buf = io.BytesIO()
    named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez(buf, **named)
    atomic_write_bytes(path, buf.getvalue())


def read_latents(path: Path, src: Source) -> Tensor:
    """Latents of an `encode` .npz, refused when another model or another shape made them."""
    import numpy as np
    import torch

    if not path.is_file():
        raise UsageError(f"--latents {path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            z, mid = f["latents"], str(f["model_id"]) if "model_id" in f.files else None
    except (KeyError, ValueError, OSError, EOFError) as err:
        raise UsageError(f"--latents {path}: not a pfgmctl latents file ({err})") from None
    if mid is not None and mid != src.model_id:
        raise UsageError(
            f"--latents {path} were encoded by another model (id {mid}, this one is "
            f"{src.model_id}); decode them with the model and --set overrides that encoded them"
        )
    if z.ndim < 2 or tuple(z.shape[1:]) != src.item_shape:
        raise UsageError(
            f"--latents {path}: latents of shape {tuple(z.shape[1:])}, the model takes "
            f"{src.item_shape}"
        )
    try:
        out = np.asarray(z, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise UsageError(f"--latents {path}: not numeric latents ({err})") from None
    if len(out) == 0:
        raise UsageError(f"--latents {path}: holds no latents; encode some rows first")
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).reshape(len(out), -1).any(1).sum())
        raise UsageError(
            f"--latents {path}: {bad} of {len(out)} latents hold NaN/inf; "
            "re-encode them (pfgmctl encode) with a finite model and data"
        )
    return torch.from_numpy(out)


@app.command(rich_help_panel="Generation")
def encode(
    data: DataOpt = "holdout",
    out: Annotated[Path, typer.Option(help="Output latents .npz.")] = Path("latents.npz"),
    run: RunOpt = None,
    checkpoint: CheckpointOpt = None,
    exact: ExactOpt = None,
    profile: ProfileOpt = None,
    n: RowsOpt = None,
    solver: SolverOpt = "dopri5",
    rtol: RtolOpt = 1e-5,
    atol: AtolOpt = 1e-5,
    steps: StepsOpt = 100,
    batch: BatchOpt = 256,
    check: Annotated[bool, typer.Option(help="Decode again and report the round trip.")] = True,
    force: Annotated[bool, typer.Option(help="Overwrite an existing --out.")] = False,
    set_: SetOpt = None,
    device: Annotated[Device, typer.Option(help="Device to run on.")] = Device.auto,
    json_out: JsonOpt = False,
) -> None:
    """Encode data into latents by the forward probability-flow ODE (σ_min → σ_max, z_min → z_max)."""
    from pfgmctl.config.load import profile_to_toml
    from pfgmctl.engine.build import build_method, pick_device
    from pfgmctl.latent import decode, encode, evaluated_at, relative_error

    check_output(out, force, (".npz",))
    cfg = flow_settings(solver, steps, rtol, atol, batch)
    src = load_source(run, checkpoint, exact, profile, tuple(set_ or ()))
    rows = load_rows(src, data, n)
    dev = pick_device(device.value)
    method, model = build_method(src.profile), src.model.to(dev)
    t0 = time.perf_counter()
    x = rows.x.to(dev)
    flow = encode(method, model, x, cfg)
    info: dict[str, Any] = {
        "path": str(out),
        "data": rows.name,
        "n": len(x),
        "shape": list(src.item_shape),
        "model_id": src.model_id,
        "solver": cfg.solver,
        "rtol": cfg.rtol,
        "atol": cfg.atol,
        "steps": cfg.steps,
        "nfe": flow.nfe,
        "data_at": evaluated_at(method),
    }
    err = None
    if check:
        err = relative_error(decode(method, model, flow.x, cfg).x, x).cpu()
        info["round_trip_rel_error"] = {"mean": float(err.mean()), "max": float(err.max())}
    info["seconds"] = time.perf_counter() - t0
    arrays: dict[str, Any] = {"latents": flow.x.cpu().numpy(), "data": rows.x.cpu().numpy()}
    if err is not None:
        arrays["round_trip_rel_error"] = err.numpy()
    write_npz(
        out,
        **arrays,
        model_id=src.model_id,
        settings=json.dumps(info),
        profile=profile_to_toml(src.profile),
    )
    _report(info, json_out)


def _report(info: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(info)
        return
    rt = info.get("round_trip_rel_error")
    note = f", round-trip rel. error mean {rt['mean']:.2e} max {rt['max']:.2e}" if rt else ""
    err_console.print(
        f"wrote {info['path']}: {info['n']} latents, NFE {info['nfe']}{note}", highlight=False
    )
