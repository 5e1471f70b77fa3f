"""IPFM distillation (pfgmpp_ipfm.md part B): a PFGM++ teacher → a 1–K step generator.

Three copies of the teacher's preconditioned net (§B5): the frozen teacher D_φ, the fake-field net
D_ψ and the generator G_θ, all initialised from the teacher's EMA weights. Each iteration fits ψ to
the generator's samples with the PFGM++ denoising loss, then moves θ along the α-regularised IPFM
loss with SiD's per-sample weighting. Every kernel draw (generator input, training noise, few-step
re-noising) uses the teacher's D through `physics.kernels.sample_noise`, per-seed for sampling
(§B8). The run dir has the training layout (architecture.md §7); its checkpoints say
`"kind": "distill"` and carry K, σ levels and the teacher's D, so sampling needs only the run.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor, nn

from pfgmctl import __version__
from pfgmctl.config.load import profile_from_text, profile_to_toml
from pfgmctl.config.schema import DistillConfig, PFGMPPMethod, Profile
from pfgmctl.engine.build import build_method, build_model
from pfgmctl.engine.checkpoint import (
    ema_name,
    load_any,
    load_module_strict,
    load_state,
    prune,
    save_state,
    save_weights,
    state_name,
)
from pfgmctl.engine.ema import EMA
from pfgmctl.engine.faults import (
    StopRequest,
    Terminated,
    bad_run_message,
    crash_point,
    deferred_interrupts,
    ignore_sigterm,
    repair_run_dir,
)
from pfgmctl.engine.grid import samples_picture, save_png
from pfgmctl.engine.inference import latest_checkpoint
from pfgmctl.engine.rundir import Sink, write_latest
from pfgmctl.errors import CheckpointError, PfgmctlError, UsageError
from pfgmctl.methods import PFGMPP
from pfgmctl.methods.ipfm import (
    fake_loss,
    generate,
    generator_loss,
    sigma_levels,
)
from pfgmctl.physics.kernels import sample_noise
from pfgmctl.sampling import SampleResult

KIND = "distill"
"""`kind` metadata of distillation checkpoints (state and EMA)."""

# ---------------------------------------------------------------------------------------------
# Teacher and distilled models
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Teacher:
    """A frozen PFGM++ denoiser with the profile it was trained with."""

    profile: Profile
    model: nn.Module
    item_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    source: str

    @property
    def aug_dim(self) -> float:
        """The teacher's D (inf: an EDM teacher, where IPFM reduces to SiD)."""
        assert isinstance(self.profile.method, PFGMPPMethod)
        return self.profile.method.aug_dim


def _checkpoint_kind(path: Path) -> str:
    """The `kind` a checkpoint declares ("" for training checkpoints); reads safetensors headers only."""
    if path.suffix.lower() == ".safetensors":
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                return str((f.metadata() or {}).get("kind", ""))
        except Exception:  # corrupt: let the loader produce its one-line error
            return ""
    if path.suffix.lower() == ".pt" and path.is_file():
        return str(load_state(path).get("kind", ""))
    return ""


def _distill_metadata(path: Path) -> dict[str, str]:
    """kind, levels and aug_dim of a checkpoint file (safetensors header or `.pt` state keys)."""
    if path.suffix.lower() == ".pt":
        state = load_state(path)
        return {k: str(state[k]) for k in ("kind", "levels", "aug_dim") if k in state}
    return load_any(path)[1]


def _checkpoint_file(path: Path, what: str) -> Path:
    """A run dir's newest EMA checkpoint, or the file itself; UsageError naming `what` if missing."""
    if path.is_dir():
        return latest_checkpoint(path, "ema")
    if not path.exists():
        raise UsageError(f"{what} {path}: no such run directory or checkpoint file")
    return path


