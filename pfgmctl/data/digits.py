"""scikit-learn's bundled 8×8 digits (1797 images, values 0..16; no download), as [n, 1, 8, 8]."""

from __future__ import annotations

import torch
from torch import Tensor

from pfgmctl.errors import DataError

LEVELS = 17
"""Intensity levels of the digits images (0..16)."""


def load_digits() -> tuple[Tensor, Tensor]:
    """Images in [−1, 1] (x/8 − 1) as float32 [1797, 1, 8, 8] and labels int64 [1797]."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise DataError(
            "[data] kind = 'digits' needs scikit-learn: pip install 'pfgmctl[data]'"
        ) from None
    bunch = sk_load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8.0 - 1.0
    return images, torch.as_tensor(bunch.target, dtype=torch.int64)
