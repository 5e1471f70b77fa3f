"""Image data sources: a folder of images, CIFAR-10 python batches and procedural shapes.

Every source returns `RawData` with rows float32 [n, C, H, W] in [−1, 1] (pixel k ↦ k/127.5 − 1),
int64 labels where the source has them, and its class names. Nothing is downloaded and nothing is
printed: unreadable files skipped under `skip_bad = true` come back as `RawData.warnings`.
"""

from __future__ import annotations

import functools
import io
import math
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from pfgmctl.errors import DataError

if TYPE_CHECKING:
    from pfgmctl.config.schema import Cifar10Data, FolderData, ShapesData
    from pfgmctl.data import RawData

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
SHAPES = ("disc", "square", "triangle")
_SUPERSAMPLE = 4  # shapes are drawn at 4× and box-filtered down (anti-aliasing)
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def load_images(cfg: FolderData | Cifar10Data | ShapesData) -> RawData:
    """Rows [n, C, H, W] in [−1, 1] with labels where the source has them."""
    if cfg.kind == "folder":
        return load_folder(cfg)
    if cfg.kind == "cifar10":
        return load_cifar10(cfg)
    return load_shapes(cfg)


def to_unit_range(pixels: np.ndarray) -> torch.Tensor:
    """uint8 pixels [n, C, H, W] → float32 in [−1, 1]: x = k/127.5 − 1 (0 ↦ −1, 255 ↦ 1)."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).to(torch.float32) / 127.5 - 1.0


# --- folder ----------------------------------------------------------------------------------


def load_folder(cfg: FolderData) -> RawData:
    """Every png/jpg/jpeg/webp/bmp under `cfg.path` (recursive, sorted), as RGB [n, 3, R, R].

    Each image is converted to RGB (grayscale is replicated, alpha dropped), centre-cropped to a
    square (side `crop`, default the shorter side) and resized to `resolution` with antialiased
    bicubic filtering: the LSUN recipe of PFGM, and CelebA's CenterCrop(140) → Resize(64) with
    `crop = 140`. Hidden files and folders (name starting with '.') are ignored. With `conditional`,
    the label of an image is the index of its first-level sub-folder among the sorted names.
    """
    from pfgmctl.data import RawData

    root = _folder_root(cfg.path)
    files = _image_files(root)
    class_names: tuple[str, ...] = ()
    file_labels: list[int] = []
    if cfg.conditional:  # classes from every sub-folder, so `n` does not change num_classes
        class_names, file_labels = _folder_labels(root, files)
    if cfg.n is not None:
        if cfg.n > len(files):
            raise DataError(
                f"[data] path '{root}' has {len(files)} images but [data] n = {cfg.n}; "
                "lower n or omit it"
            )
        files = files[: cfg.n]
    pixels, kept, warnings = _decode_all(files, cfg.resolution, cfg.skip_bad, cfg.crop)
    if not kept:
        raise DataError(f"[data] path '{root}': none of the {len(files)} image files could be read")
    x = to_unit_range(np.stack(pixels).transpose(0, 3, 1, 2))
    labels = None
    if cfg.conditional:
        labels = torch.tensor([file_labels[i] for i in kept], dtype=torch.int64)
    return RawData(x, root.name, labels, class_names, tuple(warnings))


def _folder_root(path: str) -> Path:
    """The image folder named by `[data] path`, checked to exist and be a directory."""
    if not path:
        raise DataError(
            "[data] kind = 'folder' needs a path; set [data] path or --set data.path=..."
        )
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"[data] path '{root}' not found; point [data] path at a folder of images")
    if not root.is_dir():
        raise DataError(
            f"[data] path '{root}' is a file, not a folder; point [data] path at a folder of images"
        )
    return root


def _image_files(root: Path) -> list[Path]:
    """Image files under `root` (recursive; hidden names skipped), sorted by relative path."""
    found: list[Path] = []
    seen: set[str] = set()  # real paths of visited folders: symlinked folders are followed once
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append(Path(dirpath) / name)
    if not found:
        raise DataError(
            f"[data] path '{root}' holds no images ({', '.join(IMAGE_SUFFIXES)}); "
            "check the path or add images"
        )
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _folder_labels(root: Path, files: Sequence[Path]) -> tuple[tuple[str, ...], list[int]]:
    """Class names (sorted first-level sub-folders that hold images) and one label per file."""
    tops = [f.relative_to(root).parts for f in files]
    loose = [f for f, parts in zip(files, tops, strict=True) if len(parts) == 1]
    if loose:
        raise DataError(
            f"[data] conditional = true but '{loose[0]}' sits directly in '{root}'; put every "
            "image in a class sub-folder (path/CLASS/image.png) or set conditional = false"
        )
    names = tuple(sorted({parts[0] for parts in tops}))
    index = {name: k for k, name in enumerate(names)}
    return names, [index[parts[0]] for parts in tops]


def _decode_all(
    files: Sequence[Path], resolution: int, skip_bad: bool, crop: int | None = None
) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Decode every file (threads: Pillow releases the GIL) → HWC uint8 arrays, kept indices."""
    workers = min(8, os.cpu_count() or 1, len(files))
    decode = functools.partial(_decode_one, resolution=resolution, crop=crop)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(decode, files))
    else:
        results = [decode(f) for f in files]
    pixels: list[np.ndarray] = []
    kept: list[int] = []
    warnings: list[str] = []
    for i, (path, res) in enumerate(zip(files, results, strict=True)):
        if isinstance(res, str):
            if not skip_bad:
                raise DataError(
                    f"image file '{path}' cannot be read ({res}); remove or replace it, "
                    "or set [data] skip_bad = true to skip unreadable files"
                )
            warnings.append(f"skipped unreadable image '{path}' ({res})")
            continue
        pixels.append(res)
        kept.append(i)
    return pixels, kept, warnings


