"""Profiles: frozen pydantic models (schema) and TOML loading with `--set` overrides (load)."""

from __future__ import annotations

from pfgmctl.config.load import (
    DEFAULT_PROFILE,
    ProfileInfo,
    builtin_dir,
    find_profile,
    list_profiles,
    load_profile,
    profile_from_text,
    profile_to_toml,
    user_dir,
)
from pfgmctl.config.schema import Profile

__all__ = [
    "DEFAULT_PROFILE",
    "Profile",
    "ProfileInfo",
    "builtin_dir",
    "find_profile",
    "list_profiles",
    "load_profile",
    "profile_from_text",
    "profile_to_toml",
    "user_dir",
]
