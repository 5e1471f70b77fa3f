"""Frozen, strictly validated profile models (architecture.md §6).

A profile is five tables: `[method]`, `[net]`, `[data]`, `[train]`, `[sample]`. Every table is a
pydantic model with `extra="forbid"`, so an unknown key is an error naming its dotted path.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

PosFloat = Annotated[float, Field(gt=0)]
PosInt = Annotated[int, Field(gt=0)]


class PFGMPPMethod(BaseModel):
    """PFGM++ (Xu et al. 2023): `aug_dim` is D, any positive real or `inf` (the EDM limit)."""

    model_config = _STRICT
    kind: Literal["pfgmpp"] = "pfgmpp"
    aug_dim: Annotated[float, Field(gt=0, allow_inf_nan=True)] = 128.0
    p_mean: float = -1.2
    p_std: PosFloat = 1.2
    sigma_data: PosFloat = 0.5
    sigma_min: PosFloat = 0.002
    sigma_max: PosFloat = 80.0
    rho: PosFloat = 7.0

    @field_validator("aug_dim")
    @classmethod
    def _not_nan(cls, v: float) -> float:
        if math.isnan(v):
            raise ValueError("must be a positive number or inf")
        return v


class PFGMMethod(BaseModel):
    """PFGM (Xu et al. 2022). Omitted `m`, `z_max`, `upper_norm`, `z_exp` are derived from the data."""

    model_config = _STRICT
    kind: Literal["pfgm"] = "pfgm"
    sigma: PosFloat = 0.01
    tau: PosFloat = 0.03
    gamma: Annotated[float, Field(ge=0)] = 5.0
    restrict_m: bool = True
    n_charges: PosInt = 4096
    z_min: PosFloat = 1e-3
    prior_clip: bool = True
    m: PosFloat | None = None
    z_max: PosFloat | None = None
    upper_norm: PosFloat | None = None
    z_exp: Annotated[float, Field(ge=0)] | None = None
    time_var: Literal["log_z", "z"] = "log_z"
    c_noise: Literal["log_z", "z"] = (
        "log_z"  # what the raw net is conditioned on (the DDPM++ reference: raw z)
    )
    reduce_mean: bool = (
        False  # loss = mean over the N+1 entries instead of ½·sum (the LSUN reference)
    )


MethodConfig = Annotated[PFGMPPMethod | PFGMMethod, Field(discriminator="kind")]


class MLPNet(BaseModel):
    """Residual MLP for vector data (flattened), conditioned on an embedding of c_noise."""

    model_config = _STRICT
    kind: Literal["mlp"] = "mlp"
    precond: Literal["edm", "field"] | None = None  # None: the method's natural choice
    hidden: PosInt = 256
    blocks: PosInt = 3
    emb_dim: PosInt = 64
    embedding: Literal["positional", "fourier"] = "positional"
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0


class UNetNet(BaseModel):
    """DDPM++ / NCSN++ U-Net for images (Song et al. 2021; EDM's SongUNet), owned by nets/unet.py.

    Defaults are EDM's CIFAR-10 DDPM++ (55.73M parameters). `arch` picks the encoder and resample
    filter (ddpmpp: standard, [1,1]; ncsnpp: residual, [1,3,3,1], 2× noise channels); `embedding`
    the noise embedding (positional for DDPM++, fourier for NCSN++). Image height and width must be
    divisible by 2^(len(channel_mult) − 1); `attn_resolutions` are heights (empty: bottleneck only).
    """

    model_config = _STRICT
    kind: Literal["unet"] = "unet"
    precond: Literal["edm", "field"] | None = None
    arch: Literal["ddpmpp", "ncsnpp"] = "ddpmpp"
    model_channels: PosInt = 128
    channel_mult: Annotated[tuple[PosInt, ...], Field(min_length=1)] = (2, 2, 2)
    num_blocks: PosInt = 4
    attn_resolutions: tuple[PosInt, ...] = (16,)
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    embedding: Literal["positional", "fourier"] = "positional"

    @field_validator("channel_mult", "attn_resolutions", mode="before")
    @classmethod
    def _list_to_tuple(cls, v: object) -> object:
        """TOML arrays arrive as lists; the (strict) schema stores tuples."""
        return tuple(v) if isinstance(v, list) else v


NetConfig = Annotated[MLPNet | UNetNet, Field(discriminator="kind")]


class ToyData(BaseModel):
    """A built-in 2-D toy drawn once (`n` points, seeded) and then sampled by rows."""

    model_config = _STRICT
    kind: Literal["toy"] = "toy"
    name: str = "checkerboard"
    n: PosInt = 20_000
    seed: int = 0
    holdout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    scale: float = 1.0
    shift: float = 0.0


class ArrayData(BaseModel):
    """A `.npy` / `.npz` array of shape [n, ...], used as-is unless scaled.

    Image arrays: `pixels = "uint8"` maps integer pixels 0..255 to [−1, 1] (k/127.5 − 1) and
    `layout = "nhwc"` reorders [n, H, W, C] (or [n, H, W]) to [n, C, H, W]. `labels_key` names an
    int array [n] of class indices 0..K−1 in the same .npz (needed for `conditional`).
    """

    model_config = _STRICT
    kind: Literal["array"] = "array"
    path: str = ""
    key: str | None = None
    labels_key: str | None = None
    conditional: bool = False
    pixels: Literal["as_is", "uint8"] = "as_is"
    layout: Literal["as_is", "nchw", "nhwc"] = "as_is"
    n: PosInt | None = None
    holdout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    scale: float = 1.0
    shift: float = 0.0


class DigitsData(BaseModel):
    """scikit-learn's bundled 8×8 digits (the `data` extra), pixels mapped to [−1, 1]."""

    model_config = _STRICT
    kind: Literal["digits"] = "digits"
    n: PosInt | None = None
    conditional: bool = False  # train on (image, label); sample with --class
    holdout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    scale: float = 1.0
    shift: float = 0.0


class ImageData(BaseModel):
    """Keys shared by the image sources: pixels in [−1, 1], per-step `xflip` and `dequantize`."""

    model_config = _STRICT
    kind: str  # each source narrows it to its Literal (the tag of DataConfig)
    holdout: Annotated[float, Field(ge=0, lt=1)] = 0.0
    conditional: bool = False  # train on (image, label); sample with --class
    xflip: bool = False  # random horizontal flip of every row, every step
    dequantize: bool = False  # uniform noise over one 8-bit level, every step
    scale: float = 1.0
    shift: float = 0.0


class FolderData(ImageData):
    """A folder of png/jpg images (recursive), centre-cropped and resized to `resolution`.

    With `conditional`, labels are the first-level sub-folder names, sorted.
    """

    kind: Literal["folder"] = "folder"
    path: str = ""
    resolution: PosInt = 32
    crop: PosInt | None = None  # centre-crop side in source pixels (CelebA: 140); None = shorter
    n: PosInt | None = None
    skip_bad: bool = False  # skip unreadable files with a warning instead of failing


class Cifar10Data(ImageData):
    """CIFAR-10 from a local `cifar-10-batches-py` directory (no download)."""

    kind: Literal["cifar10"] = "cifar10"
    path: str = "data/cifar-10-batches-py"
    n: PosInt | None = None


class ShapesData(ImageData):
    """Procedural images drawn with Pillow (discs, squares, triangles; label = shape), for CPU tests."""

    kind: Literal["shapes"] = "shapes"
    n: PosInt = 2000
    resolution: PosInt = 16
    channels: Literal[1, 3] = 3
    seed: int = 0
    holdout: Annotated[float, Field(ge=0, lt=1)] = 0.1


DataConfig = Annotated[
    ToyData | ArrayData | DigitsData | FolderData | Cifar10Data | ShapesData,
    Field(discriminator="kind"),
]


class TrainConfig(BaseModel):
    """Optimisation and bookkeeping; durations, warm-up and EMA half-life in kimg."""

    model_config = _STRICT
    batch_size: PosInt = 256
    lr: PosFloat = 1e-3
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta2: Annotated[float, Field(ge=0, lt=1)] = 0.999
    kimg: PosFloat = 100.0
    warmup_kimg: Annotated[float, Field(ge=0)] = 5.0
    ema_halflife_kimg: Annotated[float, Field(ge=0)] = 10.0
    ema_rampup: Annotated[float, Field(ge=0)] | None = 0.05
    grad_clip: Annotated[float, Field(ge=0)] = 1.0
    tick_kimg: PosFloat = 5.0
    ckpt_ticks: PosInt = 10
    keep_ckpts: PosInt = 3
    loss_bins: PosInt = 8
    preview_n: Annotated[int, Field(ge=0)] = 64
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    micro_batch: PosInt | None = None  # per-device batch cap: larger batches accumulate gradients
    augment: Annotated[float, Field(ge=0, le=1)] = 0.0  # EDM augment probability (9-dim labels)
    amp: Literal["off", "bf16"] = "off"  # autocast on CUDA (off on CPU)
    compile: bool = False  # torch.compile the model
    channels_last: bool = False  # memory format for image nets on CUDA
    tf32: bool = True  # TF32 matmuls on Ampere+ CUDA
    eval_every_kimg: Annotated[float, Field(ge=0)] = 0.0  # 0 = no evaluation during training
    eval_n: Annotated[int, Field(ge=2)] = 1000
    eval_metric: Literal["auto", "swd", "energy", "mmd", "kid", "nn1", "fd_digits"] = "auto"
    max_bad_steps: PosInt = 20  # consecutive non-finite losses before the run stops


class SampleConfig(BaseModel):
    """Defaults for `pfgmctl sample` and the training previews."""

    model_config = _STRICT
    solver: str = "heun"
    steps: PosInt = 18
    rtol: PosFloat = 1e-4
    atol: PosFloat = 1e-4
    batch: PosInt = 1024


class DistillConfig(BaseModel):
    """IPFM distillation (pfgmpp_ipfm.md part B); durations and EMA half-life in kimg.

    Defaults are the paper's (SiD settings at the teacher's D with α = 1.0, §B6; Adam β1 = 0, σ_init
    2.5, t_max 800, §B5); toy profiles scale lr, batch and kimg.
    """

    model_config = _STRICT
    teacher: str = ""  # the teacher checkpoint (written by `pfgmctl distill`; for the record)
    alpha: Annotated[float, Field(ge=0)] = 1.0  # ℓ_α regulariser; 0.5 = plain IPFM (§B4)
    sigma_init: PosFloat = 2.5  # generator input ε₀ ~ p_{σ_init√D}(·|0), G(ε₀) = D_θ(ε₀, σ_init)
    t_max: Annotated[int, Field(gt=0, le=1000)] = 800  # generator-loss σ from u ~ U[0, t_max/1000]
    steps: PosInt = 1  # K generator evaluations per sample (K > 1: re-noise with the kernel)
    sigma_last: PosFloat = 0.5  # lowest re-noising level of the K-step chain (K > 1)
    fake_updates: PosInt = 1  # fake-field (ψ) updates per generator update (authors' D=2048: 2)
    batch_size: PosInt = 256
    lr_g: PosFloat = 1e-5
    lr_f: PosFloat = 1e-5
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.0
    beta2: Annotated[float, Field(ge=0, lt=1)] = 0.999
    kimg: PosFloat = 500_000.0
    ema_halflife_kimg: Annotated[float, Field(ge=0)] = 500.0
    ema_rampup: Annotated[float, Field(ge=0)] | None = 0.05
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0  # in G and ψ (the authors' run: 0, §B8)
    tick_kimg: PosFloat = 50.0
    ckpt_ticks: PosInt = 10
    keep_ckpts: PosInt = 3
    preview_n: Annotated[int, Field(ge=0)] = 64
    max_bad_steps: PosInt = 20  # consecutive non-finite losses before the run stops
    seed: int = 0


class Profile(BaseModel):
    """A whole profile. `name` is taken from the file name when omitted."""

    model_config = _STRICT
    name: str = ""
    description: str = ""
    method: MethodConfig = Field(default_factory=PFGMPPMethod)
    net: NetConfig = Field(default_factory=MLPNet)
    data: DataConfig = Field(default_factory=ToyData)
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    distill: DistillConfig = Field(default_factory=DistillConfig)

    @property
    def precond(self) -> str:
        """The preconditioner: explicit in `[net]`, else the method's natural one."""
        if self.net.precond is not None:
            return self.net.precond
        return "field" if self.method.kind == "pfgm" else "edm"