def _decode_one(path: Path, resolution: int, crop: int | None = None) -> np.ndarray | str:
    """One image → uint8 [R, R, 3], or the error text if it cannot be decoded.

    Centre square crop of side `crop` (original pixels; None or larger than the image: the
    shorter side), then antialiased bicubic resize to R. JPEGs are decoded with `draft` (DCT
    down-scaling by 1/2, 1/4 or 1/8, never below the size the crop needs), which is much faster
    for large photos.
    """
    try:
        with Image.open(path) as img:
            full_w = img.size[0]
            if img.format == "JPEG":
                want = resolution if crop is None else -(-resolution * min(img.size) // crop)
                img.draft("RGB", (want, want))
            img.load()
            rgb = img.convert("RGB")
    except _DECODE_ERRORS as err:
        return " ".join(str(err).split()) or type(err).__name__
    w, h = rgb.size
    side = min(w, h)
    if crop is not None:
        side = min(side, max(1, round(crop * w / full_w)))  # crop in decoded (drafted) pixels
    left, top = round((w - side) / 2), round((h - side) / 2)  # torchvision CenterCrop's offsets
    square = rgb.crop((left, top, left + side, top + side))  # crop first: no bleed from outside
    if side != resolution:
        square = square.resize((resolution, resolution), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(square, dtype=np.uint8)


# --- CIFAR-10 --------------------------------------------------------------------------------


class RefusedGlobalError(pickle.UnpicklingError):
    """A pickle named a global outside the numpy allow-list (a tampered or foreign file)."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy's array-reconstruction globals.

    The CIFAR-10 batches are pickles; an unrestricted `pickle.load` would run any callable a
    tampered file names (os.system, ...). Here every global other than numpy's `_reconstruct`,
    `ndarray` and `dtype` raises `RefusedGlobalError` (a `pickle.UnpicklingError`).
    """

    def find_class(self, module: str, name: str) -> Any:
        """Map the few allowed (module, name) pairs to the objects; refuse everything else."""
        allowed = _allowed_globals()
        if (module, name) in allowed:
            return allowed[(module, name)]
        raise RefusedGlobalError(f"refused global '{module}.{name}'")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) → object for numpy array unpickling, under numpy 1.x and 2.x names."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


def restricted_unpickle(data: bytes) -> Any:
    """Unpickle `data` allowing only numpy arrays, dtypes and plain containers (raises on others)."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()


def load_cifar10(cfg: Cifar10Data) -> RawData:
    """The 50 000 CIFAR-10 training images (data_batch_1..5) as [n, 3, 32, 32], with labels.

    The test batch is not loaded: the holdout comes from the deterministic split. Class names come
    from `batches.meta` (standard names if it is absent).
    """
    from pfgmctl.data import RawData

    root = _cifar_root(cfg.path)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for k in range(1, 6):  # only as many batches as `n` needs
        data, lab = _cifar_batch(root / f"data_batch_{k}")
        images.append(data)
        labels.append(lab)
        if cfg.n is not None and sum(len(a) for a in labels) >= cfg.n:
            break
    x = np.concatenate(images)
    y = np.concatenate(labels)
    if cfg.n is not None:
        if cfg.n > x.shape[0]:
            raise DataError(
                f"CIFAR-10 in '{root}' has {x.shape[0]} training images but [data] n = {cfg.n}; "
                "lower n or omit it"
            )
        x, y = x[: cfg.n], y[: cfg.n]
    rows = to_unit_range(x.reshape(-1, 3, 32, 32))
    return RawData(rows, "cifar10", torch.from_numpy(y), _cifar_names(root))


def _cifar_root(path: str) -> Path:
    """The `cifar-10-batches-py` directory: `path` itself or `path/cifar-10-batches-py`."""
    hint = (
        f"download cifar-10-python.tar.gz from {CIFAR10_URL} and extract it "
        "(tar xzf cifar-10-python.tar.gz), then set [data] path to the cifar-10-batches-py "
        "folder; pfgmctl never downloads"
    )
    root = Path(path).expanduser()
    if root.is_file():
        raise DataError(f"CIFAR-10 path '{root}' is a file, not a folder; {hint}")
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise DataError(f"CIFAR-10 data not found at '{root}'; {hint}")
    if not (root / "data_batch_1").is_file():
        raise DataError(f"CIFAR-10 folder '{root}' has no data_batch_1; {hint}")
    return root


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file → uint8 [m, 3072] and int64 [m], every failure a one-line DataError."""
    fix = "re-extract cifar-10-python.tar.gz"
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch '{path}' is missing; {fix}")
    try:
        batch = restricted_unpickle(path.read_bytes())
    except RefusedGlobalError as err:
        raise DataError(
            f"CIFAR-10 batch '{path}' is unsafe ({err}: not a CIFAR-10 file); {fix}"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OSError,
        MemoryError,
    ) as err:
        detail = " ".join(str(err).split()) or type(err).__name__
        raise DataError(
            f"CIFAR-10 batch '{path}' is truncated or corrupt ({detail}); {fix}"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"CIFAR-10 batch '{path}' lacks the data/labels entries; {fix}")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != 3072
        or labels.shape != (data.shape[0],)
        or labels.dtype.kind not in "iu"
        or (labels.size and (labels.min() < 0 or labels.max() > 9))
    ):
        raise DataError(f"CIFAR-10 batch '{path}' does not hold uint8 [m, 3072] images; {fix}")
    return data, labels.astype(np.int64)


