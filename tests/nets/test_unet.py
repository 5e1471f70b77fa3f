"""DDPM++ / NCSN++ U-Net: shapes for both heads and archs, conditioning, parameter counts (EDM, score_sde)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from pfgmctl.config.schema import UNetNet
from pfgmctl.nets import NETS, EDMPrecond, FieldHead, build_raw
from pfgmctl.nets.unet import UNet, count_parameters, group_count

TINY = {"model_channels": 8, "num_blocks": 1, "dropout": 0.0}
"""Tiny options so every forward pass takes milliseconds."""

CONFIGS = [
    # (item_shape, channel_mult, attn_resolutions)
    ((1, 8, 8), (1, 2), ()),
    ((1, 16, 16), (1, 2, 2), (8,)),
    ((3, 32, 32), (1, 2, 2), (16,)),
    ((2, 8, 16), (1, 2), (4,)),  # non-square
    ((1, 28, 28), (1, 2, 2), (7,)),  # not a power of two: 28 → 14 → 7
]


def _net(
    shape: tuple[int, ...], mult: tuple[int, ...], attn: tuple[int, ...], **kw: object
) -> UNet:
    options: dict[str, object] = {**TINY, "channel_mult": mult, "attn_resolutions": attn, **kw}
    return UNet(shape, **options)  # type: ignore[arg-type]


def _randomise(model: nn.Module, seed: int) -> None:
    """Replace every parameter by N(0, 0.2²) so conditioning effects are O(1), not O(1e−5 init)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def _inputs(shape: tuple[int, ...], b: int, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, *shape, generator=gen), torch.randn(b, generator=gen)


@pytest.mark.parametrize("arch", ["ddpmpp", "ncsnpp"])
@pytest.mark.parametrize("out_extra", [0, 1])
@pytest.mark.parametrize(("shape", "mult", "attn"), CONFIGS)
def test_output_shape(
    arch: str, out_extra: int, shape: tuple[int, ...], mult: tuple[int, ...], attn: tuple[int, ...]
) -> None:
    emb = "fourier" if arch == "ncsnpp" else "positional"
    net = _net(shape, mult, attn, arch=arch, embedding=emb, out_extra=out_extra)
    x, c = _inputs(shape, 3, seed=1)
    out = net(x, c)
    assert out.shape == (3, shape[0] + out_extra, *shape[1:])
    assert torch.isfinite(out).all()


def test_heads_through_preconditioners() -> None:
    """FieldHead: f_x [B, C, H, W] and f_z = spatial mean of the extra channel; EDMPrecond: [B, C, H, W]."""
    shape = (1, 8, 8)
    raw = _net(shape, (1, 2), (), out_extra=1)
    _randomise(raw, seed=2)
    x, _ = _inputs(shape, 4, seed=3)
    z = torch.full((4,), 2.5)
    f_x, f_z = FieldHead(raw)(x, z)
    full = raw(x, z.log())
    assert f_x.shape == (4, 1, 8, 8)
    assert f_z.shape == (4,)
    torch.testing.assert_close(f_x, full[:, :1])
    torch.testing.assert_close(f_z, full[:, 1].mean(dim=(1, 2)))
    den = EDMPrecond(_net(shape, (1, 2), ()))(x, torch.full((4,), 0.7))
    assert den.shape == (4, 1, 8, 8)


@pytest.mark.parametrize("arch", ["ddpmpp", "ncsnpp"])
def test_class_labels_change_output(arch: str) -> None:
    shape = (1, 8, 8)
    net = _net(shape, (1, 2), (), arch=arch, num_classes=10)
    _randomise(net, seed=4)
    x, c = _inputs(shape, 2, seed=5)
    a = net(x, c, torch.tensor([3, 3]))
    b = net(x, c, torch.tensor([3, 7]))
    torch.testing.assert_close(a[0], b[0])  # row 0 has the same label in both calls
    assert (a[1] - b[1]).abs().max() > 1e-3


def test_conditional_net_without_labels_errors() -> None:
    net = _net((1, 8, 8), (1, 2), (), num_classes=10)
    x, c = _inputs((1, 8, 8), 2, seed=6)
    with pytest.raises(ValueError, match="class-conditional"):
        net(x, c)
    with pytest.raises(ValueError, match="int64 class indices"):
        net(x, c, torch.zeros(2, 10))


def test_augment_labels_change_output() -> None:
    shape = (1, 8, 8)
    net = _net(shape, (1, 2), (), augment_dim=9)
    _randomise(net, seed=7)
    x, c = _inputs(shape, 2, seed=8)
    gen = torch.Generator().manual_seed(9)
    aug = torch.randn(2, 9, generator=gen)
    plain = net(x, c)
    torch.testing.assert_close(net(x, c, None, torch.zeros(2, 9)), plain)  # map_augment has no bias
    assert (net(x, c, None, aug) - plain).abs().max() > 1e-3


