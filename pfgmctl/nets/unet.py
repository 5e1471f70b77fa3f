"""DDPM++ / NCSN++ U-Net for images (Song et al. 2021), after EDM's `SongUNet` (Karras et al. 2022, App. F.2).

Raw-net contract: `UNet(item_shape, *, out_extra, num_classes, augment_dim, **options)` and
`forward(x, c_noise, labels=None, aug_labels=None) -> [B, C + out_extra, H, W]`.

- `arch="ddpmpp"`: standard encoder/decoder, resample filter [1, 1], noise embedding of width model_channels.
- `arch="ncsnpp"`: residual encoder (progressive input paths), resample filter [1, 3, 3, 1],
  noise embedding of width 2·model_channels (channel_mult_noise 2).
- Shared: BigGAN-style residual blocks with a per-channel bias from the embedding, skip scale √0.5,
  single-head self-attention at `attn_resolutions` and in the bottleneck, GroupNorm with
  min(32, ch/4) groups, xavier-uniform init, output conv initialised at 1e−5 scale.

With `out_extra = 1` the last channel is the PFGM z-head (`FieldHead` takes its spatial mean; pfgm.md §2.4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.functional import silu

from pfgmctl.nets.embedding import FourierEmbedding, PositionalEmbedding, on_default_device

ARCHS = ("ddpmpp", "ncsnpp")
EMBEDDINGS = ("positional", "fourier")
SKIP_SCALE = math.sqrt(0.5)
"""Residual and attention outputs are scaled by √0.5 (score_sde `skip_rescale`)."""
OUT_INIT = 1e-5
"""Scale of the zero-ish init on each block's second conv, the attention projection and the output conv."""
ATTN_INIT = math.sqrt(0.2)
"""Init gain of the qkv projection (EDM)."""
EPS = 1e-6


def _xavier(shape: Sequence[int], fan_in: int, fan_out: int, gain: float) -> Tensor:
    """U(−a, a), a = gain·√(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), from the global RNG."""
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(*shape).uniform_(-bound, bound)


