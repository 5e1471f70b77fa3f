"""`pfgmctl likelihood`: NLL and bits/dim by the instantaneous change of variables (pfgm.md §6)."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import check_output, emit_json
from pfgmctl.cli.encode import (
    AtolOpt,
    BatchOpt,
    CheckpointOpt,
    DataOpt,
    ExactOpt,
    JsonOpt,
    Rows,
    RowsOpt,
    RtolOpt,
    RunOpt,
    SolverOpt,
    StepsOpt,
    flow_settings,
    load_rows,
    load_source,
    write_npz,
)
from pfgmctl.cli.train import Device, ProfileOpt, SetOpt
from pfgmctl.errors import UsageError


def bits_per_dim(log_prob: float, n_dim: int, bin_width: float | None) -> float:
    """−(log p + N·ln w)/(N ln 2): bits per dimension of the levels of width w (w = 1/128 → +7)."""
    offset = -math.log2(bin_width) if bin_width is not None else 0.0
    return -log_prob / (n_dim * math.log(2)) + offset


def summary(log_prob: Any, n_dim: int, bin_width: float | None) -> dict[str, float]:
    """Mean ± standard error of the NLL (nats per sample) and of bits/dim."""
    lp = log_prob.double()
    mean = float(lp.mean())
    se = float(lp.std() / math.sqrt(len(lp))) if len(lp) > 1 else float("nan")
    return {
        "nll_nats": -mean,
        "nll_se": se,
        "bits_per_dim": bits_per_dim(mean, n_dim, bin_width),
        "bits_per_dim_se": se / (n_dim * math.log(2)),
        "bits_per_dim_offset": -math.log2(bin_width) if bin_width is not None else 0.0,
    }


def _dequantize(rows: Rows, on: bool, seed: int) -> tuple[Any, bool]:
    """x + U[0, w) per entry in model units (levels at the bin's left edge, as the reference)."""
    import torch

    if not on:
        return rows.x, False
    if rows.bin_width is None:
        raise UsageError("--dequantize needs the level width: pass --bin-width W (data units)")
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(rows.x.shape, generator=gen, dtype=torch.float64)
    width_model = rows.bin_width * math.exp(rows.log_jac / math.prod(rows.x.shape[1:]))
    return rows.x.to(torch.float64) + width_model * u, True


@app.command(rich_help_panel="Evaluation")
def likelihood(
    data: DataOpt = "holdout",
    run: RunOpt = None,
    checkpoint: CheckpointOpt = None,
    exact: ExactOpt = None,
    profile: ProfileOpt = None,
    n: RowsOpt = None,
    out: Annotated[Path | None, typer.Option(help="Per-row log-densities .npz.")] = None,
    divergence: Annotated[str, typer.Option(help="auto | exact | hutchinson.")] = "auto",
    probes: Annotated[int, typer.Option(help="Hutchinson probes per row.")] = 4,
    noise: Annotated[str, typer.Option(help="Probe law: rademacher | gaussian.")] = "rademacher",
    exact_max_dim: Annotated[
        int, typer.Option(help="auto: exact divergence up to this dimension.")
    ] = 128,
    bin_width: Annotated[
        float | None,
        typer.Option(help="Width of one quantisation level in data units (digits: 1/8)."),
    ] = None,
    dequantize: Annotated[
        bool | None, typer.Option(help="Add U[0, w) noise (default: on when w is known).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of dequantisation noise and probes.")] = 0,
    solver: SolverOpt = "dopri5",
    rtol: RtolOpt = 1e-5,
    atol: AtolOpt = 1e-5,
    steps: StepsOpt = 100,
    batch: BatchOpt = 256,
    force: Annotated[bool, typer.Option(help="Overwrite an existing --out.")] = False,
    set_: SetOpt = None,
    device: Annotated[Device, typer.Option(help="Device to run on.")] = Device.auto,
    json_out: JsonOpt = False,
) -> None:
    """Negative log-likelihood and bits/dim of a data source (exact or Hutchinson divergence)."""
    import torch

    from pfgmctl.engine.build import build_method, pick_device
    from pfgmctl.latent import evaluated_at, log_likelihood
    from pfgmctl.solvers.cnf import Divergence

    if out is not None:
        check_output(out, force, (".npz",))
    try:
        div = Divergence(divergence, probes, noise, exact_max_dim)
    except ValueError as err:
        raise UsageError(f"--divergence/--probes/--noise: {err}") from None
    if bin_width is not None and not bin_width > 0:
        raise UsageError(f"--bin-width must be > 0 (got {bin_width})")
    cfg = flow_settings(solver, steps, rtol, atol, batch)
    src = load_source(run, checkpoint, exact, profile, tuple(set_ or ()))
    rows = load_rows(src, data, n)
    if bin_width is not None:
        rows = Rows(rows.x, rows.log_jac, bin_width, rows.name)
    deq = dequantize if dequantize is not None else rows.bin_width is not None
    x, deq = _dequantize(rows, deq, seed)
    dev = pick_device(device.value)
    method = build_method(src.profile)
    t0 = time.perf_counter()
    gen = torch.Generator(device=dev).manual_seed(seed)
    res = log_likelihood(method, src.model.to(dev), x.to(dev), cfg, divergence=div, gen=gen)
    log_prob = (res.log_prob + rows.log_jac).cpu()
    n_dim = math.prod(src.item_shape)
    info = _info(rows, log_prob, n_dim, deq, div, res, cfg, evaluated_at(method))
    info["seconds"] = time.perf_counter() - t0
    if out is not None:
        write_npz(out, log_prob=log_prob.numpy(), latents=res.latent.cpu().numpy())
        info["path"] = str(out)
    _report(info, json_out)


def _info(
    rows: Rows,
    log_prob: Any,
    n_dim: int,
    deq: bool,
    div: Any,
    res: Any,
    cfg: Any,
    where: dict[str, float],
) -> dict[str, Any]:
    return {
        "data": rows.name,
        "n": len(log_prob),
        "dim": n_dim,
        **summary(log_prob, n_dim, rows.bin_width),
        "bin_width": rows.bin_width,
        "dequantized": deq,
        "evaluated_at": where,
        "divergence": "exact" if res.exact else "hutchinson",
        "probes": None if res.exact else div.probes,
        "probe_noise": None if res.exact else div.noise,
        "solver": cfg.solver,
        "rtol": cfg.rtol,
        "atol": cfg.atol,
        "nfe": res.nfe,
        "log_prob_units": "nats per row, in the data source's own coordinates",
    }


def _report(info: dict[str, Any], json_out: bool) -> None:
    if json_out:
        emit_json(info)
        return
    where = ", ".join(f"{k} = {v:.4g}" for k, v in info["evaluated_at"].items())
    err_console.print(
        f"{info['data']}: NLL {info['nll_nats']:.4f} ± {info['nll_se']:.4f} nats, "
        f"{info['bits_per_dim']:.4f} ± {info['bits_per_dim_se']:.4f} bits/dim "
        f"({info['n']} rows, {info['divergence']} divergence, NFE {info['nfe']}, at {where})",
        highlight=False,
    )
