"""Shared fixtures: an isolated config dir and a tiny, fast profile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

TINY = [
    "data.n=512",
    "net.hidden=32",
    "net.blocks=1",
    "net.emb_dim=16",
    "train.batch_size=64",
    "train.kimg=0.64",
    "train.tick_kimg=0.128",
    "train.ckpt_ticks=2",
    "train.warmup_kimg=0.1",
    "train.ema_halflife_kimg=0.1",
    "train.preview_n=16",
    "train.device=cpu",
    "sample.steps=4",
]
"""Overrides that make any toy profile train in about a second (10 steps, 5 ticks)."""


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in its own cwd with its own user config dir and no runs-dir override."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PFGMCTL_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny() -> list[str]:
    """`--set` arguments for a tiny training run."""
    args: list[str] = []
    for item in TINY:
        args += ["--set", item]
    return args


@pytest.fixture
def tiny_keys() -> list[str]:
    """The tiny-run overrides as `key=value` strings."""
    return list(TINY)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny float64 kernels run faster on one intra-op thread (no fork/join per op)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
