"""PFGM++ (Xu et al. 2023): EDM training and σ-ODE with the D-dimensional kernel; D = inf is EDM."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import ClassVar

import torch
from torch import Tensor, nn

from pfgmctl.methods.base import LossOut, PriorDraw, batch_time
from pfgmctl.physics.kernels import Generators, log_kernel, sample_noise
from pfgmctl.solvers.base import Rhs
from pfgmctl.solvers.schedules import karras


@dataclass(frozen=True)
class PFGMPP:
    """PFGM++ with `aug_dim` = D (any real > 0, or inf); r = σ√D (pfgmpp_ipfm.md §A3).

    Training = EDM except the noise (§A4); sampling = the EDM ODE dx/dσ = (x − D_θ(x, σ))/σ from the
    kernel prior at σ_max (not rescaled) on the ρ-grid, ending with one Euler step into σ = 0 (§A5).
    """

    kind: ClassVar[str] = "pfgmpp"
    time_name: ClassVar[str] = "sigma"
    aug_dim: float = 128.0
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_data: float = 0.5
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0

    def rows_needed(self, batch: int) -> int:
        """PFGM++ trains on exactly the rows it draws."""
        return batch

    def loss(
        self,
        model: nn.Module,
        y: Tensor,
        *,
        gen: torch.Generator,
        charges: Tensor | None = None,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> LossOut:
        """λ(σ)·‖D_θ(y + n, σ) − y‖², ln σ ~ N(P_mean, P_std²), n ~ p_{σ√D}(·|0) (PFGM++ Eq. 9; EDM Eq. 8)."""
        b = y.shape[0]
        ln_sigma = self.p_mean + self.p_std * torch.randn(
            b, dtype=torch.float64, device=y.device, generator=gen
        )
        sigma = ln_sigma.exp()
        n = sample_noise(tuple(y.shape), sigma, self.aug_dim, generator=gen, device=y.device)
        s = sigma.to(y.dtype)
        y_labels = None if labels is None else labels[:b]
        denoised = model(y + n.to(y.dtype), s, y_labels, aug_labels)
        weight = (s.square() + self.sigma_data**2) / (s * self.sigma_data).square()
        return LossOut(weight * (denoised - y).square().flatten(1).sum(1), sigma)

    def grid(self, steps: int, *, device: torch.device) -> Tensor:
        """σ_max → σ_min on the EDM ρ-grid with `steps` points; `finalize` is the last of `steps` steps."""
        return karras(steps, self.sigma_min, self.sigma_max, self.rho, device=device)

    def prior(
        self, n: int, shape: tuple[int, ...], *, gen: Generators, device: torch.device
    ) -> PriorDraw:
        """x ~ p_{r_max}(·|0), r_max = σ_max√D, never rescaled or clipped (§A5)."""
        x = sample_noise((n, *shape), self.sigma_max, self.aug_dim, generator=gen, device=device)
        return PriorDraw(x, torch.zeros(n, dtype=torch.bool, device=device))

    def rhs(self, model: nn.Module, *, dtype: torch.dtype) -> Rhs:
        """dx/dσ = (x − D_θ(x, σ))/σ (PFGM++ §3 with r = σ√D; identical to EDM's ODE)."""

        def f(x: Tensor, t: Tensor) -> Tensor:
            sigma = batch_time(t, x)
            denoised = model(x.to(dtype), sigma.to(dtype)).to(torch.float64)
            return (x - denoised) / t

        return f

    def finalize(self, model: nn.Module, x: Tensor, t: Tensor, *, dtype: torch.dtype) -> Tensor:
        """Euler step from σ_min into σ = 0, which is the denoiser output D_θ(x, σ_min)."""
        return model(x.to(dtype), batch_time(t, x).to(dtype)).to(torch.float64)

    @property
    def final_nfe(self) -> int:
        """One denoiser call in `finalize`."""
        return 1

    def log_prior(self, x: Tensor) -> Tensor:
        """log k_{r_max}(x) with the exact lgamma normaliser."""
        return log_kernel(x, self.sigma_max, self.aug_dim)

    def physical(self, t: float) -> dict[str, float]:
        """σ and, for finite D, r = σ√D."""
        out = {"sigma": t}
        if not math.isinf(self.aug_dim):
            out["r"] = t * math.sqrt(self.aug_dim)
        return out

    def progress(self, t: float) -> float:
        """ln(σ_max/σ) / ln(σ_max/σ_min), clamped to [0, 1]."""
        if t <= 0:
            return 1.0
        p = math.log(self.sigma_max / t) / math.log(self.sigma_max / self.sigma_min)
        return min(max(p, 0.0), 1.0)

    def noise_edges(self, bins: int) -> list[float]:
        """Equal-probability bins of the training ln σ ~ N(P_mean, P_std²), outer edges at ±3 std."""
        dist = NormalDist(self.p_mean, self.p_std)
        inner = [math.exp(dist.inv_cdf(k / bins)) for k in range(1, bins)]
        lo, hi = math.exp(self.p_mean - 3 * self.p_std), math.exp(self.p_mean + 3 * self.p_std)
        return [lo, *inner, hi]
