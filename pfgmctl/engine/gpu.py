"""GPU options of a training run: bf16 autocast, channels_last, TF32 (all inactive on CPU)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pfgmctl.config.schema import TrainConfig


class Autocast(nn.Module):
    """Runs the wrapped net under bf16 autocast on CUDA; floating outputs come back as float32."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args: Any) -> Any:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = self.inner(*args)
        if isinstance(out, tuple):
            return tuple(_float(o) for o in out)
        return _float(out)


def _float(x: Any) -> Any:
    return x.float() if isinstance(x, Tensor) and x.dtype == torch.bfloat16 else x


def gpu_options(
    t: TrainConfig, device: torch.device, item_shape: tuple[int, ...]
) -> dict[str, Any]:
    """The GPU options in effect on `device`, with a note for each one that does not apply."""
    cuda = device.type == "cuda"
    image = len(item_shape) == 3
    active = {
        "amp": t.amp if cuda else "off",
        "compile": t.compile,
        "channels_last": t.channels_last and cuda and image,
        "tf32": t.tf32 and cuda,
    }
    notes = []
    if t.amp != "off" and not cuda:
        notes.append(f"train.amp={t.amp} is ignored on {device.type} (autocast runs on CUDA only)")
    if t.channels_last and not active["channels_last"]:
        why = "4-D image nets" if cuda else "CUDA"
        notes.append(f"train.channels_last is ignored on {device.type} (it applies to {why} only)")
    return {**active, "notes": notes}


def apply_backend_flags(t: TrainConfig, device: torch.device) -> None:
    """TF32 matmuls and convolutions on CUDA (Ampere+) when `train.tf32`."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = t.tf32
        torch.backends.cudnn.allow_tf32 = t.tf32