def load_teacher(path: Path) -> Teacher:
    """The EMA denoiser of a PFGM++ run dir or checkpoint; one-line errors for anything else."""
    from pfgmctl.engine.inference import load_checkpoint

    file = _checkpoint_file(path, "--teacher")
    if _checkpoint_kind(file) == KIND:
        raise UsageError(
            f"--teacher {path} is a distilled generator; pass the PFGM++ run it was distilled from"
        )
    loaded = load_checkpoint(file)
    if not isinstance(loaded.profile.method, PFGMPPMethod):
        raise UsageError(
            f"--teacher {path} is a {loaded.profile.method.kind} model; IPFM distils PFGM++ "
            'teachers (method.kind = "pfgmpp", any D including inf)'
        )
    model = loaded.model.eval().requires_grad_(False)
    return Teacher(
        loaded.profile,
        model,
        loaded.item_shape,
        loaded.num_classes,
        loaded.class_names,
        str(file.resolve()),
    )


def distill_profile(
    teacher: Teacher, distill_cfg: Profile | None, overrides: Sequence[str] = ()
) -> Profile:
    """The teacher's profile with the `[distill]` table (and name) of `distill_cfg`, then `--set`.

    The teacher fixes method, net and data: an override of D is a "mismatched D" UsageError, any
    other change of `[method]` or `[net]` a UsageError too.
    """
    base = teacher.profile
    cfg = distill_cfg.distill if distill_cfg is not None else base.distill
    name = (
        distill_cfg.name if distill_cfg is not None and distill_cfg.name else f"{base.name}-distill"
    )
    merged = base.model_copy(
        update={
            "name": name,
            "description": f"IPFM distillation of {base.name}",
            "distill": cfg.model_copy(update={"teacher": teacher.source}),
        }
    )
    prof = profile_from_text(profile_to_toml(merged), "distill profile", overrides)
    check_matches_teacher(prof, teacher)
    return prof


def check_matches_teacher(prof: Profile, teacher: Teacher) -> None:
    """Refuse a profile whose D, method or net differ from the teacher's (§B8)."""
    want, got = teacher.profile.method, prof.method
    if not isinstance(got, PFGMPPMethod):
        raise UsageError(f"method.kind: the teacher is pfgmpp; distillation cannot use {got.kind}")
    assert isinstance(want, PFGMPPMethod)
    if got.aug_dim != want.aug_dim:
        raise UsageError(
            f"mismatched D: method.aug_dim = {got.aug_dim:g} but the teacher {teacher.source} "
            f"was trained at D = {want.aug_dim:g}; the generator must use the teacher's D"
        )
    if got != want or prof.net != teacher.profile.net:
        raise UsageError(
            "[method] and [net] come from the teacher and cannot be overridden for distillation"
        )


class DistilledGenerator(nn.Module):
    """A trained IPFM generator: `net` = D_θ (EDMPrecond) plus its σ levels and the teacher's D.

    forward(x, σ, labels) is one generator evaluation; `sample_distilled` runs the K-step chain.
    """

    def __init__(
        self, net: nn.Module, levels: Sequence[float], aug_dim: float, item_shape: Sequence[int]
    ) -> None:
        super().__init__()
        self.net = net
        self.levels = tuple(float(s) for s in levels)
        self.aug_dim = float(aug_dim)
        self.item_shape = tuple(int(n) for n in item_shape)

    @property
    def steps(self) -> int:
        """K, the number of network evaluations per sample (NFE) it was trained for."""
        return len(self.levels)

    def forward(self, x: Tensor, sigma: Tensor, labels: Tensor | None = None) -> Tensor:
        out: Tensor = self.net(x, sigma, labels)
        return out


@dataclass(frozen=True)
class DistilledModel:
    """A distilled generator with the (merged) profile and data shape it was trained for."""

    profile: Profile
    model: DistilledGenerator
    item_shape: tuple[int, ...]
    source: Path
    step: int | None
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    teacher: str = ""


def is_distilled(path: Path) -> bool:
    """Whether a run dir's newest EMA checkpoint (or the given file) is an IPFM generator."""
    try:
        file = latest_checkpoint(path, "ema") if path.is_dir() else path
    except PfgmctlError:
        return False
    return file.is_file() and _checkpoint_kind(file) == KIND


