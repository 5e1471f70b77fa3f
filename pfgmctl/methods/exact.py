"""Exact empirical models: they answer with the exact field of a finite data set, so every sampler
(and the likelihood) can be tested with no training (pfgmpp_ipfm.md part C)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pfgmctl.physics.empirical import posterior_mean
from pfgmctl.physics.field import field_target


class ExactDenoiser(nn.Module):
    """D(x, σ) = E[y | x, r = σ√D] over `data` (the `edm` precond contract)."""

    data: Tensor

    def __init__(self, data: Tensor, aug_dim: float) -> None:
        super().__init__()
        self.register_buffer("data", data.to(torch.float64))
        self.aug_dim = aug_dim

    def forward(
        self,
        x: Tensor,
        sigma: Tensor,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> Tensor:
        return posterior_mean(x, self.data, sigma, self.aug_dim).to(x.dtype)


class ExactField(nn.Module):
    """(f_x, f_z) = √N·D/(‖D‖ + γ) with the exact empirical D over `data` (the `field` contract)."""

    data: Tensor

    def __init__(self, data: Tensor, gamma: float) -> None:
        super().__init__()
        self.register_buffer("data", data.to(torch.float64))
        self.gamma = gamma

    def forward(
        self, x: Tensor, z: Tensor, labels: Tensor | None = None, aug_labels: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        z = torch.as_tensor(z, device=x.device).to(torch.float64).expand(x.shape[0])
        f_x, f_z = field_target(x.to(torch.float64), z, self.data, gamma=self.gamma)
        return f_x.to(x.dtype), f_z.to(x.dtype)
