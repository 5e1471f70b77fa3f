"""IPFM (pfgmpp_ipfm.md part B) maths: the generator and fake-net losses, the t_max grid, the
K-step generator chain. Pure functions of tensors and networks; the loop is engine/distill.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from pfgmctl.methods.base import LossOut
from pfgmctl.methods.pfgmpp import PFGMPP
from pfgmctl.physics.kernels import Generators, sample_noise


def sigma_levels(steps: int, sigma_init: float, sigma_last: float) -> list[float]:
    """The generator's K input levels: σ_init, then geometric down to σ_last (K = 1: [σ_init]).

    Step 0 maps kernel noise at σ_init to a sample (§B5); step k > 0 re-noises the previous sample
    at σ_k with the PFGM++ kernel and maps it again (the few-step variant, §B5; levels *derived*).
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps == 1:
        return [float(sigma_init)]
    ratio = sigma_last / sigma_init
    return [float(sigma_init * ratio ** (k / (steps - 1))) for k in range(steps)]


def tmax_sigma(u: Tensor, *, sigma_min: float, sigma_max: float, rho: float) -> Tensor:
    """σ = (σ_max^{1/ρ} + (1 − u)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ for u ~ U[0, t_max/1000] (§B5.2).

    u = 0.8 (t_max = 800) gives σ = 24.41 with the EDM defaults; u = 0 gives σ_min.
    """
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (hi + (1 - u) * (lo - hi)) ** rho


def sid_weight(y: Tensor, y_real: Tensor) -> Tensor:
    """SiD's per-sample weight w = 1/max(mean_pixels|y − D_φ(x, σ)|, 1e−5), detached (§B5.2, §B4)."""
    return 1.0 / (y - y_real).detach().abs().flatten(1).mean(1).clamp_min(1e-5)


def sid_loss(y: Tensor, y_real: Tensor, y_fake: Tensor, alpha: float) -> Tensor:
    """ℓ_α = (D_φ − D_ψ)·[(D_φ − y) − α(D_φ − D_ψ)], summed over pixels, [B] (§B4).

    ℓ_α = ½ℓ_IPFM − (α − ½)‖D_φ − D_ψ‖²: α = ½ is plain IPFM, α = 1 the paper's default.
    """
    diff = y_real - y_fake
    return (diff * ((y_real - y) - alpha * diff)).flatten(1).sum(1)


def ipfm_loss(y: Tensor, y_real: Tensor, y_fake: Tensor) -> Tensor:
    """ℓ_IPFM = ‖D_φ(x, σ) − y‖² − ‖D_ψ(x, σ) − y‖² per sample, [B] (§B3)."""
    return (y_real - y).square().flatten(1).sum(1) - (y_fake - y).square().flatten(1).sum(1)


def generator_loss(
    teacher: nn.Module,
    fake: nn.Module,
    y: Tensor,
    *,
    method: PFGMPP,
    alpha: float,
    t_max: int,
    gen: torch.Generator,
    labels: Tensor | None = None,
) -> LossOut:
    """w·ℓ_α on generator samples y (§B5.2): σ on the t_max grid, x = y + n, n ~ p_{σ√D}(·|0).

    Gradients reach θ through y, both as the target and inside the inputs of D_φ and D_ψ; ψ is held
    fixed by the caller. The EDM λ(σ) is not used here (SiD weighting instead). SiD's × 100 loss
    scale is left out: Adam is invariant to it (up to eps).
    """
    b = y.shape[0]
    u = torch.rand(b, dtype=torch.float64, device=y.device, generator=gen) * (t_max / 1000)
    sigma = tmax_sigma(u, sigma_min=method.sigma_min, sigma_max=method.sigma_max, rho=method.rho)
    n = sample_noise(tuple(y.shape), sigma, method.aug_dim, generator=gen, device=y.device)
    x, s = y + n.to(y.dtype), sigma.to(y.dtype)
    y_real, y_fake = teacher(x, s, labels), fake(x, s, labels)
    return LossOut(sid_weight(y, y_real) * sid_loss(y, y_real, y_fake, alpha), sigma)


def fake_loss(
    method: PFGMPP,
    fake: nn.Module,
    y: Tensor,
    *,
    gen: torch.Generator,
    labels: Tensor | None = None,
) -> LossOut:
    """λ(σ)‖D_ψ(y + n, σ) − y‖² on (detached) generator samples: the PFGM++ loss L(D_ψ; p_θ) (§B2, §B5.1)."""
    return method.loss(fake, y.detach(), gen=gen, labels=labels)


def generate(
    net: nn.Module,
    eps: Tensor,
    levels: Sequence[float],
    aug_dim: float,
    *,
    gen: Generators,
    labels: Tensor | None = None,
    on_step: Callable[[int, float, Tensor], None] | None = None,
) -> Tensor:
    """ŷ_0 = G(ε₀, σ_0); x_k = ŷ_{k−1} + n_k with n_k ~ p_{σ_k√D}(·|0); ŷ_k = G(x_k, σ_k) (§B5).

    `eps` is the kernel input at σ_0 = σ_init (float64); returns the last ŷ in the net's dtype.
    Re-noising draws come from `gen` (one generator per row for per-seed sampling).
    """
    dtype = next(iter(net.parameters())).dtype
    x = eps
    y = x
    for k, sigma in enumerate(levels):
        if k > 0:
            x = y.to(torch.float64) + sample_noise(
                tuple(y.shape), sigma, aug_dim, generator=gen, device=y.device
            )
        s = torch.full((x.shape[0],), sigma, dtype=dtype, device=x.device)
        y = net(x.to(dtype), s, labels)
        if on_step is not None:
            on_step(k, sigma, y)
    return y
