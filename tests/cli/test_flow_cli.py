"""encode / sample --latents / likelihood / interpolate through the CLI (issue 4)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import pfgmctl.cli.encode
import pfgmctl.cli.interpolate
import pfgmctl.cli.likelihood  # (these imports register the commands)
from pfgmctl.cli import app
from pfgmctl.physics.empirical import mixture_log_prob
from pfgmctl.physics.kernels import sample_noise

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), prog_name="pfgmctl")
    return result.exit_code, result.stdout, result.stderr


def one_line_error(err: str) -> None:
    assert err.startswith("error:")
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def train(tiny: list[str], *extra: str) -> str:
    code, out, err = invoke("train", "--profile", "toy2d-pfgmpp", *tiny, *extra, "--json")
    assert code == 0, err
    return json.loads(out)["run_dir"]


def test_encode_round_trip_and_decode_latents(one_thread: None, tiny: list[str]) -> None:
    run = train(tiny)
    code, out, err = invoke(
        "encode", "--run", run, "--data", "train", "-n", "32", "--out", "lat.npz",
        "--rtol", "1e-5", "--atol", "1e-5", "--device", "cpu", "--json",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert info["round_trip_rel_error"]["max"] <= 1e-3
    assert info["data_at"]["sigma"] == pytest.approx(0.002)
    with np.load("lat.npz") as f:
        assert f["latents"].shape == (32, 2)
        assert str(f["model_id"]) == info["model_id"]
        assert json.loads(str(f["settings"]))["solver"] == "dopri5"
        assert np.linalg.norm(f["latents"], axis=1).mean() > 50  # at σ_max = 80
    code, out, err = invoke(
        "sample", "--run", run, "--latents", "lat.npz", "--out", "dec.npz", "--json",
        "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    with np.load("dec.npz") as f:
        assert f["samples"].shape == (32, 2)
    # Latents from another model, or of another shape: one-line usage errors, nothing written.
    other = train(tiny, "--set", "train.seed=7")
    code, _, err = invoke("sample", "--run", other, "--latents", "lat.npz", "--out", "x.npz")
    assert code == 2
    one_line_error(err)
    assert "another model" in err
    np.savez("bad.npz", latents=np.zeros((4, 3)))
    code, _, err = invoke("sample", "--run", run, "--latents", "bad.npz", "--out", "x.npz")
    assert code == 2
    one_line_error(err)
    code, _, err = invoke("sample", "--run", run, "--latents", "lat.npz", "-n", "3")
    assert code == 2
    assert not Path("x.npz").exists()


def charges(tmp: Path, n_dim: int = 2) -> tuple[Path, Path, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    y = 0.5 * torch.randn(5, n_dim, generator=gen, dtype=torch.float64)
    y = y - y.mean(0)
    x = y[torch.arange(8) % 5] + sample_noise((8, n_dim), 0.05, 128.0, generator=gen)
    np.save(tmp / "charges.npy", y.numpy())
    np.save(tmp / "points.npy", x.numpy())
    return tmp / "charges.npy", tmp / "points.npy", y, x


def test_likelihood_exact_oracle(one_thread: None, tmp_path: Path) -> None:
    data, points, y, x = charges(tmp_path)
    code, out, err = invoke(
        "likelihood", "--exact", str(data), "--profile", "toy2d-pfgmpp",
        "--set", "method.sigma_min=0.05", "--data", str(points), "--out", "lp.npz",
        "--rtol", "1e-7", "--atol", "1e-7", "--device", "cpu", "--json",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert info["evaluated_at"]["sigma"] == pytest.approx(0.05)
    assert info["evaluated_at"]["r"] == pytest.approx(0.05 * math.sqrt(128))
    assert info["divergence"] == "exact"
    with np.load("lp.npz") as f:
        lp = torch.from_numpy(f["log_prob"])
    ref = mixture_log_prob(x.float().double(), y.float().double(), 0.05, 128.0)
    assert (lp - ref).abs().max() < 1e-3
    assert info["nll_nats"] == pytest.approx(-float(lp.mean()))
    assert info["bits_per_dim"] == pytest.approx(info["nll_nats"] / (2 * math.log(2)))
    assert info["nll_se"] == pytest.approx(float(lp.std()) / math.sqrt(8))


def test_likelihood_bin_width_and_hutchinson(one_thread: None, tmp_path: Path) -> None:
    data, points, _, _ = charges(tmp_path, n_dim=8)
    code, out, err = invoke(
        "likelihood", "--exact", str(data), "--profile", "toy2d-pfgmpp",
        "--set", "method.sigma_min=0.05", "--data", str(points), "--bin-width", "0.125",
        "--divergence", "hutchinson", "--probes", "2", "--device", "cpu", "--json",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert info["divergence"] == "hutchinson"
    assert info["dequantized"] is True
    assert info["bits_per_dim_offset"] == pytest.approx(3.0)
    assert info["bits_per_dim"] == pytest.approx(info["nll_nats"] / (8 * math.log(2)) + 3.0)


def test_likelihood_errors(tmp_path: Path) -> None:
    data, points, _, _ = charges(tmp_path)
    base = ["likelihood", "--exact", str(data), "--profile", "toy2d-pfgmpp"]
    code, _, err = invoke(*base, "--data", "missing.npy")
    assert code == 2  # DataError is a usage error
    one_line_error(err)
    code, _, err = invoke(*base, "--data", "nowhere")
    assert code == 2
    one_line_error(err)
    code, _, err = invoke(*base, "--data", str(points), "--divergence", "magic")
    assert code == 2
    one_line_error(err)
    np.save(tmp_path / "wide.npy", np.zeros((3, 5)))
    code, _, err = invoke(*base, "--data", str(tmp_path / "wide.npy"))
    assert code == 2
    one_line_error(err)
    Path("lp.npz").write_text("keep")
    code, _, err = invoke(*base, "--data", str(points), "--out", "lp.npz")
    assert code == 2
    assert Path("lp.npz").read_text() == "keep"
    code, _, err = invoke("likelihood", "--run", "r", "--exact", str(data))
    assert code == 2
    one_line_error(err)


def test_interpolate_png_gif_and_temperature(one_thread: None, tmp_path: Path) -> None:
    data, _, _, _ = charges(tmp_path)
    base = ["interpolate", "--exact", str(data), "--profile", "toy2d-pfgmpp", "--device", "cpu"]
    code, out, err = invoke(*base, "--seeds", "0-3", "-k", "5", "--gif", "a.gif", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["paths"], info["k"]) == (2, 5)
    assert Image.open("interpolation.png").size == (512, 512)
    with Image.open("a.gif") as gif:
        assert gif.format == "GIF"  # Pillow merges identical frames (the exact model hits data)
        assert gif.is_animated
    code, out, err = invoke(*base, "--mode", "temperature", "--out", "t.png", "--json")
    assert code == 0, err
    assert json.loads(out)["paths"] == 2
    code, _, err = invoke(*base, "--seeds", "0-2", "--out", "odd.png")
    assert code == 2
    one_line_error(err)
    code, _, err = invoke(*base, "--mode", "spiral", "--out", "s.png")
    assert code == 2
    one_line_error(err)


def test_interpolate_rows_of_images(one_thread: None, tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1)
    imgs = torch.rand(6, 1, 4, 4, generator=gen) * 2 - 1
    np.save(tmp_path / "imgs.npy", imgs.numpy())
    code, _, err = invoke(
        "interpolate", "--exact", str(tmp_path / "imgs.npy"), "--profile", "toy2d-pfgmpp",
        "--rows", "0,1", "--data", "train", "-k", "4", "--mode", "linear", "--device", "cpu",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    picture = Image.open("interpolation.png")
    assert picture.width > picture.height  # one row of 4 images


def test_bits_per_dim_offsets() -> None:
    from pfgmctl.cli.likelihood import bits_per_dim, summary

    # 8-bit data in [−1, 1]: levels 2/256 apart → +7 bits (pfgm.md §6); digits: 1/8 → +3 bits.
    assert bits_per_dim(0.0, 3072, 2 / 256) == pytest.approx(7.0)
    assert bits_per_dim(0.0, 64, pfgmctl.cli.encode.DIGITS_BIN) == pytest.approx(3.0)
    assert bits_per_dim(-64 * math.log(2), 64, None) == pytest.approx(1.0)
    s = summary(torch.tensor([-1.0, -3.0]), 1, None)
    assert s["nll_nats"] == pytest.approx(2.0)
    assert s["nll_se"] == pytest.approx(1.0)
