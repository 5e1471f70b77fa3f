"""Core-engine benchmarks (issue: core engine). Not a unit test: prints figures measured in one run.

    python tests/benchmarks/bench_core.py [--only demo|overhead|target] [--outdir DIR]

(a) the default demo (`pfgmctl train`, profile toy2d-pfgmpp): training wall time and the sliced
    Wasserstein distance of its samples next to the data-vs-data floor (two independent draws of the
    same size);
(b) sampler overhead = wall(sample, K NFE) / (K × wall(one net forward on the same batch)) for
    euler, heun and rk45, at a batch where one forward takes ≥ 5 ms;
(c) the PFGM field target (matmul/log-sum-exp) against the reference's broadcast form at N = 3072,
    B_S = 128, B_L = 1024: time, and peak memory (ru_maxrss increase in a fresh subprocess per variant).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

N_SAMPLES = 4000  # size of both SWD samples


def demo(outdir: Path, overrides: list[str]) -> None:
    """(a) Train the default profile exactly as the README's first command does, then score it."""
    from pfgmctl.data.toy2d import toy
    from pfgmctl.engine.build import build_method
    from pfgmctl.engine.inference import latest_checkpoint, load_checkpoint
    from pfgmctl.metrics import sliced_wasserstein
    from pfgmctl.sampling import sample

    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pfgmctl",
            "train",
            "--outdir",
            str(outdir),
            "--json",
            *[a for o in overrides for a in ("--set", o)],
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t0
    info = json.loads(proc.stdout)
    loaded = load_checkpoint(latest_checkpoint(Path(info["run_dir"])))
    prof = loaded.profile
    result = sample(
        build_method(prof),
        loaded.model,
        seeds=range(10_000, 10_000 + N_SAMPLES),
        shape=loaded.item_shape,
        solver=prof.sample.solver,
        steps=prof.sample.steps,
    )
    x, nfe = result.x, result.nfe
    swd, floor = [], []
    for k in range(5):  # five reference draws: both figures are means over them
        ref = toy(prof.data.name, N_SAMPLES, torch.Generator().manual_seed(1000 + k))
        other = toy(prof.data.name, N_SAMPLES, torch.Generator().manual_seed(2000 + k))
        swd.append(sliced_wasserstein(x, ref))
        floor.append(sliced_wasserstein(other, ref))
    s, f = sum(swd) / 5, sum(floor) / 5
    print(
        f"(a) default demo ({prof.name}, {prof.data.name}): train {info['seconds']:.1f} s "
        f"(command wall {wall:.1f} s, {info['step']} steps)"
    )
    print(
        f"    SWD(samples, data) = {s:.4f}   floor SWD(data, data) = {f:.4f}   "
        f"ratio = {s / f:.2f}   [n = {N_SAMPLES}, 256 projections, mean of 5 draws; "
        f"{prof.sample.solver} {prof.sample.steps} steps, NFE {nfe}]"
    )


