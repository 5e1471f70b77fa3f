"""Benchmark sweeps: quality per NFE over runs × solvers × steps × perturbations, several seed sets.

Library side of `pfgmctl benchmark` (no printing): load runs, draw references, sample (plain, with
noise injection or with quantised weights), score with `pfgmctl.metrics`, and the `speed` figures.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pfgmctl.config.schema import PFGMPPMethod, Profile, ToyData
from pfgmctl.data import Dataset, build_dataset, toy
from pfgmctl.engine.build import build_method
from pfgmctl.engine.inference import Loaded, latest_checkpoint, load_checkpoint
from pfgmctl.methods import Method
from pfgmctl.metrics import MetricFn, metric_fn
from pfgmctl.robustness import quantize_model, sample_noisy
from pfgmctl.sampling import SampleResult, sample, sample_with
from pfgmctl.solvers import is_adaptive

REF_SEED = 777_000
"""Seeds of the reference draws (toys) and reference permutations; far from training seeds."""


@dataclass(frozen=True)
class Setting:
    """One sampler configuration: solver, steps and at most one perturbation."""

    solver: str
    steps: int
    alpha: float = 0.0
    bits: int | None = None

    @property
    def perturbation(self) -> str:
        """'none', 'alpha=0.1' or 'bits=6'."""
        if self.bits is not None:
            return f"bits={self.bits}"
        return f"alpha={self.alpha:g}" if self.alpha > 0 else "none"


@dataclass
class Row:
    """One (run, setting, metric) cell: values per seed set, their mean/std, NFE and wall time."""

    run: str
    method: str
    aug_dim: float | None
    solver: str
    steps: int
    perturbation: str
    nfe: int
    metric: str
    values: list[float] = field(default_factory=list)
    floor: float | None = None
    seconds: float = 0.0
    deltas: list[float] | None = None  # perturbed − clean, per seed set (paired: same seeds, refs)

    @property
    def mean(self) -> float:
        """Mean over seed sets."""
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation over seed sets (0 for one set)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def delta(self) -> float | None:
        """Mean paired degradation against the clean setting (None for clean rows)."""
        return statistics.fmean(self.deltas) if self.deltas else None

    @property
    def delta_se(self) -> float | None:
        """Standard error of `delta` over seed sets."""
        if not self.deltas or len(self.deltas) < 2:
            return None
        return statistics.stdev(self.deltas) / math.sqrt(len(self.deltas))

    def to_dict(self) -> dict[str, Any]:
        """JSON/CSV-ready dict including mean, std and the paired delta."""
        extra = {"delta": self.delta, "delta_se": self.delta_se}
        return {**asdict(self), "mean": self.mean, "std": self.std, **extra}


def pair_deltas(rows: Sequence[Row]) -> None:
    """Set `deltas` of each perturbed row from the clean row of the same run, solver, steps, metric."""
    clean = {(r.run, r.solver, r.steps, r.metric): r for r in rows if r.perturbation == "none"}
    for r in rows:
        base = clean.get((r.run, r.solver, r.steps, r.metric))
        if r.perturbation != "none" and base is not None:
            r.deltas = [v - c for v, c in zip(r.values, base.values, strict=True)]


def settings(
    solvers: Sequence[str], steps: Sequence[int], alphas: Sequence[float], bits: Sequence[int]
) -> list[Setting]:
    """Clean sweep solvers × steps, then each α > 0 and each bit width over the same grid.

    Adaptive solvers ignore steps (one setting each) and get no noise injection.
    """
    out: list[Setting] = []
    for solver in solvers:
        grid = [0] if is_adaptive(solver) else list(steps)
        out += [Setting(solver, s) for s in grid]
        out += [
            Setting(solver, s, alpha=a)
            for a in alphas
            if a > 0 and not is_adaptive(solver)
            for s in grid
        ]
        out += [Setting(solver, s, bits=b) for b in bits for s in grid]
    return out


def load_run(path: Path) -> Loaded:
    """A run directory (newest EMA checkpoint) or a checkpoint file; IPFM runs load their generator."""
    from pfgmctl.engine.distill import is_distilled, load_distilled

    if is_distilled(path):
        d = load_distilled(path)
        return Loaded(d.profile, d.model, d.item_shape, d.source, d.step, d.num_classes)
    return load_checkpoint(latest_checkpoint(path, "ema") if path.is_dir() else path)


def _distilled(model: nn.Module) -> bool:
    from pfgmctl.engine.distill import DistilledGenerator

    return isinstance(model, DistilledGenerator)


def default_metric(profile: Profile, item_shape: tuple[int, ...]) -> str:
    """fd_digits for 8×8 digit images, swd otherwise."""
    return "fd_digits" if profile.data.kind == "digits" and math.prod(item_shape) == 64 else "swd"


def reference_pair(profile: Profile, dataset: Dataset, n: int, k: int) -> tuple[Tensor, Tensor]:
    """Two disjoint reference samples for seed set k: fresh toy draws, or halves of all data rows."""
    if isinstance(profile.data, ToyData):
        cfg = profile.data
        a, b = (
            toy(cfg.name, n, torch.Generator().manual_seed(REF_SEED + 2 * k + j)) * cfg.scale
            + cfg.shift
            for j in (0, 1)
        )
        return a, b
    rows = torch.cat([dataset.train, dataset.holdout])
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(REF_SEED + k))
    half = min(n, len(rows) // 2)
    return rows[perm[:half]], rows[perm[half : 2 * half]]


def score(name: str, x: Tensor, ref: Tensor) -> float:
    """Metric `name` of samples against a reference; equal sizes where the metric needs them."""
    if name == "swd":
        m = min(len(x), len(ref))
        x, ref = x[:m], ref[:m]
    return metric_fn(name)(x, ref)


def draw(
    loaded: Loaded,
    model: nn.Module,
    setting: Setting,
    seeds: Sequence[int],
    *,
    device: torch.device,
    batch: int,
) -> SampleResult:
    """Samples of one setting (plain or noise-injected)."""
    if _distilled(model):  # an IPFM generator: NFE = K, no ODE (settings collapsed in bench_run)
        from pfgmctl.engine.distill import sample_distilled

        return sample_distilled(model, seeds=seeds, device=device, batch=batch)  # type: ignore[arg-type]
    method = build_method(loaded.profile)
    common: dict[str, Any] = {"seeds": seeds, "shape": loaded.item_shape, "device": device}
    if setting.alpha > 0:
        return sample_noisy(
            method,
            model,
            alpha=setting.alpha,
            solver=setting.solver,
            steps=setting.steps,
            noise_seed=seeds[0],
            batch=batch,
            **common,
        )
    p = loaded.profile.sample
    steps = setting.steps or p.steps
    return sample(
        method,
        model,
        solver=setting.solver,
        steps=steps,
        rtol=p.rtol,
        atol=p.atol,
        batch=batch,
        **common,
    )


def bench_run(
    label: str,
    loaded: Loaded,
    grid: Sequence[Setting],
    metrics: Mapping[str, MetricFn],
    *,
    n: int,
    seed_sets: int,
    device: torch.device,
    batch: int = 4096,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Every setting of one run over `seed_sets` disjoint seed sets of n samples each."""
    prof = loaded.profile
    from pfgmctl.engine.distill import DistilledGenerator

    if isinstance(loaded.model, DistilledGenerator):  # one clean setting (+ bits) at its K
        nfe = loaded.model.steps
        grid = list(
            dict.fromkeys(Setting("generator", nfe, bits=s.bits) for s in grid if not s.alpha)
        )
    dataset = build_dataset(prof.data)
    refs = [reference_pair(prof, dataset, n, k) for k in range(seed_sets)]
    floors = {m: statistics.fmean(fn(a, b) for a, b in refs) for m, fn in metrics.items()}
    aug = prof.method.aug_dim if isinstance(prof.method, PFGMPPMethod) else None
    rows: list[Row] = []
    for setting in grid:
        model = loaded.model if setting.bits is None else quantize_model(loaded.model, setting.bits)
        model = model.to(device)
        cells = [
            Row(
                label,
                prof.method.kind,
                aug,
                setting.solver,
                setting.steps,
                setting.perturbation,
                0,
                m,
                floor=floors[m],
            )
            for m in metrics
        ]
        for k, (ref, _) in enumerate(refs):
            t0 = time.perf_counter()
            res = draw(
                loaded, model, setting, range(k * n, (k + 1) * n), device=device, batch=batch
            )
            wall = time.perf_counter() - t0
            for cell in cells:
                cell.values.append(metrics[cell.metric](res.x, ref))
                cell.nfe, cell.seconds = res.nfe, cell.seconds + wall / seed_sets
        for cell in cells:
            if on_row is not None:
                on_row(cell)
        rows += cells
    pair_deltas(rows)
    return rows


