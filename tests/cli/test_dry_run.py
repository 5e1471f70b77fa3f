"""`pfgmctl train --dry-run`: resolved profile, parameter count, data summary, missing data."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import tomli
from typer.testing import CliRunner

from pfgmctl.cli import app

runner = CliRunner()


def _fake_cifar_module() -> ModuleType:
    """tests/data/fake_cifar.py (helper H2's CIFAR-10 python-format writer), imported by path."""
    if "fake_cifar" in sys.modules:
        return sys.modules["fake_cifar"]
    path = Path(__file__).parents[1] / "data" / "fake_cifar.py"
    spec = importlib.util.spec_from_file_location("fake_cifar", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_cifar"] = module
    spec.loader.exec_module(module)
    return module


fake_cifar = _fake_cifar_module()

DDPMPP_PARAMS = 62e6
"""score_sde's DDPM++ (nf 128, ch_mult 1,2,2,2, 4 blocks, attention at 16²): 62M parameters."""
NCSNPP_EDM_PARAMS = 56e6
"""EDM's CIFAR-10 SongUNet (128 × [2,2,2], 4 blocks): about 56M (pfgmpp_ipfm.md §A8)."""


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), prog_name="pfgmctl")
    return result.exit_code, result.stdout, result.stderr


def dry_json(*args: str) -> tuple[int, dict, str]:
    code, out, err = invoke("train", "--dry-run", "--json", *args)
    return code, (json.loads(out) if out.strip() else {}), err


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake `cifar-10-batches-py` with 5 × 20 training images."""
    return fake_cifar.write_fake_cifar(tmp_path_factory.mktemp("cifar"), n_per_batch=20)


def _stderr_line(err: str, key: str) -> str:
    lines = [ln.strip() for ln in err.splitlines() if ln.strip().startswith(f"{key}:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.slow  # builds the 62M-parameter DDPM++ (on the meta device)
def test_cifar10_without_data_says_missing_and_exits_1() -> None:
    code, out, err = invoke("train", "--profile", "cifar10", "--dry-run")
    assert code == 1, err
    prof = tomli.loads(out)  # the whole profile still comes out, as TOML
    assert prof["net"]["kind"] == "unet"
    assert prof["method"]["m"] == 291.0
    data = _stderr_line(err, "data")
    assert data.startswith("data: MISSING")
    assert "cifar-10-batches-py" in data
    assert "cifar.html" in data  # how to get it
    count = int(_stderr_line(err, "parameters").split(":")[1].replace(",", ""))
    assert abs(count - DDPMPP_PARAMS) / DDPMPP_PARAMS < 0.02
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith("error: data missing")
    assert "data.path" in last
    assert not Path("runs").exists()

    code, info, err = dry_json("--profile", "cifar10")
    assert code == 1, err
    assert "cifar-10-batches-py" in info["data_missing"]
    assert info["item_shape"] == [3, 32, 32]
    assert info["parameters"] == count


@pytest.mark.slow  # builds the 62M-parameter DDPM++ (on the meta device)
def test_cifar10_with_fake_data(cifar_dir: Path) -> None:
    code, info, err = dry_json("--profile", "cifar10", "--set", f"data.path={cifar_dir}")
    assert code == 0, err
    assert abs(info["parameters"] - DDPMPP_PARAMS) / DDPMPP_PARAMS < 0.02
    assert info["n_train"] == 100
    assert info["n_holdout"] == 0
    assert info["item_shape"] == [3, 32, 32]
    assert info["num_classes"] == 0
    pixels = np.concatenate([fake_cifar.fake_pixels(k, 20) for k in range(1, 6)])
    rows = pixels.astype(np.float64) / 127.5 - 1.0  # the [−1, 1] scaling of pfgm.md §2.1
    assert info["mean_norm"] == pytest.approx(np.linalg.norm(rows, axis=1).mean(), rel=1e-6)
    resolved = tomli.loads(info["resolved_profile"])
    assert resolved["method"]["n_charges"] == 100  # B_L capped at the 100 training images
    assert "n_charges = 100  # capped" in info["resolved_profile"]
    assert info["derived"] == ["n_charges = 100"]
    assert resolved["method"]["m"] == 291.0  # explicit paper values are kept

    code, info, err = dry_json(
        "--profile", "cifar10", "--set", f"data.path={cifar_dir}", "--set", "data.conditional=true"
    )
    assert code == 0, err
    assert info["num_classes"] == 10
    assert info["class_names"] == list(fake_cifar.CLASSES)


@pytest.mark.slow  # builds the 56M-parameter NCSN++
def test_pfgmpp_d2048_parameters(cifar_dir: Path) -> None:
    args = ("--profile", "cifar10-pfgmpp-d2048", "--set", f"data.path={cifar_dir}")
    code, out, err = invoke("train", "--dry-run", *args)
    assert code == 0, err
    assert "aug_dim = 2048.0" in out
    count = int(_stderr_line(err, "parameters").split(":")[1].replace(",", ""))
    assert abs(count - NCSNPP_EDM_PARAMS) / NCSNPP_EDM_PARAMS < 0.03
    data = _stderr_line(err, "data")
    assert "100 train" in data
    assert "3×32×32" in data
    assert "mean norm" in data


@pytest.mark.slow  # builds the 256² DDPM++ on the meta device
@pytest.mark.parametrize(("name", "res"), [("celeba64", 64), ("lsun-bedroom256", 256)])
def test_folder_profiles_without_data(name: str, res: int) -> None:
    code, info, err = dry_json("--profile", name)
    assert code == 1, err
    assert info["item_shape"] == [3, res, res]
    assert info["parameters"] > 30e6
    assert "not found" in info["data_missing"]


def test_existing_but_broken_data_is_a_plain_error() -> None:
    Path("empty").mkdir()
    code, out, err = invoke(
        "train",
        "--profile",
        "toy2d-pfgm",
        "--set",
        "data.kind=cifar10",
        "--set",
        "data.path=empty",
        "--set",
        "net.kind=mlp",
        "--dry-run",
    )
    assert code == 2, err
    assert "data_batch_1" in err
    assert "MISSING" not in err
    assert out == ""


def test_missing_array_has_unknown_parameter_count() -> None:
    code, _out, err = invoke(
        "train",
        "-p",
        "toy2d-pfgm",
        "--set",
        "data.kind=array",
        "--set",
        "data.path=nope.npy",
        "--dry-run",
    )
    assert code == 1, err
    assert "parameters: unknown" in err
    assert "data: MISSING" in err
    assert "nope.npy" in err
    assert "derived: m, z_max, upper_norm, z_exp (to be derived from the data" in err


def test_derived_pfgm_keys_are_marked_and_recomputed() -> None:
    code, info, err = dry_json("--profile", "toy2d-pfgm", "--set", "data.n=2000")
    assert code == 0, err
    text = info["resolved_profile"]
    method = tomli.loads(text)["method"]
    for key in ("m", "z_max", "upper_norm"):
        assert any(ln.startswith(f"{key} = ") and "# derived" in ln for ln in text.splitlines())
    # pfgm.md §2.6, recomputed from the reported mean norm (N = 2, σ = 0.01, τ = 0.03)
    n, sigma, tau = 2, method["sigma"], method["tau"]
    ratio = info["mean_norm"] ** 2 / (2 * math.sqrt(n) * sigma**2)
    m = math.floor(0.75 * math.log(ratio) / math.log(1 + tau)) + 1
    assert method["m"] == m
    assert method["z_max"] == pytest.approx(math.sqrt(2 / math.pi) * sigma * (1 + tau) ** m)
    assert method["upper_norm"] == pytest.approx(math.sqrt(n) * sigma * (1 + tau) ** m)
    assert method["z_exp"] == pytest.approx(method["z_max"] / 8)
    assert [d.split(" = ")[0] for d in info["derived"]] == [
        "m",
        "z_max",
        "upper_norm",
        "z_exp",
        "n_charges",  # B_L 4096 capped at the 2000 rows
    ]
    assert method["n_charges"] == 2000
    assert info["n_train"] == 2000
    assert info["item_shape"] == [2]
    assert not Path("runs").exists()