def _time(fn, repeats: int) -> float:
    """Median wall time of one call over `repeats` calls, after a warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def overhead() -> None:
    """(b) How much the solver loop adds on top of the network evaluations.

    The forward pass is the preconditioned model on float32 inputs exactly as the sampler calls it;
    sampling and forward timings are interleaved and the median of 7 ratios is reported.
    """
    from pfgmctl.config.load import load_profile
    from pfgmctl.engine.build import build_method, build_model
    from pfgmctl.sampling import sample

    prof = load_profile("toy2d-pfgmpp", ["net.hidden=512", "net.blocks=4"])
    model = build_model(prof, (2,)).eval()
    method = build_method(prof)

    def forward_time(batch: int, repeats: int = 15) -> float:
        x, sigma = torch.randn(batch, 2), torch.full((batch,), 1.0)
        with torch.no_grad():
            return _time(lambda: model(x, sigma), repeats)

    batch = 256
    while forward_time(batch) < 5e-3:
        batch *= 2
    print(
        f"(b) sampler overhead at batch {batch}: one forward = {forward_time(batch) * 1e3:.2f} ms"
    )
    for solver in ("euler", "heun", "rk45"):
        run = functools.partial(
            sample,
            method,
            model,
            seeds=range(batch),
            shape=(2,),
            solver=solver,
            steps=18,
            batch=batch,
        )
        nfe = run().nfe
        ratios = []
        for _ in range(7):
            wall = _time(run, 1)
            ratios.append(wall / (nfe * forward_time(batch)))
        print(
            f"    {solver:>5}: NFE {nfe:3d}  wall {wall * 1e3:7.1f} ms  "
            f"overhead = {statistics.median(ratios):.3f} (median of 7; range "
            f"{min(ratios):.3f}–{max(ratios):.3f})"
        )


TARGET_CODE = """
import resource, sys, time, torch
from pfgmctl.physics.field import field_target, field_target_naive
torch.set_num_threads(int(sys.argv[2]))
g = torch.Generator().manual_seed(0)
charges = torch.empty(1024, 3072).uniform_(-1, 1, generator=g)
x = charges[:128] + 0.3 * torch.randn(128, 3072, generator=g)
z = torch.rand(128, generator=g) * 40
fn = {"matmul": field_target, "naive": field_target_naive}[sys.argv[1]]
times = []
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter(); fn(x, z, charges, gamma=5.0); times.append(time.perf_counter() - t0)
# The first call also pays one-time library set-up (MKL buffers). Return freed memory to the OS,
# then reset the high-water mark (Linux clear_refs 5) so ru_maxrss measures the second call.
import ctypes, gc
peaks = []
for _ in range(3):  # max over 3: the kernel's per-thread RSS counters can lag a reset
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    time.sleep(0.1)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn(x, z, charges, gamma=5.0)
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
print(min(times), max(peaks) * 1024)
"""


def _target_run(
    variant: str, threads: int, strict_malloc: bool, repeats: int
) -> tuple[float, float]:
    env = dict(os.environ)
    if (
        strict_malloc
    ):  # every block ≥ 64 KiB is fresh memory, never recycled (already resident) heap
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    out = subprocess.run(
        [sys.executable, "-c", TARGET_CODE, variant, str(threads), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    return float(out[0]), float(out[1])


def target(threads: int) -> None:
    """(c) Field target time and peak extra memory, each variant in fresh processes.

    Time: best of 9 (naive: 3) calls under the default allocator. Memory: ru_maxrss increase
    during a warm call (after resetting the high-water mark) with glibc's mmap threshold fixed at
    64 KiB, so heap blocks freed by the warm-up call cannot hide the call's own working set.
    """
    rows = {}
    for variant in ("matmul", "naive"):
        repeats = 9 if variant == "matmul" else 3
        seconds, _ = _target_run(variant, threads, strict_malloc=False, repeats=repeats)
        _, peak = _target_run(variant, threads, strict_malloc=True, repeats=1)
        rows[variant] = (seconds, peak)
    (tm, mm), (tn, mn) = rows["matmul"], rows["naive"]
    print(f"(c) PFGM target at N=3072, B_S=128, B_L=1024 ({threads} threads):")
    print(f"    matmul: {tm * 1e3:8.1f} ms  peak {mm / 2**20:8.1f} MiB")
    print(f"    naive : {tn * 1e3:8.1f} ms  peak {mn / 2**20:8.1f} MiB")
    print(f"    speed-up {tn / tm:.0f}×, memory {mn / max(mm, 1):.0f}× less")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["demo", "overhead", "target"], default=None)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="profile override for the demo run (experiments only)",
    )
    parser.add_argument("--outdir", type=Path, default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads")
    if args.only in (None, "demo"):
        with tempfile.TemporaryDirectory() as tmp:
            demo(args.outdir or Path(tmp), args.overrides)
    if args.only in (None, "overhead"):
        overhead()
    if args.only in (None, "target"):
        target(torch.get_num_threads())


if __name__ == "__main__":
    main()
