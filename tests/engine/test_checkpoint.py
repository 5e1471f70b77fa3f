"""Checkpoints: weights_only state round trip, safetensors, corruption, strict loads, pruning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from pfgmctl.engine.checkpoint import (
    ema_name,
    load_any,
    load_module_strict,
    load_state,
    load_weights,
    prune,
    save_state,
    save_weights,
    state_name,
)
from pfgmctl.errors import CheckpointError, UsageError


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))


def _state(gen: torch.Generator) -> dict[str, Any]:
    net = _net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(5, 3, generator=gen)).sum().backward()
    opt.step()
    return {
        "net": net.state_dict(),
        "ema": {k: v.clone() for k, v in net.state_dict().items()},
        "opt": opt.state_dict(),
        "step": 640,
        "kimg": 81.92,
        "rng": {"data": gen.get_state(), "cpu": [gen.get_state()], "cuda": None},
        "profile": 'name = "toy"\n',
        "flags": (True, False),
    }


def test_state_round_trip_weights_only(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    state = _state(gen)
    path = tmp_path / "ckpt" / state_name(640)
    save_state(path, state)
    assert path.name == "state-000000640.pt"
    assert not path.with_name(path.name + ".tmp").exists()
    direct = torch.load(path, map_location="cpu", weights_only=True)
    assert direct["step"] == 640
    loaded = load_state(path)
    assert loaded["step"] == 640
    assert loaded["profile"] == state["profile"]
    for k, v in state["net"].items():
        assert torch.equal(loaded["net"][k], v)
    assert torch.equal(loaded["rng"]["data"], gen.get_state())
    assert loaded["opt"]["param_groups"][0]["lr"] == 1e-3
    assert loaded["rng"]["cuda"] is None


def test_save_state_rejects_objects(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"state\['model'\]"):
        save_state(tmp_path / "s.pt", {"model": _net()})


def test_load_state_missing_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_state(tmp_path / "nope.pt")
    with pytest.raises(UsageError, match="not found"):
        load_any(tmp_path / "nope.safetensors")


def test_truncated_or_pickled_state_is_checkpoint_error(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1)
    path = tmp_path / state_name(1)
    save_state(path, _state(gen))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        load_state(path)
    assert "\n" not in str(err.value)
    assert "--resume" in str(err.value)
    path.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_state(path)
    pickled = tmp_path / "pickled.pt"
    torch.save({"net": _net()}, pickled)
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        load_state(pickled)
    assert "\n" not in str(err.value)


def test_weights_round_trip_with_metadata(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(4, 6, generator=gen)
    tensors = {"a": base, "a_t": base.t(), "view": base[1:3], "i": torch.arange(5)}
    meta = {"profile": 'name = "toy"\n[method]\nkind = "pfgmpp"\n', "step": "640"}
    path = tmp_path / ema_name(640)
    save_weights(path, tensors, meta)
    assert path.name == "ema-000000640.safetensors"
    loaded, loaded_meta = load_weights(path)
    assert loaded_meta == meta
    assert set(loaded) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v)
    weights, meta2, state = load_any(path)
    assert state is None
    assert meta2 == meta
    assert torch.equal(weights["a"], base)


def test_truncated_weights_is_checkpoint_error(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(3)
    path = tmp_path / ema_name(5)
    save_weights(path, {"w": torch.randn(64, 64, generator=gen)}, {"step": "5"})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="corrupt or truncated") as err:
        load_weights(path)
    assert "\n" not in str(err.value)
    path.write_bytes(b"\x00\x01")
    with pytest.raises(CheckpointError):
        load_weights(path)


def test_load_any_state_gives_ema_weights(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(4)
    state = _state(gen)
    path = tmp_path / state_name(640)
    save_state(path, state)
    weights, meta, full = load_any(path)
    assert full is not None
    assert full["step"] == 640
    assert meta == {"profile": 'name = "toy"\n', "step": "640", "kimg": "81.92"}
    assert set(weights) == set(state["ema"])
    with pytest.raises(UsageError, match="extension"):
        load_any(tmp_path / "x.bin")
    save_state(tmp_path / "bad.pt", {"step": 1})
    with pytest.raises(CheckpointError, match="not a pfgmctl training state"):
        load_any(tmp_path / "bad.pt")


def test_load_module_strict(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(5)
    src = _net()
    with torch.no_grad():
        for p in src.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    dst = _net()
    load_module_strict(dst, src.state_dict(), "ok.safetensors")
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v)
    weights = dict(src.state_dict())
    del weights["0.bias"]
    weights["extra.w"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_module_strict(dst, weights, "ema-1.safetensors")
    msg = str(err.value)
    assert "ema-1.safetensors" in msg
    assert "missing 0.bias" in msg
    assert "unexpected extra.w" in msg
    assert "another profile" in msg
    wrong = nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5), nn.Linear(5, 2))
    with pytest.raises(CheckpointError, match=r"shape 0\.weight"):
        load_module_strict(wrong, src.state_dict(), "x")


def test_prune_keeps_newest(tmp_path: Path) -> None:
    for step in (10, 20, 30, 40):
        (tmp_path / state_name(step)).write_bytes(b"s")
        (tmp_path / ema_name(step)).write_bytes(b"e")
    (tmp_path / ema_name(50)).write_bytes(b"e")  # ema only, newest
    others = ["latest.json", "state-000000005.pt.tmp", "state-5.pt", "notes.txt"]
    for name in others:
        (tmp_path / name).write_text("x")
    deleted = prune(tmp_path, keep=3)
    assert sorted(p.name for p in deleted) == [
        ema_name(10),
        ema_name(20),
        state_name(10),
        state_name(20),
    ]
    left = sorted(p.name for p in tmp_path.iterdir())
    expected = [ema_name(30), ema_name(40), ema_name(50), state_name(30), state_name(40), *others]
    assert left == sorted(expected)
    assert prune(tmp_path, keep=3) == []
    with pytest.raises(ValueError, match="keep"):
        prune(tmp_path, keep=0)
