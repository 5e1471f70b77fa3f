"""`pfgmctl sample` on image models: --class, per-image PNGs, PNG metadata, batch invariance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pfgmctl.cli import app
from pfgmctl.cli.sample import labels_for_seeds, parse_classes
from pfgmctl.engine.grid import class_grid, image_grid, image_png, to_uint8
from pfgmctl.errors import UsageError

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny kernels: one intra-op thread is faster

TINY_DIGITS = [
    "data.n=300",
    "net.hidden=32",
    "net.blocks=1",
    "net.emb_dim=16",
    "train.batch_size=64",
    "train.kimg=0.128",
    "train.tick_kimg=0.064",
    "train.warmup_kimg=0",
    "train.lr=1e-2",
    "train.ckpt_ticks=1",
    "train.preview_n=4",
    "train.device=cpu",
    "sample.steps=3",
]
"""Two training steps of an MLP on the 1×8×8 digits: an image-shaped model in about a second."""


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), prog_name="pfgmctl")
    return result.exit_code, result.stdout, result.stderr


def _train(outdir: Path, *extra: str) -> Path:
    sets = [a for item in (*TINY_DIGITS, *extra) for a in ("--set", item)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code, out, err = invoke("train", "--profile", "digits", *sets, "-o", str(outdir), "--json")
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    return Path(json.loads(out)["run_dir"])


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-conditional digits run (10 classes named "0".."9")."""
    return _train(tmp_path_factory.mktemp("cond"), "data.conditional=true")


@pytest.fixture(scope="module")
def uncond_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train(tmp_path_factory.mktemp("uncond"))


def assert_usage_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ---------------------------------------------------------------------------------------------
# Class parsing (pure)
# ---------------------------------------------------------------------------------------------


def test_parse_classes_forms() -> None:
    names = ("cat", "dog", "1", "0")
    assert parse_classes(["3"], 10, ()) == [3]
    assert parse_classes(["0-2", "7", "1"], 10, ()) == [0, 1, 2, 7]  # repeats dropped
    assert parse_classes(["2,0-1"], 10, ()) == [2, 0, 1]
    assert parse_classes(["dog", "cat"], 4, names) == [1, 0]
    assert parse_classes(["1"], 4, names) == [2]  # a name wins over the index
    with pytest.raises(UsageError, match="out of range"):
        parse_classes(["10"], 10, ())
    with pytest.raises(UsageError, match="not a class"):
        parse_classes(["horse"], 4, names)
    with pytest.raises(UsageError, match="empty"):
        parse_classes(["5-3"], 10, ())


def test_labels_follow_the_seed_not_the_slot() -> None:
    assert labels_for_seeds([0, 1, 2, 3, 10, 11], list(range(10))) == [0, 1, 2, 3, 0, 1]
    assert labels_for_seeds([5, 6, 7], [4, 9]) == [9, 4, 9]


# ---------------------------------------------------------------------------------------------
# Grid helpers (pure)
# ---------------------------------------------------------------------------------------------


def test_image_grid_clamps_and_handles_gray_and_rgb() -> None:
    gen = torch.Generator().manual_seed(0)
    for c, mode in ((1, "L"), (3, "RGB")):
        x = torch.randn(3, c, 4, 4, generator=gen) * 3  # well outside [-1, 1]
        arr = np.asarray(image_grid(x, nrow=3, pad=0))
        assert image_grid(x).mode == mode
        expect = np.clip(np.round((x.clamp(-1, 1).numpy() + 1) * 127.5), 0, 255)
        got = arr.reshape(4, 3, 4, c) if c == 3 else arr.reshape(4, 3, 4, 1)
        np.testing.assert_array_equal(got.transpose(1, 3, 0, 2), expect)


def test_class_grid_puts_one_class_per_row() -> None:
    x = torch.stack([torch.full((1, 2, 2), v) for v in (-1.0, 0.0, 1.0, -0.5, 0.5)])
    labels = torch.tensor([4, 7, 4, 7, 4])
    arr = np.asarray(class_grid(x, labels, [7, 4], pad=0))
    assert arr.shape == (2 * 2, 3 * 2)  # 2 classes (rows) × 3 images max (cols)
    row7 = [arr[0, 0], arr[0, 2], arr[0, 4]]
    row4 = [arr[2, 0], arr[2, 2], arr[2, 4]]
    assert row7 == [to_uint8(torch.tensor(0.0)), to_uint8(torch.tensor(-0.5)), 255]  # padded
    assert row4 == [0, 255, to_uint8(torch.tensor(0.5))]