def group_count(channels: int) -> int:
    """GroupNorm groups: min(32, channels/4) as EDM, reduced to a divisor of `channels` (≥ 1)."""
    return math.gcd(channels, max(1, min(32, channels // 4)))


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(group_count(channels), channels, eps=EPS)


class Linear(nn.Module):
    """y = x·Wᵀ + b with xavier-uniform W (times `gain`) and zero b."""

    def __init__(self, n_in: int, n_out: int, *, bias: bool = True, gain: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(_xavier((n_out, n_in), n_in, n_out, gain))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


class Conv2d(nn.Module):
    """k×k conv with optional 2× up/down resampling by a separable FIR filter (EDM `Conv2d`).

    `kernel = 0` resamples only. `fused` (down only) applies the conv before the filter, as the
    NCSN++ residual input path does.
    """

    resample_filter: Tensor | None

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        *,
        bias: bool = True,
        up: bool = False,
        down: bool = False,
        resample_filter: Sequence[int] = (1, 1),
        fused: bool = False,
        gain: float = 1.0,
    ) -> None:
        super().__init__()
        if up and down:
            raise ValueError("Conv2d: up and down are exclusive")
        self.c_in, self.c_out, self.up, self.down, self.fused = c_in, c_out, up, down, fused
        fan_in, fan_out = c_in * kernel * kernel, c_out * kernel * kernel
        shape = (c_out, c_in, kernel, kernel)
        self.weight = nn.Parameter(_xavier(shape, fan_in, fan_out, gain)) if kernel else None
        self.bias = nn.Parameter(torch.zeros(c_out)) if kernel and bias else None
        f = torch.as_tensor(list(resample_filter), dtype=torch.float32, device="cpu")
        f = on_default_device(torch.outer(f, f)[None, None] / f.sum().square())
        self.register_buffer("resample_filter", f if up or down else None, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        w, f = self.weight, self.resample_filter
        w_pad = w.shape[-1] // 2 if w is not None else 0
        f_pad = (f.shape[-1] - 1) // 2 if f is not None else 0
        conv = nn.functional.conv2d
        if self.fused and self.down and w is not None and f is not None:
            x = conv(x, w, padding=w_pad + f_pad)
            x = conv(x, f.to(x.dtype).tile(self.c_out, 1, 1, 1), groups=self.c_out, stride=2)
        else:
            if self.up and f is not None:
                f4 = (f * 4).to(x.dtype).tile(self.c_in, 1, 1, 1)
                x = nn.functional.conv_transpose2d(x, f4, groups=self.c_in, stride=2, padding=f_pad)
            if self.down and f is not None:
                fd = f.to(x.dtype).tile(self.c_in, 1, 1, 1)
                x = conv(x, fd, groups=self.c_in, stride=2, padding=f_pad)
            if w is not None:
                x = conv(x, w, padding=w_pad)
        if self.bias is not None:
            x = x + self.bias.reshape(1, -1, 1, 1)
        return x


class UNetBlock(nn.Module):
    """BigGAN-style residual block (score_sde `ResnetBlockBigGANpp`) with optional resampling and attention.

    h = conv1(drop(SiLU(norm1(conv0(SiLU(norm0(x))) + affine(emb)))));  x ← (h + skip(x))·√0.5;
    with attention: x ← (proj(softmax(qᵀk/√C)·v) + x)·√0.5 (one head).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        emb_channels: int,
        *,
        up: bool = False,
        down: bool = False,
        attention: bool = False,
        dropout: float = 0.0,
        resample_filter: Sequence[int] = (1, 1),
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.dropout, self.attention = c_in, c_out, dropout, attention
        rs = {"up": up, "down": down, "resample_filter": resample_filter}
        self.norm0 = _norm(c_in)
        self.conv0 = Conv2d(c_in, c_out, 3, **rs)  # type: ignore[arg-type]
        self.affine = Linear(emb_channels, c_out)
        self.norm1 = _norm(c_out)
        self.conv1 = Conv2d(c_out, c_out, 3, gain=OUT_INIT)
        self.skip = None
        if c_out != c_in or up or down:
            self.skip = Conv2d(c_in, c_out, 1, **rs)  # type: ignore[arg-type]  # EDM resample_proj
        if attention:
            self.norm2 = _norm(c_out)
            self.qkv = Conv2d(c_out, c_out * 3, 1, gain=ATTN_INIT)
            self.proj = Conv2d(c_out, c_out, 1, gain=OUT_INIT)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        orig = x
        x = self.conv0(silu(self.norm0(x)))
        x = silu(self.norm1(x + self.affine(emb)[:, :, None, None].to(x.dtype)))
        x = self.conv1(nn.functional.dropout(x, p=self.dropout, training=self.training))
        x = (x + (self.skip(orig) if self.skip is not None else orig)) * SKIP_SCALE
        if self.attention:
            b, c, h, w = x.shape
            q, k, v = self.qkv(self.norm2(x)).reshape(b, c, 3, h * w).unbind(2)
            a = nn.functional.scaled_dot_product_attention(
                q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None], v.transpose(1, 2)[:, None]
            )  # [B, 1, HW, C]
            x = (self.proj(a[:, 0].transpose(1, 2).reshape(b, c, h, w)) + x) * SKIP_SCALE
        return x


def check_resolution(item_shape: Sequence[int], levels: int) -> tuple[int, int, int]:
    """(C, H, W) of an image item; H and W must be divisible by 2^(levels − 1)."""
    if len(item_shape) != 3:
        raise ValueError(
            f"unet: items must be images [C, H, W], got shape {list(item_shape)}; use net.kind = 'mlp'"
        )
    c, h, w = (int(s) for s in item_shape)
    factor = 2 ** (levels - 1)
    if h % factor or w % factor:
        raise ValueError(
            f"unet: image size {h}x{w} is not divisible by 2^(len(channel_mult) - 1) = {factor}; "
            f"use a shorter net.channel_mult (at most {_max_levels(h, w)} entries)"
        )
    return c, h, w


def _max_levels(h: int, w: int) -> int:
    levels = 1
    while h % (2**levels) == 0 and w % (2**levels) == 0:
        levels += 1
    return levels


class UNet(nn.Module):
    """SongUNet (DDPM++ / NCSN++) for items of `item_shape` = (C, H, W); returns [B, C + out_extra, H, W].

    Resolution level ℓ works at H/2^ℓ × W/2^ℓ with model_channels·channel_mult[ℓ] channels and
    `num_blocks` residual blocks (decoder: num_blocks + 1, each taking a skip). `attn_resolutions`
    are matched against the height at each level. Class labels (int64 [B]) enter as a one-hot
    vector × √num_classes through a linear map added to the noise embedding (EDM `map_label`);
    augmentation labels [B, augment_dim] through a bias-free linear map (EDM `map_augment`).
    """

    def __init__(
        self,
        item_shape: tuple[int, ...],
        *,
        out_extra: int = 0,
        num_classes: int = 0,
        augment_dim: int = 0,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (2, 2, 2),
        num_blocks: int = 4,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.1,
        embedding: str = "positional",
        arch: str = "ddpmpp",
        channel_mult_emb: int = 4,
    ) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unet: arch {arch!r} is not one of {', '.join(ARCHS)}")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"unet: embedding {embedding!r} is not one of {', '.join(EMBEDDINGS)}")
        if not channel_mult:
            raise ValueError("unet: channel_mult needs at least one entry")
        img_c, img_h, img_w = check_resolution(item_shape, len(channel_mult))
        self.item_shape = (img_c, img_h, img_w)
        self.out_channels = img_c + out_extra
        self.num_classes, self.augment_dim = num_classes, augment_dim
        residual_input = arch == "ncsnpp"
        flt: tuple[int, ...] = (1, 3, 3, 1) if arch == "ncsnpp" else (1, 1)
        emb_ch = model_channels * channel_mult_emb
        noise_ch = model_channels * (2 if arch == "ncsnpp" else 1)
        attn = set(attn_resolutions)

        # Mapping: noise (+ label + augment) embedding → two linear layers with SiLU.
        self.map_noise: nn.Module = (
            PositionalEmbedding(noise_ch)
            if embedding == "positional"
            else FourierEmbedding(noise_ch)
        )
        self.map_label = Linear(num_classes, noise_ch) if num_classes else None
        self.map_augment = Linear(augment_dim, noise_ch, bias=False) if augment_dim else None
        self.map_layer0 = Linear(noise_ch, emb_ch)
        self.map_layer1 = Linear(emb_ch, emb_ch)

        def block(c_in: int, c_out: int, **kw: bool) -> UNetBlock:
            return UNetBlock(c_in, c_out, emb_ch, dropout=dropout, resample_filter=flt, **kw)

        # Encoder.
        self.enc = nn.ModuleDict()
        skips: list[int] = []
        c_out, c_aux = img_c, img_c
        for level, mult in enumerate(channel_mult):
            res = img_h >> level
            if level == 0:
                self.enc[f"{res}_conv"] = Conv2d(c_out, model_channels, 3)
                c_out = model_channels
            else:
                self.enc[f"{res}_down"] = block(c_out, c_out, down=True)
                if residual_input:
                    self.enc[f"{res}_aux_residual"] = Conv2d(
                        c_aux, c_out, 3, down=True, resample_filter=flt, fused=True
                    )
                    c_aux = c_out
            skips.append(c_out)
            for idx in range(num_blocks):
                c_in, c_out = c_out, model_channels * mult
                self.enc[f"{res}_block{idx}"] = block(c_in, c_out, attention=res in attn)
                skips.append(c_out)

        # Decoder: bottleneck (attention always), then per level an upsampler and num_blocks + 1 skip blocks.
        self.dec = nn.ModuleDict()
        self._takes_skip: set[str] = set()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_h >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}_in0"] = block(c_out, c_out, attention=True)
                self.dec[f"{res}_in1"] = block(c_out, c_out)
            else:
                self.dec[f"{res}_up"] = block(c_out, c_out, up=True)
            for idx in range(num_blocks + 1):
                c_in, c_out = c_out + skips.pop(), model_channels * mult
                name = f"{res}_block{idx}"
                self.dec[name] = block(c_in, c_out, attention=idx == num_blocks and res in attn)
                self._takes_skip.add(name)
        self.out_norm = _norm(c_out)
        self.out_conv = Conv2d(c_out, self.out_channels, 3, gain=OUT_INIT)

    def embed(self, c_noise: Tensor, labels: Tensor | None, aug_labels: Tensor | None) -> Tensor:
        """Conditioning vector [B, emb_channels] from c_noise, class labels and augmentation labels."""
        emb = self.map_noise(c_noise)
        if self.map_label is not None:
            if labels is None:
                raise ValueError(
                    f"unet: this net is class-conditional ({self.num_classes} classes): pass labels"
                )
            if labels.ndim != 1 or labels.dtype.is_floating_point:
                raise ValueError("unet: labels must be int64 class indices of shape [B]")
            one_hot = nn.functional.one_hot(labels.long(), self.num_classes).to(emb.dtype)
            emb = emb + self.map_label(one_hot * math.sqrt(self.num_classes))
        if self.map_augment is not None and aug_labels is not None:
            emb = emb + self.map_augment(aug_labels.to(emb.dtype))
        return silu(self.map_layer1(silu(self.map_layer0(emb))))

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> Tensor:
        if tuple(x.shape[1:]) != self.item_shape:
            raise ValueError(
                f"unet: expected items {list(self.item_shape)}, got {list(x.shape[1:])}"
            )
        dtype = torch.promote_types(x.dtype, torch.float32)
        c = torch.as_tensor(c_noise, device=x.device).to(dtype).expand(x.shape[0])
        emb = self.embed(c, labels, aug_labels)

        skips: list[Tensor] = []
        aux = x
        for name, layer in self.enc.items():
            if name.endswith("aux_residual"):  # NCSN++ progressive input: (h + conv↓(aux)) / √2
                x = skips[-1] = aux = (x + layer(aux)) * SKIP_SCALE
            else:
                x = layer(x, emb) if isinstance(layer, UNetBlock) else layer(x)
                skips.append(x)
        for name, layer in self.dec.items():
            if name in self._takes_skip:
                x = torch.cat([x, skips.pop()], dim=1)
            x = layer(x, emb)
        return self.out_conv(silu(self.out_norm(x)))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (works on the meta device)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
