"""User-facing errors: the CLI prints them as one line and exits with `exit_code`."""

from __future__ import annotations


class PfgmctlError(Exception):
    """A runtime failure the user can act on (exit 1)."""

    exit_code = 1


class UsageError(PfgmctlError):
    """Bad options, bad profile or bad input file named by the user (exit 2)."""

    exit_code = 2


class ProfileError(UsageError):
    """A profile that does not parse or validate; the message names the dotted key."""


class DataError(UsageError):
    """A data source that cannot be read or has the wrong shape."""


class CheckpointError(PfgmctlError):
    """A missing, corrupt, truncated or incompatible checkpoint."""
