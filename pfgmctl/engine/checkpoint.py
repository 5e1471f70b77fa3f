"""Checkpoints (architecture §7): full state as `.pt` (weights_only) and EMA weights as safetensors."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save
from torch import Tensor, nn

from pfgmctl.engine.rundir import atomic_write_bytes
from pfgmctl.errors import CheckpointError, UsageError

_CKPT_RE = re.compile(r"^(?:state-(\d{9,})\.pt|ema-(\d{9,})\.safetensors)$")
_PLAIN = (Tensor, int, float, str, bool, type(None))
_MAX_KEYS = 3
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_UNPICKLER_MARK = "WeightsUnpickler error:"


def state_name(step: int) -> str:
    """File name of the full training state at `step`."""
    return f"state-{step:09d}.pt"


def ema_name(step: int) -> str:
    """File name of the EMA weights at `step`."""
    return f"ema-{step:09d}.safetensors"


def _check_plain(obj: Any, where: str = "state") -> None:
    """Raise TypeError unless `obj` holds only tensors, numbers, strings, None and containers."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str | int):
                raise TypeError(f"{where} has a non-str/int key {key!r}")
            _check_plain(value, f"{where}[{key!r}]")
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
    elif not isinstance(obj, _PLAIN):
        raise TypeError(f"{where} is a {type(obj).__name__}; checkpoints hold plain types only")


def _require_file(path: Path) -> None:
    """UsageError (exit 2) unless `path` is an existing file."""
    if not path.exists():
        raise UsageError(f"checkpoint {path} not found")
    if not path.is_file():
        raise UsageError(f"checkpoint {path} is not a file")


def _reason(exc: BaseException) -> str:
    """A short one-line reason from a (possibly long, multi-line) loader exception."""
    text = _ANSI_RE.sub("", str(exc))
    text = text.split(_UNPICKLER_MARK, 1)[-1]  # weights_only refusals: keep the actual cause
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[0].split(" was not an allowed")[0].split(". ")[0] if lines else ""
    line = line if len(line) <= 120 else line[:117] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _corrupt(path: Path, exc: BaseException) -> CheckpointError:
    """One-line error for a file that exists but cannot be read."""
    return CheckpointError(
        f"checkpoint {path} is corrupt or truncated ({_reason(exc)}); "
        "pick another with --checkpoint or --resume PATH"
    )


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically `torch.save` a plain-typed training state (loadable with weights_only=True)."""
    _check_plain(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue(), crash="checkpoint-write")


def load_state(path: Path) -> dict[str, Any]:
    """Load a full training state on CPU with `weights_only=True`."""
    _require_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _corrupt(path, exc) from exc
    if not isinstance(state, dict):
        raise _corrupt(path, TypeError(f"top level is a {type(state).__name__}, not a dict"))
    return state


def save_weights(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """Atomically write `tensors` (CPU, contiguous, unshared) and string `metadata` as safetensors."""
    bad = [k for k, v in metadata.items() if not isinstance(v, str)]
    if bad:
        raise TypeError(f"safetensors metadata values must be str: {bad}")
    owned = {
        k: v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
        for k, v in tensors.items()
    }
    atomic_write_bytes(path, st_save(owned, metadata=metadata))


def load_weights(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Load safetensors weights and their metadata on CPU."""
    _require_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except Exception as exc:
        raise _corrupt(path, exc) from exc
    return tensors, metadata


def load_any(path: Path) -> tuple[dict[str, Tensor], dict[str, str], dict[str, Any] | None]:
    """(EMA weights, metadata, full state or None) from a `.pt` state or `.safetensors` file."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        tensors, metadata = load_weights(path)
        return tensors, metadata, None
    if suffix != ".pt":
        raise UsageError(f"checkpoint {path}: unknown extension; expected .pt or .safetensors")
    state = load_state(path)
    missing = [k for k in ("ema", "profile", "step") if k not in state]
    if missing or not isinstance(state["ema"], dict):
        raise CheckpointError(
            f"checkpoint {path} is not a pfgmctl training state (missing {missing or ['ema']}); "
            "pick another with --checkpoint or --resume PATH"
        )
    metadata = {"profile": str(state["profile"]), "step": str(state["step"])}
    if "kimg" in state:
        metadata["kimg"] = str(state["kimg"])
    return dict(state["ema"]), metadata, state


def _mismatches(module: nn.Module, tensors: dict[str, Tensor]) -> list[str]:
    """Human-readable key/shape differences between a module and a weight dict."""
    own = module.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    shapes = [
        f"{k} {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in tensors and tensors[k].shape != own[k].shape
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - _MAX_KEYS} more)" if len(items) > _MAX_KEYS else ""
            parts.append(f"{label} {', '.join(items[:_MAX_KEYS])}{more}")
    return parts


def load_module_strict(module: nn.Module, tensors: dict[str, Tensor], source: str) -> None:
    """Load `tensors` into `module` strictly; CheckpointError naming `source` on any mismatch."""
    parts = _mismatches(module, tensors)
    if not parts:
        try:
            module.load_state_dict(tensors, strict=True)
            return
        except RuntimeError as exc:
            parts = [str(exc).strip().splitlines()[0]]
    raise CheckpointError(
        f"checkpoint {source} does not match this network: {'; '.join(parts)}; "
        "was it trained with another profile?"
    )


def _checkpoint_step(path: Path) -> int | None:
    """Step of a `state-*.pt` / `ema-*.safetensors` file name, None for any other file."""
    match = _CKPT_RE.match(path.name)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def prune(ckpt_dir: Path, keep: int) -> list[Path]:
    """Delete state/ema checkpoints except those of the `keep` highest steps; return deleted paths."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    files = [(p, _checkpoint_step(p)) for p in sorted(ckpt_dir.iterdir()) if p.is_file()]
    steps = sorted({s for _, s in files if s is not None}, reverse=True)
    kept = set(steps[:keep])
    deleted = [p for p, s in files if s is not None and s not in kept]
    for p in deleted:
        p.unlink(missing_ok=True)
    return deleted