def load_distilled(path: Path, overrides: Sequence[str] = ()) -> DistilledModel:
    """Load a distillation run dir (newest EMA) or checkpoint; CheckpointError if it is not one."""
    from pfgmctl.engine.inference import load_checkpoint

    file = _checkpoint_file(path, "--run")
    meta = _distill_metadata(file)
    if meta.get("kind") != KIND:
        raise CheckpointError(f"{file} is not a distilled generator (no kind = distill metadata)")
    loaded = load_checkpoint(file, tuple(overrides))
    try:
        levels = [float(s) for s in json.loads(meta["levels"])]
        aug_dim = float(meta["aug_dim"])
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint {file}: bad distillation metadata ({err})") from None
    method = loaded.profile.method
    if not isinstance(method, PFGMPPMethod) or method.aug_dim != aug_dim:
        raise CheckpointError(
            f"checkpoint {file}: mismatched D (profile vs generator D = {aug_dim:g})"
        )
    gen_model = DistilledGenerator(loaded.model, levels, aug_dim, loaded.item_shape).eval()
    return DistilledModel(
        loaded.profile,
        gen_model,
        loaded.item_shape,
        file,
        loaded.step,
        loaded.num_classes,
        loaded.class_names,
        loaded.profile.distill.teacher,
    )


@torch.no_grad()
def sample_distilled(
    model: DistilledGenerator | DistilledModel,
    *,
    seeds: Sequence[int],
    steps: int | None = None,
    device: torch.device | str = "cpu",
    labels: Tensor | None = None,
    batch: int = 4096,
    sigma_last: float | None = None,
    on_step: Callable[[int, float, Tensor], None] | None = None,
) -> SampleResult:
    """One sample per seed in NFE = K generator evaluations; sample i depends only on seed i.

    `steps` None: the K the generator was trained for; another K re-derives the levels from σ_init
    down to `sigma_last` (default: the trained last level, or the profile's for K = 1).
    """
    gen_model = model.model if isinstance(model, DistilledModel) else model
    device = torch.device(device)
    levels = list(gen_model.levels)
    if steps is not None and steps != len(levels):
        last = sigma_last if sigma_last is not None else _default_last(model, levels)
        levels = sigma_levels(steps, levels[0], last)
    gen_model = gen_model.to(device)
    shape = gen_model.item_shape
    outs = []
    for start in range(0, len(seeds), batch):
        gens = [
            torch.Generator(device=device).manual_seed(int(s)) for s in seeds[start : start + batch]
        ]
        eps = sample_noise(
            (len(gens), *shape), levels[0], gen_model.aug_dim, generator=gens, device=device
        )
        lab = None if labels is None else labels[start : start + batch].to(device)
        y = generate(
            gen_model.net, eps, levels, gen_model.aug_dim, gen=gens, labels=lab, on_step=on_step
        )
        outs.append(y.float().cpu())
    nfes = [len(levels)] * len(outs)
    return SampleResult(torch.cat(outs), len(levels), nfes, 0.0)


def _default_last(model: DistilledGenerator | DistilledModel, levels: list[float]) -> float:
    if len(levels) > 1:
        return levels[-1]
    if isinstance(model, DistilledModel):
        return model.profile.distill.sigma_last
    return DistillConfig().sigma_last


# ---------------------------------------------------------------------------------------------
# The distillation loop (§B5)
# ---------------------------------------------------------------------------------------------


@dataclass
class DistillState:
    """Everything that changes during distillation and must survive a resume."""

    gen: nn.Module  # G_θ: D_θ(·, σ_k) of the teacher's architecture
    fake: nn.Module  # D_ψ
    ema: EMA  # of G_θ
    opt_g: torch.optim.Optimizer
    opt_f: torch.optim.Optimizer
    noise_gen: torch.Generator  # kernel draws, σ draws (on the device)
    ctrl_gen: torch.Generator  # chain step k and class labels (CPU: no host sync)
    step: int = 0
    nimg: int = 0
    bins: dict[str, list[float]] = field(default_factory=dict)
    skipped: int = 0
    bad_run: int = 0
    saved: int = 0


