"""EMA by half-life in images (EDM): beta formula, closed form, buffers, ramp-up."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pfgmctl.engine.ema import EMA, ema_beta


class _Net(nn.Module):
    count: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("count", torch.zeros(()))


def _fill(net: nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))


def test_ema_is_frozen_copy() -> None:
    net = _Net()
    ema = EMA(net, halflife_kimg=1.0, rampup=None)
    assert ema.module is not net
    assert not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in net.parameters())


def test_closed_form_no_rampup() -> None:
    gen = torch.Generator().manual_seed(0)
    net = _Net()
    _fill(net, gen)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    ema = EMA(net, halflife_kimg=0.5, rampup=None)
    batch = 128
    beta = 0.5 ** (batch / 500.0)
    history = []
    for i in range(5):
        _fill(net, gen)
        history.append({k: v.clone() for k, v in net.state_dict().items()})
        net.count.fill_(i + 1)
        assert ema.update(net, nimg=i * batch, batch=batch) == pytest.approx(beta)
    for name in ("lin.weight", "lin.bias"):
        # e_n = beta^n e_0 + sum_k (1 - beta) beta^(n-1-k) p_k
        expect = beta**5 * start[name]
        for k, params in enumerate(history):
            expect = expect + (1 - beta) * beta ** (4 - k) * params[name]
        torch.testing.assert_close(ema.module.state_dict()[name], expect)
    assert float(ema.module.count) == 5.0  # type: ignore[arg-type]


def test_constant_target_halves_at_halflife() -> None:
    gen = torch.Generator().manual_seed(1)
    net = _Net()
    _fill(net, gen)
    ema = EMA(net, halflife_kimg=0.1, rampup=None)
    start = ema.module.state_dict()["lin.weight"].clone()
    _fill(net, gen)
    for i in range(10):  # 10 x 10 images = one half-life
        ema.update(net, nimg=i * 10, batch=10)
    expect = net.lin.weight + 0.5 * (start - net.lin.weight)
    torch.testing.assert_close(ema.module.state_dict()["lin.weight"], expect.detach())


def test_zero_halflife_copies() -> None:
    gen = torch.Generator().manual_seed(2)
    net = _Net()
    ema = EMA(net, halflife_kimg=0.0, rampup=None)
    _fill(net, gen)
    assert ema.update(net, nimg=1000, batch=4) == 0.0
    for k, v in net.state_dict().items():
        assert torch.equal(ema.module.state_dict()[k], v)


def test_rampup_beta() -> None:
    # First step (nimg=0) copies; later the half-life is min(halflife, rampup * nimg).
    assert ema_beta(0, 64, halflife_kimg=10.0, rampup=0.05) == 0.0
    assert ema_beta(1000, 64, 10.0, 0.05) == pytest.approx(0.5 ** (64 / 50.0))
    assert ema_beta(10**7, 64, 10.0, 0.05) == pytest.approx(0.5 ** (64 / 10000.0))
    assert ema_beta(0, 64, 10.0, None) == pytest.approx(0.5 ** (64 / 10000.0))


def test_state_dict_round_trip() -> None:
    gen = torch.Generator().manual_seed(3)
    net = _Net()
    ema = EMA(net, halflife_kimg=1.0, rampup=None)
    _fill(net, gen)
    ema.update(net, nimg=0, batch=100)
    other = EMA(_Net(), halflife_kimg=1.0, rampup=None)
    other.load_state_dict(ema.state_dict())
    for k, v in ema.state_dict().items():
        assert torch.equal(other.state_dict()[k], v)
