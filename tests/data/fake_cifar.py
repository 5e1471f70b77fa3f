"""A tiny CIFAR-10 in the real python format (pickled dicts of numpy arrays), for tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _dump(path: Path, obj: object) -> None:
    """Pickle like the real (Python 2) files: bytes keys, `numpy.core.multiarray` globals."""
    data = pickle.dumps(obj, protocol=3)
    data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    path.write_bytes(data)


def fake_pixels(batch: int, n_per_batch: int) -> np.ndarray:
    """The uint8 [n_per_batch, 3072] rows written to data_batch_{batch} (batch 6 = test_batch)."""
    return np.random.default_rng(batch).integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)


def fake_labels(batch: int, n_per_batch: int) -> list[int]:
    """The labels written to data_batch_{batch}: (i + batch) mod 10."""
    return [(i + batch) % 10 for i in range(n_per_batch)]


def write_fake_cifar(root: Path, n_per_batch: int = 20) -> Path:
    """Write `root/cifar-10-batches-py` (data_batch_1..5, test_batch, batches.meta); return it."""
    out = Path(root) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    names = [*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]
    for k, name in enumerate(names, start=1):
        batch = {
            b"batch_label": f"fake {name}".encode(),
            b"labels": fake_labels(k, n_per_batch),
            b"data": fake_pixels(k, n_per_batch),
            b"filenames": [f"img_{k}_{i}.png".encode() for i in range(n_per_batch)],
        }
        _dump(out / name, batch)
    meta = {
        b"label_names": [c.encode() for c in CLASSES],
        b"num_cases_per_batch": n_per_batch,
        b"num_vis": 3072,
    }
    _dump(out / "batches.meta", meta)
    return out