@dataclass(frozen=True)
class DistillResult:
    """Where distillation stopped and how."""

    run_dir: Path
    step: int
    kimg: float
    status: str  # done | interrupted
    signal: str = ""


def _set_dropout(module: nn.Module, p: float) -> None:
    """Dropout probability of every nn.Dropout in `module` (SiD keeps it on in G and ψ, §B8)."""
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


def _seeded(seed: int, stream: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + stream)


def init_state(cfg: DistillConfig, teacher: Teacher, device: torch.device) -> DistillState:
    """G and ψ as copies of the teacher (§B5); Adam(β1 = 0, β2) for both; EMA of G."""
    nets = []
    for _ in range(2):
        net = copy.deepcopy(teacher.model).to(device).requires_grad_(True)
        _set_dropout(net, cfg.dropout)
        nets.append(net.train())
    gen, fake = nets
    betas = (cfg.beta1, cfg.beta2)
    return DistillState(
        gen,
        fake,
        EMA(gen, cfg.ema_halflife_kimg, cfg.ema_rampup),
        torch.optim.Adam(gen.parameters(), lr=cfg.lr_g, betas=betas, eps=1e-8),
        torch.optim.Adam(fake.parameters(), lr=cfg.lr_f, betas=betas, eps=1e-8),
        _seeded(cfg.seed, 0, device),
        _seeded(cfg.seed, 1, torch.device("cpu")),
    )


def _draw_labels(
    state: DistillState, teacher: Teacher, b: int, device: torch.device
) -> Tensor | None:
    """Uniform class labels for a conditional teacher (data-free otherwise, §B5)."""
    if teacher.num_classes == 0:
        return None
    return torch.randint(teacher.num_classes, (b,), generator=state.ctrl_gen).to(device)


def _generator_samples(
    state: DistillState,
    cfg: DistillConfig,
    teacher: Teacher,
    labels: Tensor | None,
    *,
    b: int,
    device: torch.device,
    grad: bool,
) -> Tensor:
    """y = G_θ at a random chain step k < K (k = 0: kernel noise at σ_init with the teacher's D)."""
    levels = sigma_levels(cfg.steps, cfg.sigma_init, cfg.sigma_last)
    k = int(torch.randint(len(levels), (1,), generator=state.ctrl_gen))
    eps = sample_noise(
        (b, *teacher.item_shape),
        levels[0],
        teacher.aug_dim,
        generator=state.noise_gen,
        device=device,
    )
    x = eps
    if k > 0:
        with torch.no_grad():
            y = generate(
                state.gen, eps, levels[:k], teacher.aug_dim, gen=state.noise_gen, labels=labels
            )
        x = y.to(torch.float64) + sample_noise(
            tuple(y.shape), levels[k], teacher.aug_dim, generator=state.noise_gen, device=device
        )
    s = torch.full((b,), levels[k], device=device)
    with torch.set_grad_enabled(grad):
        out: Tensor = state.gen(x.float(), s, labels)
    return out


