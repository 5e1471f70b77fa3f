"""Training-time transforms: per-row x-flip and unbiased uniform dequantisation."""

from __future__ import annotations

import pytest
import torch

from pfgmctl.data.transforms import dequantize, xflip


def test_xflip_rows_are_kept_or_mirrored() -> None:
    x = torch.randn(400, 2, 3, 5, generator=torch.Generator().manual_seed(0))
    y = xflip(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape
    assert y.dtype == x.dtype
    same = (y == x).flatten(1).all(1)
    mirrored = (y == x.flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())  # exactly one of the two, per row
    assert 160 < int(mirrored.sum()) < 240  # p = 0.5
    assert torch.equal(y, xflip(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(y, xflip(x, torch.Generator().manual_seed(2)))


def test_xflip_matches_its_draws() -> None:
    x = torch.arange(6.0).view(3, 1, 1, 2)
    y = xflip(x, torch.Generator().manual_seed(5))
    flip = torch.rand(3, generator=torch.Generator().manual_seed(5)) < 0.5
    for i in range(3):
        assert torch.equal(y[i], x[i].flip(-1) if flip[i] else x[i])
    assert torch.equal(xflip(x, torch.Generator(), p=0.0), x)
    assert torch.equal(xflip(x, torch.Generator(), p=1.0), x.flip(-1))


@pytest.mark.parametrize("levels", [256, 17])
def test_dequantize_stays_in_its_bin_and_is_unbiased(levels: int) -> None:
    gen = torch.Generator().manual_seed(0)
    k = torch.randint(levels, (20_000,), generator=gen)
    x = 2 * k.float() / (levels - 1) - 1  # the loaders' pixel scale
    y = dequantize(x, torch.Generator().manual_seed(1), levels=levels)
    step = 2 / (levels - 1)
    noise = (y - x) / step
    assert float(noise.min()) >= -0.5 - 1e-4
    assert float(noise.max()) < 0.5 + 1e-4
    assert abs(float(noise.mean())) < 0.01  # E[u − ½] = 0, sd of the mean ≈ 0.002
    assert abs(float(noise.var()) - 1 / 12) < 0.003  # uniform over one bin
    assert torch.equal(torch.round((y + 1) / step).long(), k)  # rounding recovers the level


def test_dequantize_scale_dtype_and_seed() -> None:
    x = torch.zeros(4, 3, dtype=torch.float64)
    y = dequantize(x, torch.Generator().manual_seed(3), levels=256, scale=2.0)
    assert y.dtype == torch.float64
    assert float(y.abs().max()) <= 2.0 / 255 + 1e-9  # bin width 2·scale/255, half each side
    assert torch.equal(y, dequantize(x, torch.Generator().manual_seed(3), scale=2.0))
    with pytest.raises(ValueError, match="levels"):
        dequantize(x, torch.Generator(), levels=1)
