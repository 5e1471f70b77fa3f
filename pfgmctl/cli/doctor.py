"""`pfgmctl doctor`: versions, devices and directories, for bug reports."""

from __future__ import annotations

import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer

from pfgmctl.cli.app import app
from pfgmctl.cli.common import emit_json, runs_dir

OPTIONAL = ("scikit-learn", "torch-fidelity")
_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _version(name: str) -> str | None:
    """Installed version of distribution `name`, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _required() -> list[str]:
    """Names of pfgmctl's required (non-extra) dependencies."""
    try:
        reqs = metadata.requires("pfgmctl") or []
    except metadata.PackageNotFoundError:
        return ["torch"]
    names = [m.group(1) for r in reqs if "extra ==" not in r and (m := _NAME_RE.match(r))]
    return names


def _devices() -> dict[str, Any]:
    """Torch build, CUDA and MPS availability (torch is imported here only)."""
    import torch

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    return {
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": cuda,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda
        else [],
        "mps_available": bool(mps is not None and mps.is_available()),
        "threads": torch.get_num_threads(),
    }


def _dirs(outdir: Path | None) -> dict[str, str]:
    """platformdirs config/cache/data dirs, the user profiles dir and the runs dir."""
    import platformdirs

    from pfgmctl.config.load import user_dir

    return {
        "config": str(platformdirs.user_config_path("pfgmctl", appauthor=False)),
        "profiles": str(user_dir()),
        "cache": str(platformdirs.user_cache_path("pfgmctl", appauthor=False)),
        "data": str(platformdirs.user_data_path("pfgmctl", appauthor=False)),
        "runs": str(runs_dir(outdir).resolve()),
    }


def report(outdir: Path | None = None) -> dict[str, Any]:
    """Everything `pfgmctl doctor` shows, as plain JSON-able data."""
    from pfgmctl import __version__

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "pfgmctl": __version__,
        "packages": {name: _version(name) for name in _required()},
        "optional": {name: _version(name) for name in OPTIONAL},
        "devices": _devices(),
        "dirs": _dirs(outdir),
    }


def _lines(info: dict[str, Any]) -> list[str]:
    """Human-readable `key: value` lines, one section per table."""
    out = [f"{k:>16}: {info[k]}" for k in ("python", "platform", "pfgmctl")]
    for section in ("packages", "optional", "devices", "dirs"):
        out.append(f"[{section}]")
        for key, value in info[section].items():
            shown = "not installed" if value is None and section != "devices" else value
            out.append(f"{key:>16}: {shown}")
    return out


@app.command(rich_help_panel="Inspection")
def doctor(
    outdir: Annotated[
        Path | None, typer.Option("--outdir", "-o", help="Runs directory (default ./runs).")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Show versions, devices and directories: paste this into a bug report."""
    from pfgmctl.cli.runs import checked_outdir

    checked_outdir(outdir)
    info = report(outdir)
    if json_out:
        emit_json(info)
        return
    typer.echo("\n".join(_lines(info)))