def eval_during_training(
    method: Method, model: nn.Module, profile: Profile, dataset: Dataset, *, n: int, metric: str
) -> dict[str, Any]:
    """One fixed-seed evaluation (seeds 0..n−1, reference set 0) of `model` with the profile's sampler."""
    device = next(iter(model.parameters())).device
    name = default_metric(profile, dataset.item_shape) if metric == "auto" else metric
    ref, _ = reference_pair(profile, dataset, n, 0)
    s = profile.sample
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    res = sample_with(method, model, s, seeds=range(n), shape=dataset.item_shape, device=device)
    model.train(was_training)
    value = score(name, res.x, ref)
    return {
        "metric": name,
        "value": value,
        "n": n,
        "nfe": res.nfe,
        "seconds": time.perf_counter() - t0,
    }


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def sampler_overhead(
    loaded: Loaded, solver: str, steps: int, *, batch: int, device: torch.device
) -> dict[str, float]:
    """wall(sample) / (NFE × wall(one forward)) at `batch` rows (1.0 = no solver overhead)."""
    method, model = build_method(loaded.profile), loaded.model.to(device)
    x = method.prior(
        batch, loaded.item_shape, gen=torch.Generator().manual_seed(0), device=device
    ).x
    t = method.grid(steps, device=device)[0].to(torch.float32).expand(batch)

    def forward() -> object:
        with torch.no_grad():
            return model(x.float(), t)

    def run() -> SampleResult:
        if _distilled(model):  # an IPFM generator: K evaluations, no ODE
            from pfgmctl.engine.distill import sample_distilled

            return sample_distilled(model, seeds=range(batch), device=device, batch=batch)  # type: ignore[arg-type]
        return sample(
            method,
            model,
            seeds=range(batch),
            shape=loaded.item_shape,
            solver=solver,
            steps=steps,
            device=device,
            batch=batch,
        )

    res = run()
    # Interleave the two timings and take medians: a loaded machine drifts between them.
    walls, fwds = [], []
    for _ in range(5):
        walls.append(_median_time(run, 1))
        fwds.append(_median_time(forward, 5))
    wall, fwd = statistics.median(walls), statistics.median(fwds)
    return {
        "forward_ms": fwd * 1e3,
        "wall_ms": wall * 1e3,
        "nfe": res.nfe,
        "overhead": statistics.median(w / (res.nfe * f) for w, f in zip(walls, fwds, strict=True)),
    }


