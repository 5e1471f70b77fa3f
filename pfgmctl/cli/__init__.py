"""pfgmctl command line. Command modules import torch only inside command bodies."""

from __future__ import annotations

from pfgmctl.cli import profile, sample, train
from pfgmctl.cli.app import app

__all__ = ["app", "main", "profile", "sample", "train"]


def main() -> None:
    """Console-script entry point."""
    app()
