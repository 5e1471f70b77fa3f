"""User arrays (.npy/.npz): loading, every error case, and array data sets via build_dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pfgmctl.config.schema import ArrayData
from pfgmctl.data import build_dataset, split_holdout
from pfgmctl.data.arrays import load_array
from pfgmctl.errors import DataError


def _rows(n: int = 10, d: int = 3) -> np.ndarray:
    return np.arange(n * d, dtype=np.float64).reshape(n, d)


def test_load_npy(tmp_path: Path) -> None:
    path = tmp_path / "x.npy"
    np.save(path, _rows())
    x = load_array(path)
    assert x.dtype == torch.float32
    assert x.device.type == "cpu"
    assert torch.equal(x, torch.from_numpy(_rows()).float())


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.float16, np.bool_])
def test_load_numeric_dtypes(tmp_path: Path, dtype: type) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.ones((4, 2), dtype=dtype))
    x = load_array(str(path))
    assert x.dtype == torch.float32
    assert torch.equal(x, torch.ones(4, 2))


def test_load_images(tmp_path: Path) -> None:
    path = tmp_path / "img.npy"
    np.save(path, np.zeros((5, 1, 4, 4), dtype=np.float32))
    assert load_array(path).shape == (5, 1, 4, 4)


def test_npz_key_selection(tmp_path: Path) -> None:
    one = tmp_path / "one.npz"
    np.savez(one, whatever=_rows(4))
    assert load_array(one).shape == (4, 3)
    many = tmp_path / "many.npz"
    np.savez(many, labels=_rows(2, 1), x=_rows(3), data=_rows(5))
    assert load_array(many).shape == (5, 3)  # "data" wins over "x"
    assert load_array(many, "x").shape == (3, 3)
    anon = tmp_path / "anon.npz"
    np.savez(anon, _rows(6), _rows(7))  # arr_0, arr_1
    assert load_array(anon).shape == (6, 3)


def test_npz_ambiguous_and_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "amb.npz"
    np.savez(path, a=_rows(), b=_rows())
    with pytest.raises(DataError) as info:
        load_array(path)
    msg = str(info.value)
    assert "amb.npz" in msg
    assert "a, b" in msg
    assert "key" in msg
    with pytest.raises(DataError, match=r"no array 'c' \(it has: a, b\)"):
        load_array(path, "c")


def _missing(d: Path) -> Path:
    return d / "missing.npy"


def _csv(d: Path) -> Path:
    (d / "bad.csv").write_text("1,2\n3,4\n")
    return d / "bad.csv"


def _corrupt_npy(d: Path) -> Path:
    (d / "bad.npy").write_bytes(b"\x93NUMPY garbage" + bytes(range(40)))
    return d / "bad.npy"


def _text_as_npy(d: Path) -> Path:
    (d / "bad.npy").write_text("not numpy at all")
    return d / "bad.npy"


def _corrupt_npz(d: Path) -> Path:
    (d / "bad.npz").write_bytes(b"PK\x03\x04" + b"\x00" * 30)
    return d / "bad.npz"


def _save(name: str, arr: np.ndarray, pickle: bool = False) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        np.save(d / name, arr, allow_pickle=pickle)
        return d / name

    return make


def _empty_npz(d: Path) -> Path:
    np.savez(d / "bad.npz")
    return d / "bad.npz"


def _object_npz(d: Path) -> Path:
    np.savez(d / "bad.npz", data=np.array([[1, "a"]], dtype=object))
    return d / "bad.npz"


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_missing, "not found"),
        (_csv, ".npy or .npz"),
        (_corrupt_npy, "cannot be read"),
        (_text_as_npy, "cannot be read"),
        (_corrupt_npz, "cannot be read"),
        (_save("bad.npy", np.array([[1, "a"]], dtype=object), pickle=True), "objects"),
        (_object_npz, "objects"),
        (_save("bad.npy", np.array([["a", "b"]])), "non-numeric"),
        (_save("bad.npy", np.ones((3, 2), dtype=np.complex64)), "non-numeric"),
        (_save("bad.npy", np.ones(5)), "reshape to (5, 1)"),
        (_save("bad.npy", np.array(3.0)), "expected [n, ...]"),
        (_save("bad.npy", np.ones((0, 3))), "no rows"),
        (_save("bad.npy", np.array([[1.0, np.nan], [np.inf, 2.0]])), "2 NaN/inf"),
        (_save("bad.npy", np.full((2, 2), 1e300)), "float32"),
        (_empty_npz, "no arrays"),
    ],
)
def test_load_errors(tmp_path: Path, make: Callable[[Path], Path], needle: str) -> None:
    path = make(tmp_path)
    with pytest.raises(DataError) as info:
        load_array(path)
    msg = str(info.value)
    assert path.name in msg
    assert needle in msg
    assert "\n" not in msg


def test_one_d_message(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.ones(5))
    with pytest.raises(DataError) as info:
        load_array(tmp_path / "v.npy")
    assert "has shape (5,); expected [n, ...] — reshape to (5, 1) for 1-D data" in str(info.value)


# --- build_dataset with arrays ---------------------------------------------------------------


def test_build_array_dataset(tmp_path: Path) -> None:
    path = tmp_path / "pts.npy"
    np.save(path, _rows(20, 2))
    ds = build_dataset(ArrayData(path=str(path), n=8, scale=0.5, shift=-1.0))
    assert ds.name == "pts.npy"
    assert torch.equal(ds.train, torch.from_numpy(_rows(8, 2)).float() * 0.5 - 1.0)
    assert ds.holdout.shape == (0, 2)


def test_build_array_shapes(tmp_path: Path) -> None:
    path = tmp_path / "img.npz"
    np.savez(path, images=np.zeros((6, 1, 4, 4)), labels=np.zeros((6, 1)))
    ds = build_dataset(ArrayData(path=str(path), key="images"))
    assert ds.item_shape == (1, 4, 4)
    assert ds.data_dim == 16


def test_build_array_n_too_large(tmp_path: Path) -> None:
    path = tmp_path / "pts.npy"
    np.save(path, _rows(5, 2))
    with pytest.raises(DataError, match=r"pts\.npy' has 5 rows but \[data\] n = 6"):
        build_dataset(ArrayData(path=str(path), n=6))


def test_build_array_needs_path() -> None:
    with pytest.raises(DataError, match="path"):
        build_dataset(ArrayData())


def test_holdout_split_is_fixed_and_disjoint() -> None:
    x = torch.arange(100.0)[:, None]
    train, held = split_holdout(x, 0.07)
    assert held.shape == (7, 1)
    assert train.shape == (93, 1)
    assert torch.equal(torch.cat([train, held]).sort(0).values, x)
    _, held2 = split_holdout(x, 0.07)
    assert torch.equal(held, held2)
    assert not torch.equal(held.flatten(), torch.arange(93.0, 100.0))  # permuted, not a tail
    assert split_holdout(torch.arange(10.0)[:, None], 0.7)[1].shape == (7, 1)  # no fp round-up


def test_holdout_leaving_no_train_rows(tmp_path: Path) -> None:
    path = tmp_path / "one.npy"
    np.save(path, _rows(1, 2))
    with pytest.raises(DataError, match="holdout"):
        build_dataset(ArrayData(path=str(path), holdout=0.5))
