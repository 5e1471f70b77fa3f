"""Small CLI helpers: paths, seeds, JSON output. No torch here."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from pfgmctl.errors import UsageError

RUNS_ENV = "PFGMCTL_RUNS_DIR"


def runs_dir(outdir: Path | None) -> Path:
    """--outdir, else $PFGMCTL_RUNS_DIR, else ./runs."""
    if outdir is not None:
        return outdir
    return Path(os.environ.get(RUNS_ENV, "runs"))


def parse_seeds(spec: str) -> list[int]:
    """'0-63,100' → [0, ..., 63, 100] (EDM's --seeds syntax)."""
    seeds: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if m is None:
            raise UsageError(f"--seeds {spec!r}: expected a list like 0-63,100")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise UsageError(f"--seeds {spec!r}: range {lo}-{hi} is empty")
        seeds.extend(range(lo, hi + 1))
    return seeds


def seeds_from_options(n: int | None, seed: int | None, seeds: str | None) -> list[int]:
    """-n N --seed S → S..S+N−1, or --seeds SPEC; never both."""
    if seeds is not None:
        if n is not None or seed is not None:
            raise UsageError("--seeds cannot be combined with -n/--seed; use one or the other")
        return parse_seeds(seeds)
    n = 64 if n is None else n
    seed = 0 if seed is None else seed
    if n < 1:
        raise UsageError(f"-n must be at least 1 (got {n})")
    if seed < 0:
        raise UsageError(f"--seed must be ≥ 0 (got {seed})")
    return list(range(seed, seed + n))


def check_output(path: Path, force: bool, suffixes: tuple[str, ...]) -> Path:
    """An output path with a known suffix that is not overwritten without --force."""
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"--out {path}: unsupported file type; use one of {', '.join(suffixes)}")
    if path.exists() and not force:
        raise UsageError(f"--out {path} already exists; pass --force to overwrite it")
    if path.exists() and path.is_dir():
        raise UsageError(f"--out {path} is a directory; give a file name")
    return path


def free_path(folder: Path, stem: str, suffix: str) -> Path:
    """folder/stem.suffix, or stem-001.suffix, ... : the first name not taken."""
    path = folder / f"{stem}{suffix}"
    k = 1
    while path.exists():
        path = folder / f"{stem}-{k:03d}{suffix}"
        k += 1
    return path


def emit_json(obj: dict[str, Any]) -> None:
    """One JSON object on stdout (human output goes to stderr)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def resume_source(resume: str, outdir: Path, command: str) -> tuple[Path, Path]:
    """(state checkpoint, run dir) for --resume latest | RUN_DIR | state-*.pt of `command`'s runs."""
    from pfgmctl.engine.inference import latest_checkpoint
    from pfgmctl.engine.rundir import newest_run

    if resume == "latest":
        run = newest_run(outdir)
        if run is None:
            raise UsageError(
                f"--resume latest: no runs under {outdir}; start one with 'pfgmctl {command}'"
            )
        return latest_checkpoint(run, "state"), run
    path = Path(resume)
    if path.is_dir():
        return latest_checkpoint(path, "state"), path
    if not path.is_file():
        raise UsageError(f"--resume {resume}: no such file or run directory")
    return path, path.parent.parent


def show_data_warnings(dataset: Any) -> None:
    """Print the data loader's warnings (e.g. files skipped under [data] skip_bad), one line each."""
    from pfgmctl.cli.app import err_console

    for warning in getattr(dataset, "warnings", ()):
        err_console.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