def _adam_step(opt: torch.optim.Optimizer, loss: Tensor, params: Sequence[Tensor]) -> None:
    """Backward, NaN/inf gradients → 0/±1e5 (EDM, SiD), step."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for p in params:
        if p.grad is not None:
            torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
    opt.step()


def distill_step(
    state: DistillState,
    teacher: Teacher,
    method: PFGMPP,
    cfg: DistillConfig,
    device: torch.device,
) -> tuple[Tensor, Tensor] | None:
    """`fake_updates` ψ steps, then one θ step and the EMA (§B5); (loss_gen, loss_fake) or None."""
    b = cfg.batch_size
    f_losses = []
    for _ in range(cfg.fake_updates):
        labels = _draw_labels(state, teacher, b, device)
        y = _generator_samples(state, cfg, teacher, labels, b=b, device=device, grad=False)
        out_f = fake_loss(method, state.fake, y, gen=state.noise_gen, labels=labels)
        loss_f = out_f.loss.mean()
        if not bool(torch.isfinite(loss_f)):
            _skip(state, b)
            return None
        _adam_step(state.opt_f, loss_f, list(state.fake.parameters()))
        f_losses.append(loss_f.detach())
    labels = _draw_labels(state, teacher, b, device)
    y = _generator_samples(state, cfg, teacher, labels, b=b, device=device, grad=True)
    state.fake.requires_grad_(False)  # ψ fixed; gradients flow through its input only
    try:
        out_g = generator_loss(
            teacher.model,
            state.fake,
            y,
            method=method,
            alpha=cfg.alpha,
            t_max=cfg.t_max,
            gen=state.noise_gen,
            labels=labels,
        )
    finally:
        state.fake.requires_grad_(True)
    loss_g = out_g.loss.mean()
    if not bool(torch.isfinite(loss_g)):
        _skip(state, b)
        return None
    _adam_step(state.opt_g, loss_g, list(state.gen.parameters()))
    state.bad_run = 0
    state.step, state.nimg = state.step + 1, state.nimg + b
    state.ema.update(state.gen, state.nimg, b)
    _accumulate_bins(state, out_f.noise, out_f.loss.detach(), method)
    return loss_g.detach(), torch.stack(f_losses).mean()


def _skip(state: DistillState, b: int) -> None:
    """A non-finite loss: no update, counted (metrics skipped_steps; max_bad_steps stops the run)."""
    state.step, state.nimg = state.step + 1, state.nimg + b
    state.skipped, state.bad_run = state.skipped + 1, state.bad_run + 1


LOSS_BINS = 8


def _accumulate_bins(state: DistillState, noise: Tensor, loss: Tensor, method: PFGMPP) -> None:
    """Fake-net losses per σ bin of the current tick (the TUI's loss-per-bin chart)."""
    if "edges" not in state.bins:
        state.bins["edges"] = method.noise_edges(LOSS_BINS)
        state.bins["sum"], state.bins["count"] = [0.0] * LOSS_BINS, [0.0] * LOSS_BINS
    inner = torch.tensor(state.bins["edges"][1:-1], dtype=torch.float64)
    idx = torch.bucketize(noise.detach().cpu().double(), inner)
    sums = torch.zeros(LOSS_BINS, dtype=torch.float64).index_add_(0, idx, loss.cpu().double())
    counts = torch.bincount(idx, minlength=LOSS_BINS)
    for k in range(LOSS_BINS):
        state.bins["sum"][k] += float(sums[k])
        state.bins["count"][k] += float(counts[k])


def _tick_record(
    state: DistillState, losses: list[tuple[Tensor, Tensor]], nimg0: int, seconds: float
) -> dict[str, Any]:
    """One metrics.jsonl line: `loss` = generator loss (it may be negative, §B4), plus loss_fake."""
    sums, counts, edges = (state.bins.get(k, []) for k in ("sum", "count", "edges"))
    state.bins = {}
    skipped, state.skipped = state.skipped, 0
    kimg = (state.nimg - nimg0) / 1000
    gen_l = float(torch.stack([g for g, _ in losses]).mean()) if losses else math.nan
    fake_l = float(torch.stack([f for _, f in losses]).mean()) if losses else math.nan
    return {
        "type": "tick",
        "step": state.step,
        "kimg": state.nimg / 1000,
        "loss": gen_l,
        "loss_gen": gen_l,
        "loss_fake": fake_l,
        "lr": state.opt_g.param_groups[0]["lr"],
        "lr_fake": state.opt_f.param_groups[0]["lr"],
        "skipped_steps": skipped,
        "img_per_s": kimg * 1000 / max(seconds, 1e-9),
        "sec_per_kimg": seconds / max(kimg, 1e-9),
        "time": time.time(),
        "loss_bins": {
            "var": "sigma",
            "edges": edges,
            "mean": [s / c if c else None for s, c in zip(sums, counts, strict=True)],
            "count": [int(c) for c in counts],
        },
    }


def _state_dict(state: DistillState, profile: Profile, teacher: Teacher) -> dict[str, Any]:
    """Plain types only (weights_only=True); the teacher's weights make resume self-contained."""
    cfg = profile.distill
    return {
        "kind": KIND,
        "net": state.gen.state_dict(),
        "fake": state.fake.state_dict(),
        "ema": state.ema.state_dict(),
        "teacher": teacher.model.state_dict(),
        "opt_g": state.opt_g.state_dict(),
        "opt_f": state.opt_f.state_dict(),
        "step": state.step,
        "nimg": state.nimg,
        "kimg": state.nimg / 1000,
        "rng": {
            "noise": state.noise_gen.get_state(),
            "ctrl": state.ctrl_gen.get_state(),
            "torch": torch.get_rng_state(),
        },
        "profile": profile_to_toml(profile),
        "item_shape": list(teacher.item_shape),
        "num_classes": teacher.num_classes,
        "class_names": list(teacher.class_names),
        "levels": json.dumps(sigma_levels(cfg.steps, cfg.sigma_init, cfg.sigma_last)),
        "aug_dim": str(teacher.aug_dim),
        "version": __version__,
    }


def _ema_metadata(state: DistillState, profile: Profile, teacher: Teacher) -> dict[str, str]:
    """What sampling needs: profile, shapes, K and σ levels, the teacher's D, method and profile."""
    cfg = profile.distill
    levels = sigma_levels(cfg.steps, cfg.sigma_init, cfg.sigma_last)
    return {
        "kind": KIND,
        "profile": profile_to_toml(profile),
        "item_shape": json.dumps(list(teacher.item_shape)),
        "num_classes": str(teacher.num_classes),
        "class_names": json.dumps(list(teacher.class_names)),
        "step": str(state.step),
        "kimg": str(state.nimg / 1000),
        "steps": str(cfg.steps),
        "sigma_init": str(cfg.sigma_init),
        "levels": json.dumps(levels),
        "aug_dim": str(teacher.aug_dim),
        "teacher": teacher.source,
        "teacher_method": teacher.profile.method.kind,
        "teacher_profile": teacher.profile.name,
        "version": __version__,
    }


def teacher_from_state(saved: dict[str, Any], profile: Profile, source: str) -> Teacher:
    """Rebuild the frozen teacher stored in a distillation state (resume needs no teacher file)."""
    if saved.get("kind") != KIND or "teacher" not in saved:
        raise CheckpointError(f"{source} is not a distillation state (no teacher weights)")
    item_shape = tuple(int(n) for n in saved["item_shape"])
    num_classes = int(saved.get("num_classes", 0))
    model = build_model(profile, item_shape, num_classes)
    load_module_strict(model, saved["teacher"], source)
    teacher_prof = profile.model_copy(update={"distill": DistillConfig()})
    if str(saved.get("aug_dim")) != str(teacher_prof.method.aug_dim):  # type: ignore[union-attr]
        raise CheckpointError(f"{source}: mismatched D between the profile and the stored teacher")
    names = tuple(str(c) for c in saved.get("class_names", []))
    return Teacher(
        teacher_prof,
        model.eval().requires_grad_(False),
        item_shape,
        num_classes,
        names,
        profile.distill.teacher,
    )


def _restore(state: DistillState, saved: dict[str, Any], path: Path) -> None:
    """Load a distillation state; any mismatch is a one-line CheckpointError."""
    try:
        load_module_strict(state.gen, saved["net"], str(path))
        load_module_strict(state.fake, saved["fake"], str(path))
        state.ema.load_state_dict(saved["ema"])
        state.opt_g.load_state_dict(saved["opt_g"])
        state.opt_f.load_state_dict(saved["opt_f"])
        state.noise_gen.set_state(saved["rng"]["noise"])
        state.ctrl_gen.set_state(saved["rng"]["ctrl"])
        torch.set_rng_state(saved["rng"]["torch"])
        state.step, state.nimg = int(saved["step"]), int(saved["nimg"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"cannot resume from {path}: {err}") from None


def _preview(
    run_dir: Path,
    state: DistillState,
    profile: Profile,
    teacher: Teacher,
    sink: Sink,
    ref: Tensor | None,
) -> str | None:
    """`preview_n` fixed seeds through the EMA generator → samples/<step>.png, with sample events."""
    cfg = profile.distill
    n = cfg.preview_n
    if n == 0:
        return None
    device = next(state.ema.module.parameters()).device
    path = run_dir / "samples" / f"{state.step:09d}.png"
    levels = sigma_levels(cfg.steps, cfg.sigma_init, cfg.sigma_last)
    model = DistilledGenerator(state.ema.module, levels, teacher.aug_dim, teacher.item_shape)
    labels = None if teacher.num_classes == 0 else torch.arange(n) % teacher.num_classes
    job = f"preview-{state.step:09d}"
    result = sample_distilled_with_events(
        model, seeds=range(n), device=device, sink=sink, job=job, path=str(path), labels=labels
    )
    meta = {"step": str(state.step), "seeds": f"0-{n - 1}", "nfe": str(result.nfe)}
    save_png(samples_picture(result.x, ref=ref), path, meta)
    return path.name


def sample_distilled_with_events(
    model: DistilledGenerator | DistilledModel,
    *,
    seeds: Sequence[int],
    device: torch.device | str,
    sink: Sink,
    job: str,
    path: str | None = None,
    steps: int | None = None,
    labels: Tensor | None = None,
    batch: int = 4096,
) -> SampleResult:
    """`sample_distilled` emitting sample_start/step/done events (architecture.md §7) into `sink`."""
    gen_model = model.model if isinstance(model, DistilledModel) else model
    k_steps = steps if steps is not None else gen_model.steps
    d = gen_model.aug_dim
    sink({"type": "sample_start", "job": job, "solver": "generator", "steps": k_steps,
          "n": len(seeds), "time_name": "sigma"})  # fmt: skip

    def on_step(k: int, sigma: float, _: Tensor) -> None:
        where = {"sigma": sigma} if math.isinf(d) else {"sigma": sigma, "r": sigma * math.sqrt(d)}
        sink({"type": "sample_step", "job": job, "i": k, "n": k_steps, "t": sigma,
              "nfe": k + 1, "progress": (k + 1) / k_steps, **where})  # fmt: skip

    t0 = time.perf_counter()
    result = sample_distilled(
        model, seeds=seeds, steps=steps, device=device, labels=labels, batch=batch, on_step=on_step
    )
    sink({"type": "sample_done", "job": job, "path": path, "nfe": result.nfe,
          "seconds": time.perf_counter() - t0, "prior_clipped": 0.0})  # fmt: skip
    return result


def _checkpoint(
    run_dir: Path,
    state: DistillState,
    profile: Profile,
    teacher: Teacher,
    sink: Sink,
    ref: Tensor | None,
) -> None:
    """state-*.pt, ema-*.safetensors (generator EMA, `kind = distill`), latest.json, preview, prune."""
    ckpt_dir = run_dir / "checkpoints"
    state_path, ema_path = ckpt_dir / state_name(state.step), ckpt_dir / ema_name(state.step)
    try:
        save_state(state_path, _state_dict(state, profile, teacher))
        save_weights(
            ema_path, state.ema.module.state_dict(), _ema_metadata(state, profile, teacher)
        )
        info = {"state": state_path.name, "ema": ema_path.name, "step": state.step,
                "kimg": state.nimg / 1000}  # fmt: skip
        crash_point("latest-write")
        write_latest(run_dir, info)
    except OSError as err:
        kept = f"checkpoint (step {state.saved}) is intact" if state.saved else "none was saved"
        raise PfgmctlError(
            f"cannot write the step-{state.step} checkpoint in {ckpt_dir} "
            f"({err.strerror or err}); the previous {kept}; "
            "free disk space or fix permissions, then pfgmctl distill --resume latest"
        ) from None
    state.saved = state.step
    preview = _preview(run_dir, state, profile, teacher, sink, ref)
    sink({"type": "checkpoint", **info, "sample": preview})
    prune(ckpt_dir, profile.distill.keep_ckpts)


def _loop(
    state: DistillState,
    teacher: Teacher,
    profile: Profile,
    run_dir: Path,
    *,
    device: torch.device,
    sink: Sink,
    total: int,
    stop: StopRequest,
    ref: Tensor | None,
) -> None:
    """Steps, ticks (metrics lines) and checkpoints until `total` generator steps are done."""
    cfg = profile.distill
    method = build_method(profile)
    assert isinstance(method, PFGMPP)
    tick_steps = max(round(cfg.tick_kimg * 1000 / cfg.batch_size), 1)
    losses: list[tuple[Tensor, Tensor]] = []
    nimg0, t0, last_loss = state.nimg, time.perf_counter(), math.nan
    while state.step < total:
        out = distill_step(state, teacher, method, cfg, device)
        if out is not None:
            losses.append(out)
        if state.bad_run >= cfg.max_bad_steps:
            msg = bad_run_message(
                state.step, state.bad_run, cfg.max_bad_steps, state.saved, run_dir
            )
            raise PfgmctlError(
                msg.replace("train.", "distill.").replace(
                    "check the data for NaN/inf", "lower distill.lr_f"
                )
            )
        tick = state.step % tick_steps == 0 or state.step >= total
        if tick:
            record = _tick_record(state, losses, nimg0, time.perf_counter() - t0)
            last_loss, losses = record["loss"], []
            sink(record)
        sink({"type": "progress", "step": state.step, "total": total, "loss": last_loss})
        if tick and ((state.step // tick_steps) % cfg.ckpt_ticks == 0 or state.step >= total):
            _checkpoint(run_dir, state, profile, teacher, sink, ref)
        if tick:
            nimg0, t0 = state.nimg, time.perf_counter()
        stop.check()


def distill(
    profile: Profile,
    teacher: Teacher,
    run_dir: Path,
    *,
    device: torch.device,
    sink: Sink,
    resume: Path | None = None,
    ref: Tensor | None = None,
) -> DistillResult:
    """Distil `teacher` into `run_dir` with `profile.distill`; Ctrl-C or SIGTERM saves and stops.

    `ref` (optional data rows) is drawn behind 2-D previews.
    """
    check_matches_teacher(profile, teacher)
    cfg = profile.distill
    teacher = Teacher(
        teacher.profile, teacher.model.to(device), teacher.item_shape, teacher.num_classes,
        teacher.class_names, teacher.source,
    )  # fmt: skip
    state = init_state(cfg, teacher, device)
    torch.manual_seed(cfg.seed)  # dropout draws from the global generator; saved in checkpoints
    if resume is not None:
        _restore(state, load_state(resume), resume)
        state.saved = state.step
        repair_run_dir(run_dir, state.step)
    total = max(math.ceil(cfg.kimg * 1000 / cfg.batch_size), 1)
    sink({"type": "run_start", "format": 1, "version": __version__, "world_size": 1,
          "device": str(device), "step": state.step, "total_steps": total, "kind": KIND,
          "teacher": teacher.source, "aug_dim": teacher.aug_dim})  # fmt: skip
    with deferred_interrupts() as stop:
        try:
            _loop(state, teacher, profile, run_dir, device=device, sink=sink, total=total,
                  stop=stop, ref=ref)  # fmt: skip
        except KeyboardInterrupt as exc:
            sig = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
            ignore_sigterm()
            if state.step > state.saved:
                _checkpoint(run_dir, state, profile, teacher, sink, ref)
            sink({"type": "run_end", "status": "interrupted", "step": state.step, "signal": sig})
            return DistillResult(run_dir, state.step, state.nimg / 1000, "interrupted", sig)
        except PfgmctlError as err:
            sink({"type": "run_end", "status": "failed", "step": state.step, "error": str(err)})
            raise
    sink({"type": "run_end", "status": "done", "step": state.step})
    return DistillResult(run_dir, state.step, state.nimg / 1000, "done")
