"""Perturbed sampling for robustness studies (pfgmpp_ipfm.md §A7): noise injection and quantisation.

The third perturbation of the paper, fewer steps, is just `steps` in `sampling.sample`. Solvers stay
pure: noise injection runs the ordinary solver one grid interval at a time and perturbs the state
between intervals.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pfgmctl.methods.base import Method, model_dtype
from pfgmctl.sampling import SampleResult, prior_for_seeds
from pfgmctl.solvers import is_adaptive, solve

SKIP_TYPES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Embedding,
)
SKIP_NAMES = frozenset({"norm", "out_norm", "embed", "emb", "map", "affine"})
"""Module names never quantised: norms, the noise-embedding/mapping net and per-block affines (§A7.3)."""


def noise_scale(method: Method, t: float) -> float:
    """The physical noise level at solver time t: σ (PFGM++), or z (PFGM, where σ = r/√D = z)."""
    phys = method.physical(t)
    return phys["sigma"] if "sigma" in phys else phys["z"]


def _step_noise(
    x: Tensor, alpha: float, scale: float, gen: torch.Generator, device: torch.device
) -> Tensor:
    eps = torch.randn(x.shape, dtype=torch.float64, generator=gen, device=device)
    return x + alpha * scale * eps


@torch.no_grad()
def sample_noisy(
    method: Method,
    model: nn.Module,
    *,
    seeds: Sequence[int],
    shape: tuple[int, ...],
    alpha: float,
    solver: str = "heun",
    steps: int = 18,
    noise_seed: int = 0,
    device: torch.device | str = "cpu",
    batch: int = 1024,
) -> SampleResult:
    """Sample with x ← x + α·σ_i·ε before every step i (and before `finalize`) (PFGM++ §6.2, Fig. 4).

    ε ~ N(0, I) comes from one generator seeded by `noise_seed` per batch; α = 0 reproduces
    `sampling.sample` exactly. Fixed-step solvers only.
    """
    if is_adaptive(solver):
        raise ValueError(f"noise injection needs a fixed-step solver (euler, heun), not {solver!r}")
    if alpha < 0 or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha}")
    device = torch.device(device)
    dtype = model_dtype(model)
    x0, clipped = prior_for_seeds(method, seeds, shape, device)
    ts = method.grid(steps, device=device)
    rhs = method.rhs(model, dtype=dtype)
    outs, nfes = [], []
    for start in range(0, len(x0), batch):
        gen = torch.Generator(device=device).manual_seed(noise_seed * 1_000_003 + start)
        x, nfe = x0[start : start + batch], 0
        for i in range(len(ts) - 1):
            if alpha > 0:
                x = _step_noise(x, alpha, noise_scale(method, float(ts[i])), gen, device)
            sol = solve(rhs, x, ts[i : i + 2], solver=solver)
            x, nfe = sol.x, nfe + sol.nfe
        if alpha > 0 and method.final_nfe > 0:
            x = _step_noise(x, alpha, noise_scale(method, float(ts[-1])), gen, device)
        outs.append(method.finalize(model, x, ts[-1], dtype=dtype).float().cpu())
        nfes.append(nfe + method.final_nfe)
    share = float(clipped.float().mean()) if len(clipped) else 0.0
    return SampleResult(torch.cat(outs), max(nfes, default=0), nfes, share)


def quantize_tensor(t: Tensor, bits: int) -> Tensor:
    """Per-tensor min–max uniform quantisation to 2^bits levels, then dequantisation."""
    if bits < 1:
        raise ValueError(f"bits must be ≥ 1, got {bits}")
    lo, hi = t.min(), t.max()
    if not bool(hi > lo):
        return t.clone()
    step = (hi - lo) / (2**bits - 1)
    return ((t - lo) / step).round() * step + lo


def _skipped(name: str, module: nn.Module) -> bool:
    """True for norm/embedding modules, by type or by a component of the dotted module name."""
    return isinstance(module, SKIP_TYPES) or any(p in SKIP_NAMES for p in name.split("."))


def quantizable(model: nn.Module) -> list[str]:
    """Names of the parameters `quantize_model` quantises."""
    names = []
    for mod_name, module in model.named_modules():
        if _skipped(mod_name, module):
            continue
        for p_name, _ in module.named_parameters(recurse=False):
            names.append(f"{mod_name}.{p_name}" if mod_name else p_name)
    return names


def quantize_model(model: nn.Module, bits: int) -> nn.Module:
    """A copy of `model` with every quantisable weight and bias quantised to `bits` (§A7.3)."""
    out = copy.deepcopy(model)
    keep = set(quantizable(out))
    with torch.no_grad():
        for name, p in out.named_parameters():
            if name in keep:
                p.copy_(quantize_tensor(p, bits))
    return out
