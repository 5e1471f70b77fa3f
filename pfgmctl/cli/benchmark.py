"""`pfgmctl benchmark`: quality per NFE (with robustness perturbations) or speed, over trained runs."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from pfgmctl.cli.app import app, err_console
from pfgmctl.cli.common import emit_json, runs_dir
from pfgmctl.cli.train import Device
from pfgmctl.engine.rundir import atomic_write_text, finite_json, newest_run
from pfgmctl.errors import UsageError

if TYPE_CHECKING:
    from torch import Tensor

    from pfgmctl.metrics import MetricFn

QUICK = {"n": 256, "steps": "4,8", "seed_sets": 1}
FULL = {"n": 2000, "steps": "4,8,16,32", "seed_sets": 3}


class Mode(StrEnum):
    quality = "quality"
    speed = "speed"


def _floats(spec: str, what: str) -> list[float]:
    try:
        return [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--{what} {spec!r}: expected comma-separated numbers") from None


def _ints(spec: str, what: str, low: int = 1) -> list[int]:
    vals = _floats(spec, what)
    if any(v != int(v) or v < low for v in vals):
        raise UsageError(f"--{what} {spec!r}: expected comma-separated integers ≥ {low}")
    return [int(v) for v in vals]


def _names(spec: str) -> list[str]:
    return [v.strip() for v in spec.split(",") if v.strip()]


def _check_names(solvers: list[str], metrics: list[str]) -> None:
    """Unknown solver or metric names are usage errors before any run is loaded."""
    from pfgmctl.metrics import METRICS
    from pfgmctl.solvers import canonical

    for name in solvers:
        try:
            canonical(name)
        except ValueError as err:
            raise UsageError(f"--solver: {err}") from None
    for name in metrics:
        if name != "fid" and name not in METRICS:
            raise UsageError(
                f"--metric {name}: unknown; choose from {', '.join([*METRICS, 'fid'])}"
            )


def _runs(paths: list[Path] | None) -> list[Path]:
    if not paths:
        newest = newest_run(runs_dir(None))
        if newest is None:
            raise UsageError(f"no runs under {runs_dir(None)}; pass run directories or checkpoints")
        return [newest]
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such run directory or checkpoint")
    return paths


def _label(path: Path, loaded: Any) -> str:
    """Short run label: method and D (pfgmpp), e.g. 'pfgmpp D=128' or 'pfgm', plus the run number."""
    m = loaded.profile.method
    d = getattr(m, "aug_dim", None)
    tag = m.kind if d is None else f"D={d:g}"
    if hasattr(loaded.model, "levels"):  # an IPFM generator (engine.distill.DistilledGenerator)
        tag = f"IPFM {tag} K={len(loaded.model.levels)}"
    name = path.name if path.is_dir() else path.parent.parent.name
    return f"{tag} #{name.split('-')[0]}"


def _scorers(names: list[str], default: str, weights: Path | None) -> dict[str, MetricFn]:
    from functools import partial

    from pfgmctl.benchmark import score
    from pfgmctl.evaluate import inception_weights

    out: dict[str, MetricFn] = {}
    for name in names or [default]:
        if name == "fid":
            out[name] = partial(_fid_value, weights=inception_weights(weights))
        else:
            out[name] = partial(score, name)
    return out


def _fid_value(x: Tensor, ref: Tensor, *, weights: Path) -> float:
    from pfgmctl.evaluate import fid

    return fid(x, ref, weights=weights)["fid"]


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="quality per NFE: mean ± std over seed sets; Δ = paired change vs clean")
    for col in ("run", "solver", "steps", "perturb.", "NFE", "metric", "value", "Δ ± se", "floor"):
        table.add_column(col, justify="left" if col in ("run", "solver", "metric") else "right")
    for r in rows:
        delta = "" if r["delta"] is None else f"{r['delta']:+.3g} ± {r['delta_se'] or 0:.2g}"
        table.add_row(
            r["run"], r["solver"], str(r["steps"] or "-"), r["perturbation"], str(r["nfe"]),
            r["metric"], f"{r['mean']:.4g} ± {r['std']:.2g}", delta,
            "-" if r["floor"] is None else f"{r['floor']:.4g}",
        )  # fmt: skip
    return table


def _outputs(out: Path | None) -> Path:
    from pfgmctl.cli.common import free_path

    folder = out if out is not None else free_path(Path.cwd(), "benchmark", "")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file; give a directory")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _quality(
    paths: list[Path], opts: dict[str, Any], metric_names: list[str], weights: Path | None,
    device: Any, quiet: bool,
) -> dict[str, Any]:  # fmt: skip
    from pfgmctl.benchmark import bench_run, default_metric, load_run, settings

    grid = settings(opts["solvers"], opts["steps"], opts["alphas"], opts["bits"])
    rows: list[dict[str, Any]] = []
    for path in paths:
        loaded = load_run(path)
        scorers = _scorers(metric_names, default_metric(loaded.profile, loaded.item_shape), weights)
        label = _label(path, loaded)
        if not quiet:
            err_console.print(
                f"benchmarking {label}: {len(grid)} settings × {opts['seed_sets']} seed sets"
            )
        for row in bench_run(
            label, loaded, grid, scorers, n=opts["n"], seed_sets=opts["seed_sets"], device=device
        ):
            rows.append(row.to_dict())
    return {"mode": "quality", "rows": rows, **{k: v for k, v in opts.items()}}


def _write_quality(folder: Path, result: dict[str, Any]) -> dict[str, str]:
    from pfgmctl.report import plot_png, write_csv

    rows = result["rows"]
    files = {"json": folder / "benchmark.json", "csv": folder / "benchmark.csv"}
    write_csv(files["csv"], rows)
    for metric in dict.fromkeys(r["metric"] for r in rows):
        files[f"png_{metric}"] = folder / f"quality-vs-nfe-{metric}.png"
        plot_png(files[f"png_{metric}"], rows, metric, "pfgmctl benchmark")
    names = {k: str(v) for k, v in files.items()}
    atomic_write_text(
        files["json"], json.dumps(finite_json({**result, "files": names}), indent=1) + "\n"
    )
    return names


def _speed(paths: list[Path], steps: int, batch: int, device: Any) -> dict[str, Any]:
    import math

    from pfgmctl.benchmark import load_run, pfgm_target_speed, sampler_overhead, train_throughput

    rows: list[dict[str, Any]] = []
    for path in paths:
        loaded = load_run(path)
        for solver in ("euler", "heun"):
            r = sampler_overhead(loaded, solver, steps, batch=batch, device=device)
            rows.append({"run": _label(path, loaded), "solver": solver, "steps": steps, **r})
        run_dir = path if path.is_dir() else path.parent.parent
        rows[-1]["train_img_per_s"] = train_throughput(run_dir)
    first = load_run(paths[0])
    target = pfgm_target_speed(math.prod(first.item_shape))
    return {"mode": "speed", "batch": batch, "rows": rows, "pfgm_target": target}


def _speed_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"sampler overhead = wall / (NFE × one forward), batch {result['batch']}")
    for col in ("run", "solver", "NFE", "forward ms", "wall ms", "overhead", "train img/s"):
        table.add_column(col)
    for r in result["rows"]:
        tp = r.get("train_img_per_s")
        table.add_row(
            r["run"], r["solver"], str(r["nfe"]), f"{r['forward_ms']:.3f}", f"{r['wall_ms']:.1f}",
            f"{r['overhead']:.3f}", "" if tp is None else f"{tp:.0f}",
        )  # fmt: skip
    return table


@app.command(rich_help_panel="Generation")
def benchmark(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run directories or checkpoints (default: newest run)."),
    ] = None,
    mode: Annotated[Mode, typer.Option(help="quality (per NFE) or speed.")] = Mode.quality,
    quick: Annotated[bool, typer.Option(help="CI preset: n 256, steps 4,8, one seed set.")] = False,
    solver: Annotated[str, typer.Option(help="Solvers, comma-separated.")] = "heun",
    steps: Annotated[str | None, typer.Option(help="Step counts, e.g. 4,8,16,32.")] = None,
    alpha: Annotated[str, typer.Option(help="Noise-injection α values > 0, e.g. 0.1,0.2.")] = "",
    bits: Annotated[str, typer.Option(help="Weight-quantisation bit widths, e.g. 6,8.")] = "",
    metric: Annotated[
        str,
        typer.Option(help="Metrics: swd, energy, mmd, kid, nn1, fd_digits, fid (default auto)."),
    ] = "",
    n: Annotated[int | None, typer.Option("-n", help="Samples per seed set.")] = None,
    seed_sets: Annotated[int | None, typer.Option(help="Disjoint seed sets (mean ± std).")] = None,
    inception_weights: Annotated[
        Path | None,
        typer.Option(
            help="Local Inception weights for --metric fid (or $PFGMCTL_INCEPTION_WEIGHTS)."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default ./benchmark*).")
    ] = None,
    device: Annotated[Device, typer.Option(help="Device to sample on.")] = Device.auto,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON result on stdout.")
    ] = False,
) -> None:
    """Measure sample quality per NFE (and under noise, fewer steps, quantisation) or sampler speed."""
    from pfgmctl.engine.build import pick_device

    preset = QUICK if quick else FULL
    opts: dict[str, Any] = {
        "solvers": _names(solver),
        "steps": _ints(steps or str(preset["steps"]), "steps"),
        "alphas": _floats(alpha, "alpha"),
        "bits": _ints(bits, "bits"),
        "n": n if n is not None else preset["n"],
        "seed_sets": seed_sets if seed_sets is not None else preset["seed_sets"],
    }
    if opts["n"] < 2 or opts["seed_sets"] < 1:
        raise UsageError("-n must be ≥ 2 and --seed-sets ≥ 1")
    if any(a < 0 for a in opts["alphas"]):
        raise UsageError(f"--alpha {alpha!r}: α must be ≥ 0")
    _check_names(opts["solvers"], _names(metric))
    if out is not None and out.exists() and not out.is_dir():  # before any compute
        raise UsageError(f"--out {out} is a file; give a directory")
    paths, dev, t0 = _runs(runs), pick_device(device.value), time.perf_counter()
    if mode is Mode.speed:
        result = _speed(paths, opts["steps"][-1], batch=opts["n"], device=dev)
        if not json_out:
            err_console.print(_speed_table(result))
            err_console.print(f"PFGM target {result['pfgm_target']}", highlight=False)
    else:
        result = _quality(paths, opts, _names(metric), inception_weights, dev, json_out)
        result["files"] = _write_quality(_outputs(out), result)
        if not json_out:
            err_console.print(_table(result["rows"]))
            err_console.print(f"wrote {', '.join(result['files'].values())}", highlight=False)
    result["seconds"] = time.perf_counter() - t0
    if json_out:
        emit_json(finite_json(result))