def _cifar_names(root: Path) -> tuple[str, ...]:
    """Class names from batches.meta (b'label_names'), or the standard ten."""
    meta = root / "batches.meta"
    try:
        names = restricted_unpickle(meta.read_bytes())[b"label_names"]
        out = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    except Exception:  # a missing or odd meta file only costs the names
        return CIFAR10_CLASSES
    return out if len(out) == 10 else CIFAR10_CLASSES


# --- procedural shapes -----------------------------------------------------------------------


def load_shapes(cfg: ShapesData) -> RawData:
    """`n` images of one disc, square or triangle (label = shape) on a plain background.

    All parameters come from one `torch.Generator` seeded by `seed`: shape, centre, circumradius
    (0.22–0.42 of the side, kept inside the frame), rotation, and a light-on-dark or dark-on-light
    colour pair (per channel: light U[150, 255], dark U[0, 100]). Drawn at 4× and box-filtered
    down (`Image.reduce`), so edges are anti-aliased.
    """
    from pfgmctl.data import RawData

    res, n = cfg.resolution, cfg.n
    gen = torch.Generator().manual_seed(cfg.seed)
    kind = torch.randint(len(SHAPES), (n,), generator=gen)
    radius = (0.22 + 0.20 * torch.rand(n, generator=gen)) * res
    centre = radius[:, None] + torch.rand(n, 2, generator=gen) * (res - 2 * radius[:, None])
    angle = torch.rand(n, generator=gen) * 2 * math.pi
    light = 150 + torch.rand(n, cfg.channels, generator=gen) * 105
    dark = torch.rand(n, cfg.channels, generator=gen) * 100
    swap = torch.rand(n, 1, generator=gen) < 0.5
    fg = torch.where(swap, dark, light).round().to(torch.uint8)
    bg = torch.where(swap, light, dark).round().to(torch.uint8)
    mode = "L" if cfg.channels == 1 else "RGB"
    out = np.empty((n, res, res, cfg.channels), dtype=np.uint8)
    for i in range(n):
        img = _draw_shape(
            mode,
            res,
            int(kind[i]),
            (float(centre[i, 0]), float(centre[i, 1])),
            float(radius[i]),
            float(angle[i]),
            tuple(int(v) for v in fg[i]),
            tuple(int(v) for v in bg[i]),
        )
        out[i] = np.asarray(img).reshape(res, res, cfg.channels)
    x = to_unit_range(out.transpose(0, 3, 1, 2))
    return RawData(x, f"shapes{res}", kind.to(torch.int64), SHAPES)


def _draw_shape(
    mode: str,
    res: int,
    kind: int,
    centre: tuple[float, float],
    radius: float,
    angle: float,
    fg: tuple[int, ...],
    bg: tuple[int, ...],
) -> Image.Image:
    """One shape drawn at 4× resolution and reduced to res×res (box filter)."""
    s = _SUPERSAMPLE
    fill: int | tuple[int, ...] = fg[0] if mode == "L" else fg
    back: int | tuple[int, ...] = bg[0] if mode == "L" else bg
    img = Image.new(mode, (res * s, res * s), back)
    draw = ImageDraw.Draw(img)
    cx, cy, r = centre[0] * s, centre[1] * s, radius * s
    if SHAPES[kind] == "disc":
        r *= 0.85  # a disc of the full circumradius looks much bigger than the polygons
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        corners = 4 if SHAPES[kind] == "square" else 3
        pts = [
            (
                cx + r * math.cos(angle + 2 * math.pi * j / corners),
                cy + r * math.sin(angle + 2 * math.pi * j / corners),
            )
            for j in range(corners)
        ]
        draw.polygon(pts, fill=fill)
    return img.reduce(s)
