"""Image-training throughput and the data-loading share of a step (issue 3). Prints one table.

    python tests/benchmarks/bench_images.py [--device cpu|cuda] [--steps 50] [--warmup 10]
                                            [--only digits|shapes] [--set KEY=VALUE ...]

For each case it builds the real training state and calls `_train_step` itself: warm-up steps,
then `--steps` timed steps. The data phases are timed by wrapping the engine's own helpers for the
run (training code carries no hooks): `_draw` (stream indices, row gather, host→device copy) and
`shard_batch` (shard slicing and the xflip / dequantize / augment transforms). On CUDA each timer
synchronises the device, which slightly inflates the step; the share is data / whole step.

Cases: `digits` (the built-in profile: PFGM++ D=128, MLP, 8×8, batch 256) and `shapes` (the
digits profile on procedural 16×16 RGB shapes with xflip + dequantize, batch 256).
Target: data share ≤ 5 %.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

CASES: dict[str, list[str]] = {
    "digits": [],
    "shapes": [
        "data.kind=shapes",
        "data.n=4096",
        "data.resolution=16",
        "data.xflip=true",
        "data.dequantize=true",
    ],
}


class Timer:
    """Accumulated seconds of the wrapped calls (device-synchronised on CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = 0.0
        self.on = False

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return fn(*args, **kwargs)
            self._sync()
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self._sync()
            self.seconds += time.perf_counter() - t0
            return out

        return timed


def bench(
    name: str, overrides: list[str], device: torch.device, steps: int, warmup: int
) -> dict[str, Any]:
    """One case: images/s over `steps` steps and the data share of the step time."""
    from pfgmctl.config.load import load_profile
    from pfgmctl.data import build_dataset
    from pfgmctl.engine import train as train_mod
    from pfgmctl.engine.build import build_method, resolve

    prof = load_profile("digits", [*CASES[name], *overrides, f"train.device={device.type}"])
    dataset = build_dataset(prof.data)
    prof = resolve(prof, dataset)
    train_mod.apply_backend_flags(prof.train, device)
    state = train_mod._init_state(prof, dataset, device)
    method = build_method(prof)
    shards = train_mod.plan_shards(prof.train, 1)
    timer = Timer(device)
    real_draw, real_shard = train_mod._draw, train_mod.shard_batch
    train_mod._draw, train_mod.shard_batch = timer.wrap(real_draw), timer.wrap(real_shard)
    try:
        state.model.train()
        for _ in range(warmup):
            train_mod._train_step(state, method, prof, device, shards)
        timer.on = True
        timer._sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            train_mod._train_step(state, method, prof, device, shards)
        timer._sync()
        total = time.perf_counter() - t0
    finally:
        train_mod._draw, train_mod.shard_batch = real_draw, real_shard
    batch = prof.train.batch_size
    return {
        "case": name,
        "device": str(device),
        "item": "×".join(str(d) for d in dataset.item_shape),
        "batch": batch,
        "img_per_s": steps * batch / total,
        "step_ms": 1000 * total / steps,
        "data_ms": 1000 * timer.seconds / steps,
        "share": timer.seconds / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = [bench(c, args.overrides, device, args.steps, args.warmup) for c in args.only or CASES]
    head = f"{'case':<8} {'device':<7} {'item':<8} {'batch':>5} {'img/s':>9} {'step ms':>8} {'data ms':>8} {'data %':>7}"
    print(head)
    for r in rows:
        print(
            f"{r['case']:<8} {r['device']:<7} {r['item']:<8} {r['batch']:>5} {r['img_per_s']:>9.0f} "
            f"{r['step_ms']:>8.2f} {r['data_ms']:>8.3f} {100 * r['share']:>6.2f}%"
        )


if __name__ == "__main__":
    main()