def test_image_png_is_native_resolution() -> None:
    x = torch.linspace(-1, 1, 3 * 5 * 7).reshape(3, 5, 7)
    img = image_png(x)
    assert img.size == (7, 5)
    np.testing.assert_array_equal(np.asarray(img), to_uint8(x).permute(1, 2, 0).numpy())


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_conditional_npz_labels_default_and_given(cond_run: Path) -> None:
    code, out, err = invoke("sample", "--run", str(cond_run), "-n", "12", "--out", "a.npz")
    assert code == 0, err
    a = np.load("a.npz")
    assert a["samples"].shape == (12, 1, 8, 8)
    assert a["labels"].tolist() == [s % 10 for s in range(12)]  # classes cycle over the seeds
    code, out, err = invoke(
        "sample", "--run", str(cond_run), "--seeds", "5-8", "--class", "3", "--out", "b.npz"
    )
    assert code == 0, err
    assert np.load("b.npz")["labels"].tolist() == [3, 3, 3, 3]
    args = ["sample", "--run", str(cond_run), "-n", "4", "--class", "1", "--class", "7"]
    code, out, err = invoke(*args, "--out", "c.npz", "--json")
    assert code == 0, err
    assert np.load("c.npz")["labels"].tolist() == [1, 7, 1, 7]
    assert json.loads(out)["classes"] == [1, 7]


def test_class_changes_the_sample(cond_run: Path) -> None:
    base = ["sample", "--run", str(cond_run), "--seeds", "4"]
    assert invoke(*base, "--class", "0", "--out", "c0.npz")[0] == 0
    assert invoke(*base, "--class", "9", "--out", "c9.npz")[0] == 0
    c0, c9 = np.load("c0.npz")["samples"], np.load("c9.npz")["samples"]
    assert np.abs(c0 - c9).max() > 1e-2  # same seed and prior draw, different label


def test_image_identical_at_batch_1_and_7(cond_run: Path) -> None:
    base = ["sample", "--run", str(cond_run), "--seeds", "0-6"]
    assert invoke(*base, "--batch", "1", "--out", "b1.npz")[0] == 0
    assert invoke(*base, "--batch", "7", "--out", "b7.npz")[0] == 0
    b1, b7 = np.load("b1.npz")["samples"], np.load("b7.npz")["samples"]
    np.testing.assert_allclose(b1, b7, rtol=1e-5, atol=1e-5)  # BLAS rounding differs by batch
    # and seed 3 alone is image 3 of the batch
    assert invoke(*base[:3], "--seeds", "3", "--out", "s3.npz")[0] == 0
    np.testing.assert_allclose(np.load("s3.npz")["samples"][0], b7[3], rtol=1e-5, atol=1e-5)


def test_grid_png_rows_are_classes_and_metadata(cond_run: Path) -> None:
    code, _, err = invoke("sample", "--run", str(cond_run), "-n", "20", "--out", "g.png")
    assert code == 0, err
    with Image.open("g.png") as im:
        # 10 rows (classes) × 2 columns of 8×8 images, pad 1, enlarged ×4 to reach 32 px
        assert im.size == ((2 * 9 + 1) * 4, (10 * 9 + 1) * 4)
        text = dict(im.text)
    assert text["pfgmctl_version"]
    assert text["profile_name"] == "digits"
    assert text["checkpoint"].endswith(".safetensors")
    assert text["step"] == "2"
    assert text["seeds"] == "0-19"
    assert text["classes"].startswith("0, 1, 2")
    assert text["solver"] == "heun"
    assert text["steps"] == "3"
    assert text["nfe"] == "5"
    assert 'name = "digits"' in text["profile"]


