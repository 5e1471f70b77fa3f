"""Preconditioners and raw nets: EDM coefficients, FieldHead split, MLP shapes (pfgmpp_ipfm.md §A4, pfgm.md §2.4)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from pfgmctl.nets import NETS, EDMPrecond, FieldHead, build_raw
from pfgmctl.nets.mlp import MLP


class _RandomRaw(nn.Module):
    """F(x_in, c_noise) = tanh(W·x_in + c_noise) with fixed random W, recording its inputs."""

    def __init__(self, n: int, n_out: int | None = None) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(n_out or n, n, generator=gen))
        self.calls: list[tuple[Tensor, Tensor]] = []

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> Tensor:
        self.calls.append((x, c_noise))
        flat = x.flatten(1) @ self.w.T.to(x.dtype)
        return torch.tanh(flat + c_noise[:, None]).reshape(x.shape[0], -1)


class _Fixed(nn.Module):
    """Returns a fixed output tensor and records the conditioning it was given."""

    def __init__(self, out: Tensor) -> None:
        super().__init__()
        self.out = out
        self.c_noise: Tensor | None = None

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        labels: Tensor | None = None,
        aug_labels: Tensor | None = None,
    ) -> Tensor:
        self.c_noise = c_noise
        return self.out


def test_edm_coefficients() -> None:
    """D = c_skip·x + c_out·F(c_in·x, ln(σ)/4), Karras et al. 2022 Table 1, re-derived per row."""
    raw = _RandomRaw(3)
    model = EDMPrecond(raw, sigma_data=0.5)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigma = torch.tensor([0.01, 0.5, 2.0, 80.0], dtype=torch.float64)
    out = model(x, sigma)
    x_in, c_noise = raw.calls[0]
    for b, s in enumerate(sigma.tolist()):
        c_in = 1 / math.sqrt(s**2 + 0.25)
        assert torch.allclose(x_in[b], c_in * x[b])
        assert float(c_noise[b]) == pytest.approx(math.log(s) / 4)
        c_skip, c_out = 0.25 / (s**2 + 0.25), s * 0.5 / math.sqrt(s**2 + 0.25)
        raw_out = torch.tanh(x_in[b] @ raw.w.T.double() + c_noise[b])
        assert torch.allclose(out[b], c_skip * x[b] + c_out * raw_out)


@pytest.mark.parametrize("sigma", [1e-4, 1e-6])
def test_edm_small_sigma_is_identity(sigma: float) -> None:
    """c_skip → 1, c_out → 0 as σ → 0, so D(x, σ) ≈ x for any raw net (|F| ≤ 1 here)."""
    model = EDMPrecond(_RandomRaw(6), sigma_data=0.5)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(2))
    out = model(x, torch.full((5,), sigma))
    assert torch.allclose(out, x, atol=3 * sigma)


def test_edm_large_sigma_is_raw_output() -> None:
    """c_skip → 0, c_out → σ_data as σ → ∞."""
    raw = _RandomRaw(4)
    model = EDMPrecond(raw, sigma_data=0.5)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = model(x, torch.tensor(1e6, dtype=torch.float64))
    x_in, c_noise = raw.calls[0]
    assert c_noise.shape == (3,)
    assert torch.allclose(
        out, 0.5 * torch.tanh(x_in @ raw.w.T.double() + c_noise[:, None]), atol=1e-6
    )


def test_edm_image_shape_and_scalar_sigma() -> None:
    raw = build_raw("mlp", (2, 4, 4), out_extra=0, hidden=16, blocks=1)
    out = EDMPrecond(raw)(torch.randn(3, 2, 4, 4), torch.tensor(0.7))
    assert out.shape == (3, 2, 4, 4)
    assert out.dtype == torch.float32


def test_field_head_vector() -> None:
    raw_out = torch.arange(12.0).reshape(3, 4)  # N = 3 → N + 1 = 4 outputs
    raw = _Fixed(raw_out)
    f_x, f_z = FieldHead(raw)(torch.zeros(3, 3), torch.tensor([0.5, 1.0, 2.0]))
    assert torch.equal(f_x, raw_out[:, :3])
    assert torch.equal(f_z, raw_out[:, 3])
    assert raw.c_noise is not None
    assert torch.allclose(raw.c_noise, torch.tensor([0.5, 1.0, 2.0]).log())


def test_field_head_image_mean_of_extra_channel() -> None:
    gen = torch.Generator().manual_seed(4)
    raw_out = torch.randn(2, 4, 5, 5, generator=gen)  # C = 3 data channels + 1
    raw = _Fixed(raw_out)
    f_x, f_z = FieldHead(raw, c_noise="z")(torch.zeros(2, 3, 5, 5), torch.tensor([0.0, 3.0]))
    assert f_x.shape == (2, 3, 5, 5)
    assert torch.equal(f_x, raw_out[:, :3])
    assert f_z.shape == (2,)
    assert torch.allclose(f_z, torch.stack([raw_out[b, 3].sum() / 25 for b in range(2)]))
    # Raw z conditioning, clamped at ≥ 1e−10 (reference).
    assert raw.c_noise is not None
    assert torch.allclose(raw.c_noise, torch.tensor([1e-10, 3.0]))


def test_field_head_clamps_log_z() -> None:
    raw = _Fixed(torch.zeros(2, 3))
    FieldHead(raw)(torch.zeros(2, 2), torch.tensor([0.0, 1.0]))
    assert raw.c_noise is not None
    assert torch.allclose(raw.c_noise, torch.tensor([math.log(1e-10), 0.0]))


@pytest.mark.parametrize("item_shape", [(2,), (5,), (1, 8, 8), (3, 4, 4)])
@pytest.mark.parametrize("out_extra", [0, 1])
@pytest.mark.parametrize("embedding", ["positional", "fourier"])
def test_mlp_shapes(item_shape: tuple[int, ...], out_extra: int, embedding: str) -> None:
    net = MLP(item_shape, out_extra=out_extra, hidden=32, blocks=2, emb_dim=16, embedding=embedding)
    x = torch.randn(3, *item_shape, generator=torch.Generator().manual_seed(5))
    out = net(x, torch.tensor([0.1, -1.0, 2.0]))
    assert out.shape == (3, item_shape[0] + out_extra, *item_shape[1:])
    assert out.dtype == torch.float32


TINY_OPTIONS: dict[str, dict[str, Any]] = {
    "mlp": {},
    "unet": {"model_channels": 8, "channel_mult": (1, 2), "num_blocks": 1, "attn_resolutions": ()},
}
VECTOR_NETS = {"mlp"}  # the U-Net takes images only


@pytest.mark.parametrize("kind", sorted(NETS))
def test_registered_nets_with_heads(kind: str) -> None:
    opts = TINY_OPTIONS[kind]  # a new registered net must add its tiny options here
    if kind in VECTOR_NETS:
        edm = EDMPrecond(build_raw(kind, (2,), out_extra=0, **opts))
        assert edm(torch.randn(4, 2), torch.full((4,), 0.3)).shape == (4, 2)
        head = FieldHead(build_raw(kind, (2,), out_extra=1, **opts))
        f_x, f_z = head(torch.randn(4, 2), torch.full((4,), 0.3))
        assert f_x.shape == (4, 2)
        assert f_z.shape == (4,)
    edm_img = EDMPrecond(build_raw(kind, (3, 4, 4), out_extra=0, **opts))
    assert edm_img(torch.randn(2, 3, 4, 4), torch.full((2,), 0.3)).shape == (2, 3, 4, 4)
    img = FieldHead(build_raw(kind, (3, 4, 4), out_extra=1, **opts))
    f_x, f_z = img(torch.randn(2, 3, 4, 4), torch.full((2,), 0.3))
    assert f_x.shape == (2, 3, 4, 4)
    assert f_z.shape == (2,)


def test_build_raw_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown net kind"):
        build_raw("transformer9000", (2,), out_extra=0)
