"""Rebuild a trained model from a checkpoint (EMA safetensors or full state) for sampling."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from pfgmctl.config.load import profile_from_text
from pfgmctl.config.schema import Profile
from pfgmctl.engine.build import build_model
from pfgmctl.engine.checkpoint import load_any, load_module_strict
from pfgmctl.engine.rundir import read_latest
from pfgmctl.errors import CheckpointError, ProfileError, UsageError


@dataclass(frozen=True)
class Loaded:
    """A model with the profile it was trained with and the shape of one data item."""

    profile: Profile
    model: nn.Module
    item_shape: tuple[int, ...]
    source: Path
    step: int | None
    num_classes: int = 0  # > 0: class-conditional; sample with labels
    class_names: tuple[str, ...] = ()


def latest_checkpoint(run_dir: Path, key: str = "ema") -> Path:
    """The newest checkpoint of a run (`ema` weights or the full `state`) from latest.json."""
    if not (run_dir / "profile.toml").is_file():
        raise UsageError(f"{run_dir} is not a pfgmctl run directory (no profile.toml)")
    latest = read_latest(run_dir)
    if latest is None or key not in latest:
        raise UsageError(f"run {run_dir} has no checkpoint yet; wait for one or train longer")
    path = run_dir / "checkpoints" / str(latest[key])
    if not path.is_file():
        raise CheckpointError(f"{path} (named in latest.json) is missing")
    return path


def load_checkpoint(path: Path, overrides: tuple[str, ...] = ()) -> Loaded:
    """Load EMA weights (.safetensors or .pt state) and rebuild net, precond and profile strictly."""
    weights, meta, state = load_any(path)
    if state is not None and "item_shape" in state:
        meta = {**meta, "item_shape": json.dumps(list(state["item_shape"]))}
        meta["num_classes"] = str(state.get("num_classes", 0))
        meta["class_names"] = json.dumps(list(state.get("class_names", [])))
    if "profile" not in meta or "item_shape" not in meta:
        raise CheckpointError(
            f"checkpoint {path} has no embedded profile; was it written by pfgmctl?"
        )
    try:  # the embedded text itself is the checkpoint's (exit 1); a bad --set is the user's (2)
        profile_from_text(meta["profile"], f"{path} (embedded)")
    except ProfileError as err:
        raise CheckpointError(
            f"checkpoint {path}: embedded profile is unreadable ({err})"
        ) from None
    profile = profile_from_text(meta["profile"], f"{path} (embedded)", overrides)
    try:
        item_shape = tuple(int(s) for s in json.loads(meta["item_shape"]))
        num_classes = int(meta.get("num_classes", "0"))
        class_names = tuple(str(c) for c in json.loads(meta.get("class_names", "[]")))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path}: bad shape/class metadata ({err})") from None
    model = build_model(profile, item_shape, num_classes)
    load_module_strict(model, weights, str(path))
    step = int(meta["step"]) if meta.get("step", "").isdigit() else None
    return Loaded(profile, model.eval(), item_shape, path, step, num_classes, class_names)