def test_noise_level_changes_output() -> None:
    shape = (1, 8, 8)
    for emb in ("positional", "fourier"):
        net = _net(shape, (1, 2), (), embedding=emb)
        _randomise(net, seed=10)
        x, _ = _inputs(shape, 1, seed=11)
        assert (net(x, torch.tensor([0.1])) - net(x, torch.tensor([1.3]))).abs().max() > 1e-3


def test_gradients_reach_every_parameter() -> None:
    shape = (1, 16, 16)
    net = _net(shape, (1, 2, 2), (8,), out_extra=1, num_classes=3, augment_dim=9, arch="ncsnpp")
    _randomise(net, seed=12)
    x, c = _inputs(shape, 3, seed=13)
    gen = torch.Generator().manual_seed(14)
    net(x, c, torch.tensor([0, 1, 2]), torch.randn(3, 9, generator=gen)).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name


def test_tiny_parameter_count_by_hand() -> None:
    """One level, 8 channels, 1 block, emb 32: every layer counted by hand (EDM SongUNet layout)."""

    def conv3(i: int, o: int) -> int:
        return i * o * 9 + o

    def lin(i: int, o: int) -> int:  # also a 1×1 conv
        return i * o + o

    def gn(c: int) -> int:
        return 2 * c

    def block(i: int, o: int) -> int:  # norm0, conv0, affine (emb 32), norm1, conv1, 1×1 skip
        return gn(i) + conv3(i, o) + lin(32, o) + gn(o) + conv3(o, o) + (lin(i, o) if i != o else 0)

    attn = gn(8) + lin(8, 24) + lin(8, 8)  # norm2, qkv and proj (1×1 convs)
    mapping = lin(8, 32) + lin(32, 32)
    enc = conv3(1, 8) + block(8, 8)
    dec = (block(8, 8) + attn) + block(8, 8) + 2 * block(16, 8) + gn(8) + conv3(8, 1)
    expected = mapping + enc + dec
    net = UNet((1, 8, 8), model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=())
    assert count_parameters(net) == expected == 10_593


def _meta_count(**options: object) -> int:
    with torch.device("meta"):
        net = UNet((3, 32, 32), **options)  # type: ignore[arg-type]
    return count_parameters(net)


def test_cifar10_parameter_counts_match_papers() -> None:
    """EDM DDPM++ CIFAR-10 (128 ch, mult 2,2,2, 4 blocks, attn 16): 55.73M (EDM Table 7 / README).

    score_sde DDPM++ (nf 128, ch_mult 1,2,2,2) as in PFGM's configs: ≈ 62M (score_sde paper).
    """
    edm = dict(model_channels=128, num_blocks=4, attn_resolutions=(16,))
    assert round(_meta_count(channel_mult=(2, 2, 2), **edm) / 1e6, 2) == 55.73
    score_sde = _meta_count(channel_mult=(1, 2, 2, 2), **edm)
    assert abs(score_sde - 62e6) / 62e6 < 0.01
    # NCSN++ adds the residual input path and a 2× wider noise embedding: slightly larger.
    ncsnpp = _meta_count(channel_mult=(2, 2, 2), arch="ncsnpp", embedding="fourier", **edm)
    assert 55.73e6 < ncsnpp < 57e6


def test_bad_image_size_errors() -> None:
    with pytest.raises(ValueError, match=r"10x10 is not divisible by .* = 4"):
        UNet((1, 10, 10), channel_mult=(1, 2, 2), **TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="images"):
        UNet((64,), channel_mult=(1,), **TINY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="arch"):
        UNet((1, 8, 8), arch="adm", **TINY)  # type: ignore[arg-type]


def test_init_is_deterministic_under_manual_seed() -> None:
    def build(seed: int) -> dict[str, Tensor]:
        torch.manual_seed(seed)
        return _net((1, 8, 8), (1, 2), (4,), arch="ncsnpp", embedding="fourier").state_dict()

    a, b, other = build(0), build(0), build(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["enc.8_conv.weight"], other["enc.8_conv.weight"])
    # the Fourier frequencies come from their own generator, never from the global seed
    assert torch.equal(a["map_noise.freqs"], other["map_noise.freqs"])


def test_registry_builds_from_schema_options() -> None:
    assert NETS["unet"] is UNet
    cfg = UNetNet(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=())
    net = build_raw("unet", (1, 8, 8), out_extra=1, **cfg.model_dump(exclude={"kind", "precond"}))
    x, c = _inputs((1, 8, 8), 2, seed=15)
    assert net(x, c).shape == (2, 2, 8, 8)


@pytest.mark.parametrize(("channels", "groups"), [(8, 2), (128, 32), (256, 32), (96, 24), (34, 2)])
def test_group_count(channels: int, groups: int) -> None:
    """min(32, C/4) as EDM; reduced to a divisor of C when C/4 does not divide C."""
    assert group_count(channels) == groups
    assert channels % group_count(channels) == 0
