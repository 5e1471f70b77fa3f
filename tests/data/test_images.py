"""Image sources: folders of images, CIFAR-10 python batches, procedural shapes, npz images."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_cifar import CLASSES, fake_labels, fake_pixels, write_fake_cifar
from PIL import Image

from pfgmctl.config.schema import ArrayData, Cifar10Data, FolderData, ShapesData
from pfgmctl.data import build_dataset, holdout_indices
from pfgmctl.data.images import load_folder, load_shapes, restricted_unpickle
from pfgmctl.errors import DataError


def _solid(
    path: Path, size: tuple[int, int], colour: tuple[int, int, int], mode: str = "RGB"
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, **({"quality": 100} if path.suffix == ".jpg" else {}))


def _unit(colour: tuple[int, ...]) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.float32) / 127.5 - 1.0


# --- folder ----------------------------------------------------------------------------------


def test_folder_mixed_sizes_and_formats(tmp_path: Path) -> None:
    _solid(tmp_path / "b.png", (37, 23), (255, 0, 128))
    _solid(tmp_path / "a.jpg", (64, 64), (10, 200, 30))
    _solid(tmp_path / "sub" / "c.webp", (5, 9), (0, 0, 255))
    _solid(tmp_path / "sub" / "d.bmp", (16, 16), (7, 7, 7))
    _solid(tmp_path / "e.png", (20, 30), (90, 90, 90), mode="L")
    _solid(tmp_path / "f.png", (12, 12), (40, 50, 60), mode="RGBA")
    (tmp_path / "notes.txt").write_text("not an image")
    _solid(tmp_path / ".hidden.png", (8, 8), (1, 2, 3))
    raw = load_folder(FolderData(path=str(tmp_path), resolution=8))
    assert raw.x.shape == (6, 3, 8, 8)
    assert raw.x.dtype == torch.float32
    assert raw.labels is None
    assert raw.warnings == ()
    # sorted by relative path: a.jpg, b.png, e.png, f.png, sub/c.webp, sub/d.bmp
    expected = [(10, 200, 30), (255, 0, 128), (90, 90, 90), (40, 50, 60), (0, 0, 255), (7, 7, 7)]
    for row, colour in zip(raw.x, expected, strict=True):
        # a solid image stays solid through crop + bicubic; jpeg may be off by a level or two
        assert torch.allclose(row, _unit(colour)[:, None, None].expand(3, 8, 8), atol=3 / 127.5)


def test_folder_centre_crop(tmp_path: Path) -> None:
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :10] = (255, 0, 0)
    a[:, 10:30] = (0, 255, 0)
    a[:, 30:] = (0, 0, 255)
    Image.fromarray(a).save(tmp_path / "wide.png")
    b = np.zeros((40, 20, 3), np.uint8)  # tall: top/bottom quarters are cut
    b[:10] = (255, 255, 255)
    b[10:30] = (0, 0, 0)
    b[30:] = (255, 255, 255)
    Image.fromarray(b).save(tmp_path / "tall.png")
    raw = load_folder(FolderData(path=str(tmp_path), resolution=4))
    assert torch.equal(raw.x[0], torch.tensor([-1.0, -1.0, -1.0])[:, None, None].expand(3, 4, 4))
    assert torch.equal(raw.x[1], torch.tensor([-1.0, 1.0, -1.0])[:, None, None].expand(3, 4, 4))


def test_folder_crop_option(tmp_path: Path) -> None:
    a = np.zeros((40, 40, 3), np.uint8)
    a[10:30, 10:30] = 255  # a white 20×20 centre in a black 40×40 frame
    Image.fromarray(a).save(tmp_path / "x.png")
    full = load_folder(FolderData(path=str(tmp_path), resolution=20)).x
    cropped = load_folder(FolderData(path=str(tmp_path), resolution=20, crop=20)).x
    assert float(full.min()) == -1.0
    assert torch.equal(cropped, torch.ones(1, 3, 20, 20))


def test_folder_large_jpeg_draft(tmp_path: Path) -> None:
    a = np.zeros((400, 600, 3), np.uint8)
    a[:, :] = (200, 100, 50)
    a[150:250, 250:350] = (0, 0, 0)  # dark centre square: a third of the side after the crop
    Image.fromarray(a).save(tmp_path / "big.jpg", quality=95)
    x = load_folder(FolderData(path=str(tmp_path), resolution=12)).x[0]
    assert x.shape == (3, 12, 12)
    assert float(x[:, 5:7, 5:7].max()) < -0.9  # centre is dark
    assert torch.allclose(x[:, 0, 0], _unit((200, 100, 50)), atol=0.05)  # corner keeps colour


def test_folder_n_and_determinism(tmp_path: Path) -> None:
    for k in range(5):
        _solid(tmp_path / f"{k:02d}.png", (6, 6), (k * 50, 0, 0))
    raw = load_folder(FolderData(path=str(tmp_path), resolution=4, n=3))
    assert raw.x.shape == (3, 3, 4, 4)
    assert torch.equal(raw.x[:, 0, 0, 0], _unit((0, 50, 100)))
    assert torch.equal(raw.x, load_folder(FolderData(path=str(tmp_path), resolution=4, n=3)).x)
    with pytest.raises(DataError, match=r"has 5 images but \[data\] n = 6"):
        load_folder(FolderData(path=str(tmp_path), resolution=4, n=6))


def _classes(root: Path) -> dict[str, tuple[int, int, int]]:
    colours = {"cat": (255, 0, 0), "dog": (0, 255, 0), "emu": (0, 0, 255)}
    for name, colour in colours.items():
        for i in range(7):
            _solid(root / name / f"{i}.png", (5 + i, 6), colour)
    return colours


def test_folder_conditional_labels_follow_rows(tmp_path: Path) -> None:
    colours = _classes(tmp_path)
    ds = build_dataset(FolderData(path=str(tmp_path), resolution=4, conditional=True, holdout=0.3))
    assert ds.class_names == ("cat", "dog", "emu")
    assert ds.num_classes == 3
    assert ds.train_labels is not None
    assert ds.holdout_labels is not None
    assert ds.train.shape[0] + ds.holdout.shape[0] == 21
    assert ds.holdout.shape[0] == 7
    for rows, labels in ((ds.train, ds.train_labels), (ds.holdout, ds.holdout_labels)):
        for row, label in zip(rows, labels, strict=True):
            want = _unit(colours[ds.class_names[int(label)]])
            assert torch.equal(row[:, 0, 0], want)


def test_folder_conditional_n_keeps_all_classes(tmp_path: Path) -> None:
    _classes(tmp_path)
    raw = load_folder(FolderData(path=str(tmp_path), resolution=4, conditional=True, n=9))
    assert raw.class_names == ("cat", "dog", "emu")
    assert raw.labels is not None
    assert raw.labels.tolist() == [0] * 7 + [1] * 2


def test_folder_symlink_cycle(tmp_path: Path) -> None:
    _solid(tmp_path / "a" / "x.png", (4, 4), (0, 0, 0))
    (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert load_folder(FolderData(path=str(tmp_path), resolution=4)).x.shape == (1, 3, 4, 4)


def test_folder_unconditional_has_no_labels(tmp_path: Path) -> None:
    _classes(tmp_path)
    ds = build_dataset(FolderData(path=str(tmp_path), resolution=4))
    assert ds.num_classes == 0
    assert ds.train_labels is None


def test_folder_conditional_loose_file(tmp_path: Path) -> None:
    _classes(tmp_path)
    _solid(tmp_path / "loose.png", (4, 4), (1, 1, 1))
    with pytest.raises(DataError, match=r"loose\.png.*class sub-folder"):
        load_folder(FolderData(path=str(tmp_path), resolution=4, conditional=True))


def _truncated_png(d: Path) -> Path:
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(d / "trunc.png")  # incompressible, so half the bytes is a real cut
    data = (d / "trunc.png").read_bytes()
    (d / "trunc.png").write_bytes(data[: len(data) // 2])
    return d / "trunc.png"


def _text_as_png(d: Path) -> Path:
    (d / "fake.png").write_text("this is not a picture\n")
    return d / "fake.png"


@pytest.mark.parametrize("make", [_truncated_png, _text_as_png])
def test_folder_bad_file(tmp_path: Path, make: object) -> None:
    root = tmp_path / "imgs"
    _solid(root / "good.png", (8, 8), (0, 0, 0))
    bad = make(root)  # type: ignore[operator]
    with pytest.raises(DataError) as info:
        load_folder(FolderData(path=str(root), resolution=4))
    msg = str(info.value)
    assert str(bad) in msg
    assert "skip_bad = true" in msg
    assert "\n" not in msg
    raw = load_folder(FolderData(path=str(root), resolution=4, skip_bad=True))
    assert raw.x.shape == (1, 3, 4, 4)
    assert len(raw.warnings) == 1
    assert str(bad) in raw.warnings[0]


def test_folder_all_bad(tmp_path: Path) -> None:
    _text_as_png(tmp_path)
    with pytest.raises(DataError, match="none of the 1 image files"):
        load_folder(FolderData(path=str(tmp_path), resolution=4, skip_bad=True))


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("empty", "holds no images"),
        ("missing", "not found"),
        ("file", "is a file, not a folder"),
        ("blank", "needs a path"),
    ],
)
def test_folder_path_errors(tmp_path: Path, setup: str, needle: str) -> None:
    path = {"empty": tmp_path, "missing": tmp_path / "nope", "file": tmp_path / "f.png"}.get(setup)
    if setup == "empty":
        (tmp_path / "readme.txt").write_text("x")
    if setup == "file":
        _solid(tmp_path / "f.png", (4, 4), (0, 0, 0))
    with pytest.raises(DataError) as info:
        build_dataset(FolderData(path="" if path is None else str(path)))
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


# --- CIFAR-10 --------------------------------------------------------------------------------


def test_cifar_loads_real_format(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, n_per_batch=20)
    ds = build_dataset(Cifar10Data(path=str(root), conditional=True))
    want = np.concatenate([fake_pixels(k, 20) for k in range(1, 6)])
    labels = np.concatenate([fake_labels(k, 20) for k in range(1, 6)])
    assert ds.train.shape == (100, 3, 32, 32)
    assert torch.equal(ds.train, torch.from_numpy(want).float().view(-1, 3, 32, 32) / 127.5 - 1)
    assert ds.train_labels is not None
    assert torch.equal(ds.train_labels, torch.from_numpy(labels))
    assert ds.class_names == CLASSES
    assert ds.num_classes == 10
    # channel-major rows: pixel (c, i, j) is byte c·1024 + 32·i + j
    assert float(ds.train[0, 1, 2, 3]) == pytest.approx(
        float(want[0, 1024 + 67]) / 127.5 - 1, abs=1e-6
    )


def test_cifar_parent_path_and_n(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path, n_per_batch=20)
    ds = build_dataset(Cifar10Data(path=str(tmp_path), n=30, conditional=True))
    assert ds.train.shape == (30, 3, 32, 32)
    assert ds.train_labels is not None
    assert ds.train_labels.tolist() == fake_labels(1, 20) + fake_labels(2, 20)[:10]
    with pytest.raises(DataError, match=r"has 100 training images but \[data\] n = 101"):
        build_dataset(Cifar10Data(path=str(tmp_path), n=101))


def test_cifar_labels_follow_rows_through_holdout(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, n_per_batch=20)
    ds = build_dataset(Cifar10Data(path=str(root), conditional=True, holdout=0.25))
    train_idx, hold_idx = holdout_indices(100, 0.25)
    labels = torch.tensor([v for k in range(1, 6) for v in fake_labels(k, 20)])
    assert ds.holdout_labels is not None
    assert ds.train_labels is not None
    assert torch.equal(ds.holdout_labels, labels[hold_idx])
    assert torch.equal(ds.train_labels, labels[train_idx])
    pixels = torch.from_numpy(np.concatenate([fake_pixels(k, 20) for k in range(1, 6)]))
    assert torch.equal(ds.holdout.flatten(1), pixels[hold_idx].float() / 127.5 - 1)


def test_cifar_missing_meta_uses_standard_names(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, n_per_batch=4)
    (root / "batches.meta").unlink()
    ds = build_dataset(Cifar10Data(path=str(root), conditional=True))
    assert ds.class_names[0] == "airplane"
    assert len(ds.class_names) == 10


def test_cifar_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        build_dataset(Cifar10Data(path=str(tmp_path / "nowhere")))
    msg = str(info.value)
    assert "not found" in msg
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in msg
    assert "never downloads" in msg


def test_cifar_truncated_batch(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, n_per_batch=20)
    data = (root / "data_batch_3").read_bytes()
    (root / "data_batch_3").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        build_dataset(Cifar10Data(path=str(root)))
    assert "data_batch_3" in str(info.value)
    assert "truncated or corrupt" in str(info.value)


def test_cifar_missing_batch(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path, n_per_batch=4)
    (root / "data_batch_5").unlink()
    with pytest.raises(DataError, match="data_batch_5' is missing"):
        build_dataset(Cifar10Data(path=str(root)))


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Exploit(marker), b"labels": []}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        restricted_unpickle(payload)
    root = write_fake_cifar(tmp_path, n_per_batch=4)
    (root / "data_batch_1").write_bytes(payload)
    with pytest.raises(DataError, match=r"data_batch_1.*unsafe"):
        build_dataset(Cifar10Data(path=str(root)))
    assert not marker.exists()
    # plain numpy arrays still load
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert np.array_equal(restricted_unpickle(pickle.dumps({b"a": arr}))[b"a"], arr)


# --- shapes ----------------------------------------------------------------------------------


def test_shapes_basic() -> None:
    raw = load_shapes(ShapesData(n=300, resolution=16, seed=3))
    assert raw.x.shape == (300, 3, 16, 16)
    assert raw.x.dtype == torch.float32
    assert float(raw.x.min()) >= -1.0
    assert float(raw.x.max()) <= 1.0
    assert raw.class_names == ("disc", "square", "triangle")
    assert raw.labels is not None
    assert raw.labels.dtype == torch.int64
    counts = torch.bincount(raw.labels, minlength=3)
    assert bool((counts > 70).all())  # about 100 each
    # anti-aliased: edge pixels take values between the two colours, not just two levels
    assert all(len(torch.unique(img[0])) > 2 for img in raw.x[:20])


def test_shapes_seeded() -> None:
    a = load_shapes(ShapesData(n=50, seed=1)).x
    b = load_shapes(ShapesData(n=50, seed=1)).x
    c = load_shapes(ShapesData(n=50, seed=2)).x
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_shapes_grey_and_area() -> None:
    raw = load_shapes(ShapesData(n=200, resolution=24, channels=1, seed=0))
    assert raw.x.shape == (200, 1, 24, 24)
    assert raw.labels is not None
    # the background (corner colour) covers most of the image and the shape covers 5-45 %
    corner = raw.x[:, 0, 0, 0][:, None, None]
    fg = ((raw.x[:, 0] - corner).abs() > 0.3).float().mean((1, 2))
    assert bool((fg > 0.05).all())
    assert bool((fg < 0.6).all())
    # triangles cover less than discs on average (same circumradius law)
    assert float(fg[raw.labels == 2].mean()) < float(fg[raw.labels == 0].mean())


def test_shapes_conditional_dataset() -> None:
    ds = build_dataset(ShapesData(n=100, conditional=True, holdout=0.1))
    assert ds.num_classes == 3
    assert ds.train.shape == (90, 3, 16, 16)
    assert ds.train_labels is not None
    assert ds.train_labels.shape == (90,)


# --- npz image arrays ------------------------------------------------------------------------


def test_npz_uint8_nhwc_with_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 5, 6, 3), dtype=np.uint8)
    labels = np.arange(12) % 4
    np.savez(tmp_path / "d.npz", images=imgs, y=labels)
    cfg = ArrayData(
        path=str(tmp_path / "d.npz"),
        key="images",
        labels_key="y",
        conditional=True,
        pixels="uint8",
        layout="nhwc",
        holdout=0.25,
    )
    ds = build_dataset(cfg)
    assert ds.item_shape == (3, 5, 6)
    assert ds.class_names == ("0", "1", "2", "3")
    train_idx, _ = holdout_indices(12, 0.25)
    want = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert torch.equal(ds.train, want[train_idx])
    assert ds.train_labels is not None
    assert torch.equal(ds.train_labels, torch.from_numpy(labels)[train_idx])


def test_npz_grey_layouts(tmp_path: Path) -> None:
    imgs = np.full((4, 5, 6), 255, dtype=np.uint8)
    np.save(tmp_path / "g.npy", imgs)
    for layout in ("nchw", "nhwc"):
        cfg = ArrayData(path=str(tmp_path / "g.npy"), pixels="uint8", layout=layout)
        ds = build_dataset(cfg)
        assert ds.item_shape == (1, 5, 6)
        assert torch.equal(ds.train, torch.ones(4, 1, 5, 6))
    assert build_dataset(ArrayData(path=str(tmp_path / "g.npy"))).item_shape == (5, 6)


@pytest.mark.parametrize(
    ("arrays", "extra", "needle"),
    [
        ({"x": np.full((3, 2, 2), 300.0)}, {"pixels": "uint8"}, "integer pixels 0..255"),
        ({"x": np.full((3, 2, 2), 0.5)}, {"pixels": "uint8"}, "integer pixels 0..255"),
        ({"x": np.ones((3, 4))}, {"layout": "nhwc"}, "expects [n, H, W, C]"),
        ({"x": np.ones((3, 4))}, {"conditional": True}, "labels_key"),
        ({"x": np.ones((3, 4)), "y": np.zeros(2, int)}, {"labels_key": "y"}, "2 entries"),
        ({"x": np.ones((3, 4)), "y": np.zeros(3)}, {"labels_key": "y"}, "must be integers"),
        ({"x": np.ones((3, 4)), "y": -np.ones(3, int)}, {"labels_key": "y"}, "no negatives"),
        ({"x": np.ones((3, 4))}, {"labels_key": "lab"}, "no array 'lab'"),
    ],
)
def test_npz_image_errors(
    tmp_path: Path, arrays: dict[str, np.ndarray], extra: dict[str, object], needle: str
) -> None:
    np.savez(tmp_path / "d.npz", **arrays)  # type: ignore[arg-type]
    cfg = ArrayData.model_validate({"path": str(tmp_path / "d.npz"), "key": "x", **extra})
    with pytest.raises(DataError) as info:
        build_dataset(cfg)
    assert needle in str(info.value)
    assert "d.npz" in str(info.value)
