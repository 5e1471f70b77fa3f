"""`pfgmctl tui [RUN_DIR]` and the dashboard side of `pfgmctl train --tui`. No torch here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pfgmctl.cli.app import app, err_console
from pfgmctl.errors import PfgmctlError, UsageError

PROTOCOL_ENV = "PFGMCTL_IMAGE_PROTOCOL"
RUN_WAIT_S = 300.0
"""How long `train --tui` waits for the child to create its run directory."""
STOP_WAIT_S = 60.0


class ImageProtocol(StrEnum):
    auto = "auto"
    tgp = "tgp"
    sixel = "sixel"
    halfcell = "halfcell"
    unicode = "unicode"


ProtocolOpt = Annotated[
    ImageProtocol,
    typer.Option(
        "--image-protocol",
        envvar=PROTOCOL_ENV,
        help="Terminal image protocol for the preview (halfcell never probes the terminal).",
    ),
]


@app.command(rich_help_panel="Monitoring")
def tui(
    run: Annotated[
        str | None,
        typer.Argument(help="Run directory, number or name (default: the newest run)."),
    ] = None,
    outdir: Annotated[
        Path | None, typer.Option("--outdir", "-o", help="Runs directory (default ./runs).")
    ] = None,
    image_protocol: ProtocolOpt = ImageProtocol.auto,
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between polls of the run directory.")
    ] = 0.5,
) -> None:
    """Live dashboard of a run: loss, noise bins, preview, sampling trajectory, checkpoints."""
    from pfgmctl.cli.runs import checked_outdir, require_run_dir
    from pfgmctl.engine.rundir import newest_run
    from pfgmctl.tui.runinfo import resolve_run

    out = checked_outdir(outdir)
    if run is not None:
        path = require_run_dir(resolve_run(run, out))
    else:
        newest = newest_run(out)
        if newest is None:
            raise UsageError(f"no runs under {out}; start one with 'pfgmctl train' or pass RUN_DIR")
        path = newest
    run_dashboard(path, image_protocol.value, interval)


def run_dashboard(
    run: Path, protocol: str, interval: float, child: subprocess.Popen[bytes] | None = None
) -> str | None:
    """Open the dashboard on `run` (blocking); returns 'stop' / 'leave' when asked on quit."""
    from pfgmctl.tui.app import Dashboard

    def is_training() -> bool:
        return child is not None and child.poll() is None

    dash = Dashboard(
        run,
        runs_root=run.parent,
        image_protocol=protocol,
        poll_interval=interval,
        is_training=is_training if child is not None else None,
    )
    return dash.run()


def child_command(
    profile: str | None,
    sets: list[str],
    outdir: Path | None,
    resume: str | None,
    device: str | None,
) -> list[str]:
    """`python -m pfgmctl train ...` with the options given to `train --tui` (minus --tui)."""
    cmd = [sys.executable, "-m", "pfgmctl", "train"]
    if profile is not None:
        cmd += ["--profile", profile]
    for item in sets:
        cmd += ["--set", item]
    if outdir is not None:
        cmd += ["--outdir", str(outdir)]
    if resume is not None:
        cmd += ["--resume", resume]
    if device is not None:
        cmd += ["--device", device]
    return cmd


def wait_for_run(child: subprocess.Popen[bytes], out: Path, before: set[Path], log: Path) -> Path:
    """The run directory the child creates under `out` (with its profile.toml)."""
    from pfgmctl.engine.rundir import list_runs

    deadline = time.monotonic() + RUN_WAIT_S
    while time.monotonic() < deadline:
        fresh = [r for r in list_runs(out) if r not in before and (r / "profile.toml").is_file()]
        if fresh:
            return fresh[-1]
        if child.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise PfgmctlError(f"training exited with code {child.returncode}: {tail[0]}")
        time.sleep(0.1)
    raise PfgmctlError(
        f"training made no run directory under {out} in {RUN_WAIT_S:.0f} s; see {log}"
    )


def env_protocol() -> str:
    """$PFGMCTL_IMAGE_PROTOCOL if it names a protocol, else 'auto'."""
    value = os.environ.get(PROTOCOL_ENV, "auto")
    return value if value in ImageProtocol.__members__ else "auto"


def train_with_tui(
    cmd: list[str], out: Path, resume_run: Path | None, protocol: str | None
) -> None:
    """Start training as a child process, watch its run dir, then stop it or leave it running."""
    from pfgmctl.engine.rundir import list_runs

    protocol = protocol or env_protocol()
    before = set(list_runs(out))
    fd, name = tempfile.mkstemp(prefix="pfgmctl-train-", suffix=".log")
    log = Path(name)
    with os.fdopen(fd, "wb") as sink:
        child = subprocess.Popen(
            cmd,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    err_console.print(f"training as pid {child.pid}; its output goes to {log}", highlight=False)
    try:
        run = resume_run if resume_run is not None else wait_for_run(child, out, before, log)
    except BaseException:
        child.send_signal(signal.SIGINT)
        raise
    choice = run_dashboard(run, protocol, 0.5, child)
    _finish_child(child, choice, run, log)


def _finish_child(child: subprocess.Popen[bytes], choice: str | None, run: Path, log: Path) -> None:
    """Stop the trainer (SIGINT: it checkpoints and exits) or report that it keeps running."""
    if child.poll() is not None:
        err_console.print(
            f"training finished (exit {child.returncode}); run {run}", highlight=False
        )
        return
    if choice == "leave":
        err_console.print(
            f"training continues as pid {child.pid}; watch it with 'pfgmctl tui {run}'; log {log}",
            highlight=False,
        )
        return
    child.send_signal(signal.SIGINT)
    try:
        child.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    err_console.print(
        f"training stopped; continue with: pfgmctl train --resume {run}", highlight=False
    )
