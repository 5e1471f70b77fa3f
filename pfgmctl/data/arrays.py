"""Load a user array of shape [n, ...] from `.npy` / `.npz` as a float32 CPU tensor."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pfgmctl.errors import DataError

SUFFIXES = (".npy", ".npz")
NPZ_KEYS = ("data", "x", "samples", "arr_0")  # tried in order when an .npz holds several arrays
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile)


def load_array(path: str | Path, key: str | None = None) -> Tensor:
    """Read `path` (.npy, or .npz member `key`) and check it is a finite numeric [n, ...] array."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data file '{path}' not found; check [data] path (or --set data.path=...)")
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"data file '{path}': unsupported format '{path.suffix}'; "
            "save it as .npy or .npz (np.save / np.savez)"
        )
    arr = _read(path, key)
    _check(path, arr)
    with np.errstate(over="ignore"):  # overflow is reported just below
        out = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if not bool(torch.isfinite(out).all()):
        raise DataError(f"data file '{path}': values overflow float32; rescale the data")
    return out


def _read(path: Path, key: str | None) -> np.ndarray:
    """np.load with pickles refused; one npz member chosen by `key` or by the default names."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                return loaded[_pick_key(path, list(loaded.files), key)]
        return np.asarray(loaded)
    except DataError:
        raise
    except _READ_ERRORS as err:
        raise _read_error(path, err) from err


def _read_error(path: Path, err: Exception) -> DataError:
    """Turn a numpy load failure into a one-line DataError."""
    if "Object arrays" in str(err):
        return DataError(
            f"data file '{path}' holds Python objects (dtype=object); "
            "save a numeric array, e.g. np.save(path, x.astype(np.float32))"
        )
    if "pickled data" in str(err):
        return DataError(
            f"data file '{path}' cannot be read (not NumPy format: text or pickled data); "
            "re-save it with np.save / np.savez"
        )
    detail = " ".join(str(err).split()) or type(err).__name__
    return DataError(
        f"data file '{path}' cannot be read ({detail}); re-save it with np.save / np.savez"
    )


def _pick_key(path: Path, keys: list[str], key: str | None) -> str:
    """The npz member to use: `key` if given, else the only one, else a default name."""
    listing = ", ".join(keys)
    if key is not None:
        if key not in keys:
            raise DataError(
                f"data file '{path}' has no array '{key}' (it has: {listing}); fix [data] key"
            )
        return key
    if not keys:
        raise DataError(f"data file '{path}' contains no arrays; save the data with np.savez")
    if len(keys) == 1:
        return keys[0]
    for name in NPZ_KEYS:
        if name in keys:
            return name
    raise DataError(
        f"data file '{path}' holds several arrays ({listing}); choose one with [data] key "
        "(or --set data.key=NAME)"
    )


def _check(path: Path, arr: np.ndarray) -> None:
    """Reject object, non-numeric, under-dimensioned, empty or non-finite arrays."""
    if arr.dtype == object:
        raise DataError(
            f"data file '{path}' holds Python objects (dtype=object); save a numeric array"
        )
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"data file '{path}' has non-numeric dtype {arr.dtype}; save a real-valued array"
        )
    if arr.ndim < 2:
        hint = f" — reshape to ({arr.shape[0]}, 1) for 1-D data" if arr.ndim == 1 else ""
        raise DataError(f"data file '{path}' has shape {arr.shape}; expected [n, ...]{hint}")
    if arr.shape[0] == 0:
        raise DataError(f"data file '{path}' has no rows (shape {arr.shape}); it needs n ≥ 1")
    bad = int(np.count_nonzero(~np.isfinite(arr))) if arr.dtype.kind == "f" else 0
    if bad:
        raise DataError(f"data file '{path}' contains {bad} NaN/inf values; remove or replace them")


def to_images(x: Tensor, path: str | Path, pixels: str = "as_is", layout: str = "as_is") -> Tensor:
    """Apply `[data] pixels` and `layout` to loaded rows x [n, ...].

    pixels "uint8": integer pixels k ∈ 0..255 ↦ k/127.5 − 1 ∈ [−1, 1] (anything else is an error).
    layout "nchw" / "nhwc": image rows [n, C, H, W] / [n, H, W, C] (a 3-D [n, H, W] gets C = 1),
    returned as [n, C, H, W]; "as_is" leaves the shape alone.
    """
    if pixels == "uint8":
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 255 or not bool((x == x.round()).all()):
            raise DataError(
                f"data file '{path}': [data] pixels = 'uint8' needs integer pixels 0..255 but "
                f"values span {lo:g}..{hi:g}; save uint8 images or set pixels = 'as_is'"
            )
        x = x / 127.5 - 1.0
    if layout == "as_is":
        return x
    if x.ndim == 3:
        x = x.unsqueeze(1) if layout == "nchw" else x.unsqueeze(3)
    if x.ndim != 4:
        want = "[n, C, H, W]" if layout == "nchw" else "[n, H, W, C]"
        raise DataError(
            f"data file '{path}' has shape {tuple(x.shape)} but [data] layout = '{layout}' "
            f"expects {want} or [n, H, W]; fix layout or reshape the array"
        )
    if layout == "nhwc":
        x = x.permute(0, 3, 1, 2).contiguous()
    return x


def load_labels(path: str | Path, key: str) -> Tensor:
    """Class labels int64 [n] from .npz member `key` (integers ≥ 0; shape [n] or [n, 1])."""
    path = Path(path).expanduser()
    if path.suffix.lower() != ".npz":
        raise DataError(
            f"data file '{path}': [data] labels_key needs an .npz holding data and labels; "
            "save both with np.savez(path, x=..., labels=...)"
        )
    arr = _read(path, key)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise DataError(
            f"data file '{path}': labels '{key}' must be integers of shape [n], got "
            f"{arr.dtype} {arr.shape}; save class indices 0..K-1 as an int array"
        )
    if arr.size == 0 or int(arr.min()) < 0:
        raise DataError(
            f"data file '{path}': labels '{key}' must be class indices 0..K-1 (n ≥ 1, no "
            "negatives); re-number the classes"
        )
    return torch.from_numpy(arr.astype(np.int64))
