"""pfgmctl command line. Command modules import torch only inside command bodies."""

from __future__ import annotations

from pfgmctl.cli import (
    benchmark,
    distill,
    doctor,
    encode,
    interpolate,
    likelihood,
    profile,
    runs,
    sample,
    train,
    tui,
)
from pfgmctl.cli.app import app

__all__ = [
    "app",
    "benchmark",
    "distill",
    "doctor",
    "encode",
    "interpolate",
    "likelihood",
    "main",
    "profile",
    "runs",
    "sample",
    "train",
    "tui",
]


def main() -> None:
    """Console-script entry point."""
    app()
