"""Exponential moving average of weights with a half-life in images (Karras et al. 2022, EDM)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn


def ema_beta(nimg: int, batch: int, halflife_kimg: float, rampup: float | None) -> float:
    """Weight of the old average: 0.5 ** (batch / max(min(halflife, rampup * nimg), 1e-8)) (EDM)."""
    halflife_nimg = halflife_kimg * 1000.0
    if rampup is not None:
        halflife_nimg = min(halflife_nimg, rampup * nimg)
    if halflife_nimg <= 0.0:
        return 0.0  # zero half-life: plain copy
    return float(0.5 ** (batch / max(halflife_nimg, 1e-8)))


class EMA:
    """EDM-style EMA: `ema = beta * ema + (1 - beta) * param`, buffers copied."""

    def __init__(self, model: nn.Module, halflife_kimg: float, rampup: float | None) -> None:
        if halflife_kimg < 0:
            raise ValueError(f"halflife_kimg must be >= 0, got {halflife_kimg}")
        self.halflife_kimg = halflife_kimg
        self.rampup = rampup
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, nimg: int, batch: int) -> float:
        """Average `model` into the EMA; `nimg` = images seen before this batch. Returns beta."""
        beta = ema_beta(nimg, batch, self.halflife_kimg, self.rampup)
        ema_params: list[Tensor] = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        if len(ema_params) != len(params):
            raise ValueError(f"EMA has {len(ema_params)} parameters, model has {len(params)}")
        if ema_params:
            torch._foreach_lerp_(ema_params, params, 1.0 - beta)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        return beta

    def state_dict(self) -> dict[str, Tensor]:
        """State dict of the averaged module."""
        return dict(self.module.state_dict())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Strictly load the averaged module's state."""
        self.module.load_state_dict(state, strict=True)
