"""Preconditioners: the raw net only ever sees c_noise (EDM `EDMPrecond` / k-diffusion `Denoiser` split)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _col(t: Tensor, x: Tensor) -> Tensor:
    """A scalar or [B] tensor as [B, 1, ..., 1] in x's dtype."""
    t = torch.as_tensor(t, device=x.device).to(x.dtype)
    return t.expand(x.shape[0]).reshape(-1, *([1] * (x.ndim - 1)))


class EDMPrecond(nn.Module):
    """D_θ(x, σ) = c_skip·x + c_out·F_θ(c_in·x, ln(σ)/4) (Karras et al. 2022, Table 1; PFGM++ §4)."""

    def __init__(self, raw: nn.Module, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.raw, self.sigma_data = raw, sigma_data

    def forward(
        self,
        x: Tensor,
        sigma: Tensor,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> Tensor:
        s = _col(sigma, x)
        sd2 = self.sigma_data**2
        c_skip = sd2 / (s.square() + sd2)
        c_out = s * self.sigma_data / (s.square() + sd2).sqrt()
        c_in = 1 / (s.square() + sd2).sqrt()
        c_noise = torch.as_tensor(sigma, device=x.device).to(x.dtype).expand(x.shape[0]).log() / 4
        return c_skip * x + c_out * self.raw(c_in * x, c_noise, labels, aug_labels)


class FieldHead(nn.Module):
    """PFGM head: raw output [B, C+1, ...] → (f_x [B, C, ...], f_z [B] = mean of the extra channel).

    The net is conditioned on ln z (`c_noise="log_z"`) or raw z (`"z"`, reference parity; pfgm.md §2.4).
    The input z is clamped at ≥ 1e−10 as in the reference.
    """

    def __init__(self, raw: nn.Module, c_noise: str = "log_z") -> None:
        super().__init__()
        self.raw, self.c_noise = raw, c_noise

    def forward(
        self,
        x: Tensor,
        z: Tensor,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        z = torch.as_tensor(z, device=x.device).to(x.dtype).expand(x.shape[0]).clamp_min(1e-10)
        out = self.raw(x, z.log() if self.c_noise == "log_z" else z, labels, aug_labels)
        c = x.shape[1]
        return out[:, :c], out[:, c:].flatten(1).mean(1)


class Conditioned(nn.Module):
    """A preconditioned model with fixed class labels: forward(x, t) = model(x, t, labels).

    Samplers and methods call model(x, t); class-conditional sampling binds the labels of the rows
    being solved here (architecture: methods and solvers never see labels).
    """

    def __init__(self, model: nn.Module, labels: Tensor | None) -> None:
        super().__init__()
        self.model, self.labels = model, labels

    def forward(self, x: Tensor, t: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return self.model(x, t, self.labels)
