"""`pfgmctl runs` (list runs) and `pfgmctl runs show RUN` (one run). No torch here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pfgmctl.cli.app import app
from pfgmctl.cli.common import emit_json, runs_dir
from pfgmctl.errors import UsageError

runs_app = typer.Typer(
    help="List training runs (number, profile, step, last loss, status).",
    no_args_is_help=False,
)
app.add_typer(runs_app, name="runs", rich_help_panel="Monitoring")

OutdirOpt = Annotated[
    Path | None, typer.Option("--outdir", "-o", help="Runs directory (default ./runs).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def checked_outdir(outdir: Path | None) -> Path:
    """The runs directory; one that exists as a file is a usage error (a missing one is empty)."""
    out = runs_dir(outdir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--outdir {out} is a file, not a runs directory; pass a directory")
    return out


def require_run_dir(path: Path) -> Path:
    """`path` if it is a pfgmctl run directory (it has profile.toml), else a usage error."""
    if not (path / "profile.toml").is_file():
        raise UsageError(
            f"{path} is not a pfgmctl run directory (no profile.toml); "
            "'pfgmctl runs' lists the runs"
        )
    return path


def _fmt(value: float | int | None, spec: str) -> str:
    """`value` with `spec`, or '–'."""
    return "–" if value is None else format(value, spec)


@runs_app.callback(invoke_without_command=True)
def runs(ctx: typer.Context, outdir: OutdirOpt = None, json_out: JsonOpt = False) -> None:
    """List the runs under the runs directory, oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    from pfgmctl.engine.rundir import list_runs
    from pfgmctl.tui.runinfo import summarize_run

    out = checked_outdir(outdir)
    summaries = [summarize_run(run) for run in list_runs(out)]
    if json_out:
        emit_json({"outdir": str(out), "runs": [s.as_dict() for s in summaries]})
        return
    if not summaries:
        typer.echo(f"no runs under {out}; start one with 'pfgmctl train'", err=True)
        return
    table = Table(box=None, header_style="bold")
    for col in ("#", "run", "profile", "step", "kimg", "loss", "status"):
        table.add_column(col, justify="right" if col in ("#", "step", "kimg", "loss") else "left")
    for s in summaries:
        table.add_row(
            _fmt(s.number, "d"),
            s.name,
            s.profile,
            _fmt(s.step, "d"),
            _fmt(s.kimg, ".1f"),
            _fmt(s.loss, ".4f"),
            s.status,
        )
    Console(highlight=False).print(table)


@runs_app.command("show")
def show(
    run: Annotated[str, typer.Argument(help="Run directory, run number or run name.")],
    outdir: OutdirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one run: summary, latest checkpoint, files."""
    from pfgmctl.tui.runinfo import resolve_run, summarize_run

    path = require_run_dir(resolve_run(run, checked_outdir(outdir)))
    info = summarize_run(path).as_dict()
    samples = sorted(p.name for p in (path / "samples").glob("*.png"))
    info["previews"] = len(samples)
    info["newest_preview"] = samples[-1] if samples else None
    if json_out:
        emit_json(info)
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    for key, value in info.items():
        table.add_row(key, "–" if value is None else str(value))
    Console(highlight=False).print(table)
