"""scikit-learn's bundled digits as a data source."""

from __future__ import annotations

import pytest
import torch

from pfgmctl.config.load import load_profile
from pfgmctl.data import build_dataset

pytest.importorskip("sklearn")


def test_digits_shape_range_and_holdout() -> None:
    ds = build_dataset(load_profile("digits").data)
    assert ds.item_shape == (1, 8, 8)
    assert len(ds.train) + len(ds.holdout) == 1797
    assert len(ds.holdout) == 180
    values = torch.cat([ds.train, ds.holdout]).unique()
    assert values.min() == -1.0
    assert values.max() == 1.0
    assert len(values) == 17  # 0..16 mapped by x/8 - 1


def test_digits_n_and_profiles_resolve() -> None:
    ds = build_dataset(load_profile("digits", ["data.n=100", "data.holdout=0.0"]).data)
    assert ds.train.shape == (100, 1, 8, 8)
    assert load_profile("digits-pfgm").method.kind == "pfgm"
