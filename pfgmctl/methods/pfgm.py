"""PFGM (Xu et al. 2022): normalised empirical field target and the backward ODE in ln z."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from pfgmctl.methods.base import LossOut, PriorDraw, batch_time
from pfgmctl.physics.field import field_target, perturb, substitute_fz
from pfgmctl.physics.kernels import Generators, clip_norm, log_kernel, sample_noise
from pfgmctl.solvers.base import Rhs
from pfgmctl.solvers.schedules import log_uniform

FZ_GUARD = 1e-5
"""f_z is kept ≤ −FZ_GUARD in dx/dz = f_x/f_z (the reference adds +1e−5; a clamp never flips its sign)."""


@dataclass(frozen=True)
class PFGM:
    """PFGM with resolved hyper-parameters (pfgm.md §2, §3, §4); the model is a `FieldHead`.

    time_var "log_z": t = ln z from ln z_max to ln z_min (the paper's sampler); "z": t = z on a
    log-spaced grid (the reference's Euler/Heun parity, pfgm.md §5).
    """

    kind: ClassVar[str] = "pfgm"
    time_name: ClassVar[str] = "z"
    m: float
    z_max: float
    upper_norm: float
    z_exp: float
    sigma: float = 0.01
    tau: float = 0.03
    gamma: float = 5.0
    restrict_m: bool = True
    n_charges: int = 4096
    z_min: float = 1e-3
    prior_clip: bool = True
    time_var: str = "log_z"
    c_noise: str = "log_z"  # read by the model builder (FieldHead), not by the method
    reduce_mean: bool = False

    def rows_needed(self, batch: int) -> int:
        """B_L = max(B_S, n_charges): the trained rows are among the charges (pfgm.md §2.1)."""
        return max(batch, self.n_charges)

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
        """½‖f_θ(x, z) − v(x, z)‖² over N+1 entries, v the empirical field of `charges` (pfgm.md §2.5).

        With class labels the target of a row is the field of the charges of its own class only
        (the empirical field of p(y | class)).
        """
        charges = y if charges is None else charges
        b = y.shape[0]
        y_labels = None if labels is None else labels[:b]
        same = None if labels is None else y_labels[:, None] == labels[None, :]  # type: ignore[index]
        x, z = perturb(
            y,
            sigma=self.sigma,
            tau=self.tau,
            m_max=self.m,
            restrict_m=self.restrict_m,
            generator=gen,
        )
        with torch.no_grad():
            v_x, v_z = field_target(x, z, charges, gamma=self.gamma, allowed=same)
        f_x, f_z = model(x, z.to(y.dtype), y_labels, aug_labels)
        sq = (f_x - v_x).square().flatten(1).sum(1) + (f_z - v_z).square()
        if self.reduce_mean:  # the reference's reduce_mean = true (LSUN): mean over N+1 entries
            return LossOut(sq / (f_x[0].numel() + 1), z)
        return LossOut(0.5 * sq, z)

    def grid(self, steps: int, *, device: torch.device) -> Tensor:
        """`steps` steps from z_max to z_min, equally spaced in ln z (in t = ln z or t = z)."""
        z = log_uniform(steps + 1, self.z_max, self.z_min, device=device)
        return z.log() if self.time_var == "log_z" else z

    def prior(
        self, n: int, shape: tuple[int, ...], *, gen: Generators, device: torch.device
    ) -> PriorDraw:
        """Poisson kernel on the z_max plane = PFGM++ kernel with D = 1, r = z_max (pfgm.md §3).

        With `prior_clip`, norms above `upper_norm` are scaled down to it (as the reference does).
        """
        x = sample_noise((n, *shape), self.z_max, 1.0, generator=gen, device=device)
        if not self.prior_clip:
            return PriorDraw(x, torch.zeros(n, dtype=torch.bool, device=device))
        return PriorDraw(*clip_norm(x, self.upper_norm))

    def _z(self, t: Tensor) -> Tensor:
        return t.exp() if self.time_var == "log_z" else t

    def rhs(self, model: nn.Module, *, dtype: torch.dtype) -> Rhs:
        """dx/d(ln z) = z·f_x/f_z, or dx/dz = f_x/f_z, with the z_exp substitution (pfgm.md §4)."""

        def f(x: Tensor, t: Tensor) -> Tensor:
            z = batch_time(self._z(t), x)
            f_x, f_z = model(x.to(dtype), z.to(dtype))
            f_x, f_z = f_x.to(torch.float64), f_z.to(torch.float64)
            f_z, _ = substitute_fz(f_x, f_z, z, z_exp=self.z_exp, gamma=self.gamma)
            ratio = 1.0 / f_z.clamp(max=-FZ_GUARD)
            if self.time_var == "log_z":
                ratio = ratio * z
            return f_x * ratio.reshape(-1, *([1] * (x.ndim - 1)))

        return f

    def finalize(self, model: nn.Module, x: Tensor, t: Tensor, *, dtype: torch.dtype) -> Tensor:
        """The state at z_min is the sample (no denoising step)."""
        return x

    @property
    def final_nfe(self) -> int:
        """`finalize` calls no network."""
        return 0

    def log_prior(self, x: Tensor) -> Tensor:
        """log of (2 z_max / S_N(1))·(‖x‖² + z_max²)^(−(N+1)/2), the exact unclipped normaliser."""
        return log_kernel(x, self.z_max, 1.0)

    def physical(self, t: float) -> dict[str, float]:
        """The height z above the data plane."""
        return {"z": math.exp(t) if self.time_var == "log_z" else t}

    def progress(self, t: float) -> float:
        """ln(z_max/z) / ln(z_max/z_min), clamped to [0, 1]."""
        z = self.physical(t)["z"]
        p = math.log(self.z_max / z) / math.log(self.z_max / self.z_min)
        return min(max(p, 0.0), 1.0)

    def noise_edges(self, bins: int) -> list[float]:
        """Log-spaced z bins from 1e−4·z_max to 3·z_max (training z reaches ~z_max·|g|)."""
        return log_uniform(bins + 1, 1e-4 * self.z_max, 3 * self.z_max).tolist()
