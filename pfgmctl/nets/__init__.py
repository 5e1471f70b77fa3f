"""Raw nets (registry) and preconditioners. Imports nothing else from pfgmctl."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from pfgmctl.nets.mlp import MLP
from pfgmctl.nets.precond import Conditioned, EDMPrecond, FieldHead
from pfgmctl.nets.unet import UNet

NetBuilder = Callable[..., nn.Module]
NETS: dict[str, NetBuilder] = {"mlp": MLP, "unet": UNet}
"""kind → constructor(item_shape, *, out_extra, **options)."""


def build_raw(
    kind: str, item_shape: tuple[int, ...], *, out_extra: int, **options: Any
) -> nn.Module:
    """Build a raw net of registered `kind` for items of `item_shape`."""
    if kind not in NETS:
        raise ValueError(f"unknown net kind {kind!r}; registered: {', '.join(sorted(NETS))}")
    return NETS[kind](item_shape, out_extra=out_extra, **options)


__all__ = ["NETS", "Conditioned", "EDMPrecond", "FieldHead", "UNet", "build_raw"]
