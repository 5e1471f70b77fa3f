"""Profile → method, model and device (registry lookups, never import strings)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pfgmctl.config.schema import PFGMMethod, PFGMPPMethod, Profile
from pfgmctl.data import Dataset, mean_norm
from pfgmctl.errors import ProfileError, UsageError
from pfgmctl.methods import PFGM, PFGMPP, ExactDenoiser, ExactField, Method
from pfgmctl.nets import EDMPrecond, FieldHead, build_raw
from pfgmctl.physics.field import heuristics

PRECOND_FOR = {"pfgmpp": "edm", "pfgm": "field"}


def check_precond(profile: Profile) -> None:
    """pfgmpp needs the `edm` preconditioner and pfgm the `field` head (architecture.md §5)."""
    want = PRECOND_FOR[profile.method.kind]
    if profile.precond != want:
        raise ProfileError(
            f"profile '{profile.name}': net.precond: method '{profile.method.kind}' needs "
            f'precond = "{want}" (got "{profile.precond}")'
        )


def resolve(profile: Profile, dataset: Dataset) -> Profile:
    """Fill what the profile leaves to the data: PFGM's m, z_max, upper_norm, z_exp; B_L ≤ data size.

    Heuristics of pfgm.md §2.6 from the mean data norm; z_exp defaults to z_max/8 (CIFAR's 5/40).
    """
    check_precond(profile)
    method = profile.method
    if not isinstance(method, PFGMMethod):
        return profile
    h = heuristics(
        mean_norm(dataset.train), dataset.data_dim, sigma=method.sigma, tau=method.tau, m=method.m
    )
    z_max = method.z_max if method.z_max is not None else h.z_max
    update = {
        "m": h.m,
        "z_max": z_max,
        "upper_norm": method.upper_norm if method.upper_norm is not None else h.upper_norm,
        "z_exp": method.z_exp if method.z_exp is not None else z_max / 8,
        "n_charges": min(method.n_charges, len(dataset.train)),
    }
    return profile.model_copy(update={"method": method.model_copy(update=update)})


def build_method(profile: Profile) -> Method:
    """The method object of a (resolved) profile."""
    cfg = profile.method
    if isinstance(cfg, PFGMPPMethod):
        return PFGMPP(**cfg.model_dump(exclude={"kind"}))
    missing = [k for k in ("m", "z_max", "upper_norm", "z_exp") if getattr(cfg, k) is None]
    if missing:
        raise ProfileError(f"profile '{profile.name}': method.{missing[0]} is not resolved")
    return PFGM(**cfg.model_dump(exclude={"kind"}))


AUGMENT_DIM = 9
"""EDM's augmentation labels: xflip, yflip, scale, rotate (cos, sin), aniso (3), translate (2) → 9."""


def build_model(profile: Profile, item_shape: tuple[int, ...], num_classes: int = 0) -> nn.Module:
    """Raw net from the registry wrapped in the method's preconditioner; init seeded by train.seed.

    `num_classes` > 0 makes the net class-conditional; `train.augment` > 0 conditions it on EDM's
    augmentation labels.
    """
    check_precond(profile)
    options = profile.net.model_dump(exclude={"kind", "precond"})
    options["num_classes"] = num_classes
    options["augment_dim"] = AUGMENT_DIM if profile.train.augment > 0 else 0
    out_extra = 1 if profile.precond == "field" else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(profile.train.seed)
        try:
            raw = build_raw(profile.net.kind, item_shape, out_extra=out_extra, **options)
        except ValueError as err:  # e.g. an image size the U-Net's levels cannot halve
            raise ProfileError(f"profile '{profile.name}': net: {err}") from None
    if profile.precond == "field":
        assert isinstance(profile.method, PFGMMethod)
        return FieldHead(raw, c_noise=profile.method.c_noise)
    assert isinstance(profile.method, PFGMPPMethod)
    return EDMPrecond(raw, sigma_data=profile.method.sigma_data)


def build_exact(profile: Profile, data: Tensor) -> nn.Module:
    """The exact empirical model of `data` under the profile's method (no training)."""
    cfg = profile.method
    if isinstance(cfg, PFGMPPMethod):
        return ExactDenoiser(data, cfg.aug_dim)
    return ExactField(data, cfg.gamma)


def pick_device(name: str) -> torch.device:
    """`auto` → cuda when available, else cpu; `cuda` / `mps` without that device: a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps: Apple MPS is not available here; use --device cpu or auto")
    return torch.device(name)