def test_per_image_pngs_and_manifest(cond_run: Path) -> None:
    run = ["sample", "--run", str(cond_run), "--seeds", "3-5,12", "--class", "2"]
    code, _, err = invoke(*run, "--out", "imgs/")
    assert code == 0, err
    assert invoke(*run, "--out", "ref.npz")[0] == 0
    ref = np.load("ref.npz")["samples"]
    for i, seed in enumerate([3, 4, 5, 12]):
        with Image.open(f"imgs/{seed:06d}.png") as im:
            assert im.size == (8, 8)
            assert im.mode == "L"
            assert im.text["seed"] == str(seed)
            assert im.text["class"] == "2"
            assert im.text["profile_name"] == "digits"
            assert im.text["nfe"] == "5"
            expect = to_uint8(torch.from_numpy(ref[i, 0])).numpy()
            np.testing.assert_array_equal(np.asarray(im), expect)
    manifest = json.loads(Path("imgs/samples.json").read_text())
    assert manifest["seeds"] == [3, 4, 5, 12]
    assert manifest["classes"] == [2, 2, 2, 2]
    assert manifest["nfe"] == 5
    assert manifest["profile"] == "digits"
    assert [e["file"] for e in manifest["images"]] == [
        "000003.png",
        "000004.png",
        "000005.png",
        "000012.png",
    ]


def test_per_image_never_overwrites_without_force(cond_run: Path) -> None:
    Path("imgs").mkdir()
    Path("imgs/000002.png").write_bytes(b"keep")
    code, _, err = invoke("sample", "--run", str(cond_run), "-n", "4", "--out", "imgs")
    assert_usage_error(code, err, "000002.png", "--force")
    assert sorted(p.name for p in Path("imgs").iterdir()) == ["000002.png"]  # nothing written
    assert Path("imgs/000002.png").read_bytes() == b"keep"
    code, _, err = invoke("sample", "--run", str(cond_run), "-n", "4", "--out", "imgs", "--force")
    assert code == 0, err
    assert len(list(Path("imgs").glob("*.png"))) == 4


def test_class_usage_errors(cond_run: Path, uncond_run: Path) -> None:
    code, _, err = invoke("sample", "--run", str(uncond_run), "-n", "2", "--class", "1")
    assert_usage_error(code, err, "--class", "unconditional")
    code, _, err = invoke("sample", "--run", str(cond_run), "-n", "2", "--class", "10")
    assert_usage_error(code, err, "--class", "out of range", "0-9")
    code, _, err = invoke("sample", "--run", str(cond_run), "-n", "2", "--class", "x")
    assert_usage_error(code, err, "--class", "'x'")
    code, _, err = invoke("sample", "--exact", "moons", "--class", "1")
    assert_usage_error(code, err, "--class", "--exact")
    code, _, err = invoke("sample", "--run", str(cond_run), "-n", "2", "--out", "imgs")
    assert_usage_error(code, err, "--out imgs", "trailing slash")
    assert not list(Path.cwd().glob("*.png"))


def test_unconditional_npz_has_no_labels(uncond_run: Path) -> None:
    code, _, err = invoke("sample", "--run", str(uncond_run), "-n", "3", "--out", "u.npz")
    assert code == 0, err
    assert "labels" not in np.load("u.npz").files


def test_per_image_needs_image_samples() -> None:
    code, _, err = invoke("sample", "--exact", "moons", "--set", "data.n=32", "--out", "pts/")
    assert_usage_error(code, err, "pts/", "per-image", ".npz")
    assert not Path("pts").exists()


def test_unet_sample_identical_at_batch_1_and_7() -> None:
    """EDM's per-seed RNG through a (tiny, random) class-conditional U-Net: batch size is invisible."""
    from pfgmctl.config.schema import PFGMPPMethod, Profile, UNetNet
    from pfgmctl.engine.build import build_method, build_model
    from pfgmctl.sampling import sample

    net = UNetNet(model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=(4,))
    prof = Profile(method=PFGMPPMethod(aug_dim=128.0), net=net)
    model = build_model(prof, (1, 8, 8), num_classes=3).eval()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():  # a random init (the output conv starts near 0): make the net matter
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    seeds, labels = [10, 11, 12, 13, 14, 15, 16], torch.tensor([0, 1, 2, 0, 1, 2, 0])
    kw = {"seeds": seeds, "shape": (1, 8, 8), "steps": 3, "labels": labels}
    one = sample(build_method(prof), model, batch=1, **kw)
    seven = sample(build_method(prof), model, batch=7, **kw)
    assert one.x.shape == (7, 1, 8, 8)
    torch.testing.assert_close(one.x, seven.x, rtol=1e-4, atol=1e-4)  # fp32 conv rounding
    other = sample(build_method(prof), model, batch=7, **{**kw, "labels": labels.roll(1)})
    assert (other.x - seven.x).abs().max() > 1e-3  # the labels reach the net