def train_throughput(run_dir: Path) -> float | None:
    """Median img/s over a run's metrics.jsonl ticks (None without ticks)."""
    import json

    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    rates = [
        json.loads(line).get("img_per_s") for line in path.read_text().splitlines() if line.strip()
    ]
    rates = [r for r in rates if isinstance(r, int | float)]
    return statistics.median(rates) if rates else None


def pfgm_target_speed(n_dim: int, b: int = 128, n_charges: int = 1024) -> dict[str, float]:
    """PFGM field target: matmul/log-sum-exp form vs the naive B×n×(N+1) broadcast (time; analytic memory)."""
    from pfgmctl.physics.field import field_target, field_target_naive

    g = torch.Generator().manual_seed(0)
    charges = torch.rand(n_charges, n_dim, generator=g) * 2 - 1
    x = charges[:b] + 0.3 * torch.randn(b, n_dim, generator=g)
    z = torch.rand(b, generator=g) * 40
    fast = _median_time(lambda: field_target(x, z, charges, gamma=5.0), 5)
    naive = _median_time(lambda: field_target_naive(x, z, charges, gamma=5.0), 2)
    item = x.element_size()
    return {
        "n_dim": n_dim,
        "batch": b,
        "charges": n_charges,
        "matmul_ms": fast * 1e3,
        "naive_ms": naive * 1e3,
        "matmul_mib": b * n_charges * 8 / 2**20,
        "naive_mib": b * n_charges * (n_dim + 1) * item / 2**20,
    }
