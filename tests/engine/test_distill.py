"""IPFM distillation: loss identities (pfgmpp_ipfm.md §B3–B4), kernel inputs, sampling, resume."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from scipy import stats
from torch import Tensor, nn

from pfgmctl.config.load import load_profile
from pfgmctl.engine.build import build_model
from pfgmctl.engine.checkpoint import load_weights
from pfgmctl.engine.distill import (
    DistilledGenerator,
    Teacher,
    distill,
    distill_profile,
    init_state,
    is_distilled,
    load_distilled,
    sample_distilled,
)
from pfgmctl.engine.distill import _generator_samples as generator_samples
from pfgmctl.engine.rundir import RunSink, create_run_dir, read_latest
from pfgmctl.errors import UsageError
from pfgmctl.methods import PFGMPP, ExactDenoiser
from pfgmctl.methods.ipfm import generator_loss, ipfm_loss, sid_loss, sigma_levels, tmax_sigma
from pfgmctl.physics.kernels import log_kernel, sample_noise


def _tiny_teacher(tiny_keys: list[str], *extra: str) -> Teacher:
    """An (untrained, randomly initialised) PFGM++ MLP teacher on the 2-D toy."""
    prof = load_profile("toy2d-pfgmpp", [*tiny_keys, *extra])
    model = build_model(prof, (2,))
    with torch.no_grad():  # the output layer starts at zero; give the net a non-trivial field
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return Teacher(prof, model.eval().requires_grad_(False), (2,), 0, (), "teacher.safetensors")


def _perturbed(model: nn.Module, seed: int, scale: float = 0.05) -> nn.Module:
    out = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return out


# --- loss identities ---------------------------------------------------------------------------


def _triple(seed: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(5, 3, 4, dtype=torch.float64, generator=g) for _ in range(3))  # type: ignore[return-value]


def test_alpha_half_is_half_the_ipfm_loss() -> None:
    y, y_real, y_fake = _triple(0)
    expected = torch.tensor(
        [
            0.5 * (float(((y_real[i] - y[i]) ** 2).sum()) - float(((y_fake[i] - y[i]) ** 2).sum()))
            for i in range(5)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(sid_loss(y, y_real, y_fake, 0.5), expected)
    torch.testing.assert_close(ipfm_loss(y, y_real, y_fake), 2 * expected)


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.2])
def test_alpha_family_is_ipfm_minus_regulariser(alpha: float) -> None:
    """ℓ_α = ½ℓ_IPFM − (α − ½)‖D_φ − D_ψ‖² (§B4)."""
    y, y_real, y_fake = _triple(1)
    reg = ((y_real - y_fake) ** 2).flatten(1).sum(1)
    expected = 0.5 * ipfm_loss(y, y_real, y_fake) - (alpha - 0.5) * reg
    torch.testing.assert_close(sid_loss(y, y_real, y_fake, alpha), expected)


def test_tmax_grid_matches_the_reference_range() -> None:
    u = torch.tensor([0.0, 0.8], dtype=torch.float64)
    sigma = tmax_sigma(u, sigma_min=0.002, sigma_max=80.0, rho=7.0)
    assert sigma[0].item() == pytest.approx(0.002)
    assert sigma[1].item() == pytest.approx(24.41, abs=0.01)


def test_generator_gradient_vanishes_when_teacher_is_fake(tiny_keys: list[str]) -> None:
    teacher = _tiny_teacher(tiny_keys)
    method = PFGMPP(aug_dim=128.0)
    gen_net = _perturbed(teacher.model, 1).requires_grad_(True)
    eps = sample_noise((16, 2), 2.5, 128.0, generator=torch.Generator().manual_seed(0)).float()

    def grads(fake: nn.Module) -> list[Tensor]:
        gen_net.zero_grad(set_to_none=True)
        y = gen_net(eps, torch.full((16,), 2.5))
        out = generator_loss(
            teacher.model, fake, y, method=method, alpha=1.0, t_max=800,
            gen=torch.Generator().manual_seed(3),
        )  # fmt: skip
        out.loss.mean().backward()
        return [p.grad if p.grad is not None else torch.zeros_like(p) for p in gen_net.parameters()]

    # the loss is identically 0; its gradient is 0 up to the order of float accumulation
    same = max(float(g.abs().max()) for g in grads(copy.deepcopy(teacher.model)))
    other = max(float(g.abs().max()) for g in grads(_perturbed(teacher.model, 2)))
    assert same < 1e-7
    assert other > 1e-3


def _sid_reference(y: Tensor, teacher: nn.Module, fake: nn.Module, gen: torch.Generator) -> Tensor:
    """SiD's generator loss (Zhou et al. 2024) written from its definition: Gaussian x_t = y + σε."""
    b = y.shape[0]
    u = torch.rand(b, dtype=torch.float64, generator=gen) * 0.8
    a, c = 80.0 ** (1 / 7), 0.002 ** (1 / 7)
    sigma = (a + (1 - u) * (c - a)) ** 7
    eps = torch.randn(y.shape, dtype=torch.float64, generator=gen)
    x = y + (sigma[:, None] * eps).float()
    y_real, y_fake = teacher(x, sigma.float()), fake(x, sigma.float())
    weight = (y - y_real).abs().mean(1).clamp_min(1e-5)
    return ((y_real - y_fake) * ((y_real - y) - 1.0 * (y_real - y_fake))).sum(1) / weight


def test_d_inf_generator_loss_is_sid(tiny_keys: list[str]) -> None:
    teacher = _tiny_teacher(tiny_keys, "method.aug_dim=inf")
    fake = _perturbed(teacher.model, 5)
    y = torch.randn(32, 2, generator=torch.Generator().manual_seed(9))
    ours = generator_loss(
        teacher.model, fake, y, method=PFGMPP(aug_dim=math.inf), alpha=1.0, t_max=800,
        gen=torch.Generator().manual_seed(4),
    ).loss  # fmt: skip
    ref = _sid_reference(y, teacher.model, fake, torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_d_inf_denoiser_gap_is_the_score_gap() -> None:
    """D → ∞: D_φ − D_ψ = σ²(∇log p_data,σ − ∇log p_θ,σ) (Tweedie), so ℓ_α is SiD's score form (§B4)."""
    g = torch.Generator().manual_seed(0)
    data, fake_set = (
        torch.randn(6, 2, dtype=torch.float64, generator=g),
        torch.randn(5, 2, generator=g).double(),
    )
    x = torch.randn(4, 2, dtype=torch.float64, generator=g)
    sigma = torch.tensor([0.3, 0.7, 1.0, 2.0], dtype=torch.float64)

    def score(points: Tensor) -> Tensor:
        xs = x.clone().requires_grad_(True)
        logp = torch.logsumexp(
            torch.stack([log_kernel(xs - p, sigma, math.inf) for p in points]), dim=0
        )
        return torch.autograd.grad(logp.sum(), xs)[0]

    d_real = ExactDenoiser(data, math.inf)(x, sigma)
    d_fake = ExactDenoiser(fake_set, math.inf)(x, sigma)
    gap = sigma[:, None] ** 2 * (score(data) - score(fake_set))
    torch.testing.assert_close(d_real - d_fake, gap)
    y = torch.randn(4, 2, dtype=torch.float64, generator=g)
    sid_score_form = (gap * ((d_real - y) - 1.0 * gap)).sum(1)
    torch.testing.assert_close(sid_loss(y, d_real, d_fake, 1.0), sid_score_form)


# --- generator input and sampling --------------------------------------------------------------


class _Recorder(nn.Module):
    """A denoiser that records its inputs and returns 0.5·x."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))
        self.inputs: list[tuple[Tensor, Tensor]] = []

    def forward(self, x: Tensor, sigma: Tensor, labels: Tensor | None = None) -> Tensor:
        self.inputs.append((x.detach().clone(), sigma.detach().clone()))
        return self.w * x


def test_generator_input_is_kernel_noise_with_the_teachers_d(tiny_keys: list[str]) -> None:
    teacher = _tiny_teacher(tiny_keys, "method.aug_dim=3")
    teacher = Teacher(teacher.profile, _Recorder(), (2,), 0, (), "t")
    prof = distill_profile(teacher, None, ["distill.batch_size=4000"])
    state = init_state(prof.distill, teacher, torch.device("cpu"))
    twin = torch.Generator().set_state(state.noise_gen.get_state())
    generator_samples(
        state, prof.distill, teacher, None, b=4000, device=torch.device("cpu"), grad=False
    )
    x, sigma = state.gen.inputs[0]  # type: ignore[index]
    assert bool((sigma == 2.5).all())
    expected = sample_noise((4000, 2), 2.5, 3.0, generator=twin).float()
    assert torch.equal(x, expected)
    # and its radial law is the D = 3 kernel's: R²/r² ~ BetaPrime(N/2, D/2) (§A2), not Gaussian
    t = x.double().square().sum(1) / (2.5**2 * 3)
    assert stats.kstest(t.numpy(), stats.betaprime(1.0, 1.5).cdf).pvalue > 1e-3
    assert (
        stats.kstest((x.double().square().sum(1) / 2.5**2).numpy(), stats.chi2(2).cdf).pvalue < 1e-6
    )


def test_few_step_nfe_is_k_and_renoises_at_the_levels() -> None:
    net = _Recorder()
    levels = sigma_levels(3, 2.5, 0.5)
    assert levels == pytest.approx([2.5, 2.5 * 0.2**0.5, 0.5])
    model = DistilledGenerator(net, levels, 64.0, (2,))
    res = sample_distilled(model, seeds=range(8))
    assert res.nfe == 3
    assert len(net.inputs) == 3
    assert [float(s[0]) for _, s in net.inputs] == pytest.approx(levels)
    # re-noising: the input of step k is 0.5 · (previous input) + kernel noise at σ_k
    assert not torch.allclose(net.inputs[1][0], 0.5 * net.inputs[0][0])
    assert sample_distilled(model, seeds=range(4), steps=1).nfe == 1


def test_sampling_is_per_seed(tiny_keys: list[str]) -> None:
    teacher = _tiny_teacher(tiny_keys)
    model = DistilledGenerator(teacher.model, sigma_levels(2, 2.5, 0.5), 128.0, (2,))
    all_rows = sample_distilled(model, seeds=range(10), batch=3).x
    alone = sample_distilled(model, seeds=[7]).x
    torch.testing.assert_close(all_rows[7], alone[0], rtol=1e-5, atol=1e-6)  # batch-size rounding
    assert not torch.equal(all_rows[6], all_rows[7])


def test_mismatched_d_is_refused(tiny_keys: list[str]) -> None:
    teacher = _tiny_teacher(tiny_keys)
    with pytest.raises(UsageError, match="mismatched D"):
        distill_profile(teacher, None, ["method.aug_dim=64"])
    with pytest.raises(UsageError, match=r"\[net\]"):
        distill_profile(teacher, None, ["net.hidden=8"])


# --- the loop: resume, checkpoints -------------------------------------------------------------


def _losses(run: Path) -> dict[int, tuple[float, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["loss_gen"], r["loss_fake"]) for r in rows}


def test_resume_is_bit_exact_and_checkpoints_say_distill(
    tmp_path: Path, tiny_keys: list[str]
) -> None:
    teacher = _tiny_teacher(tiny_keys, "net.dropout=0.1")
    keys = ["distill.batch_size=16", "distill.kimg=0.064", "distill.tick_kimg=0.016",
            "distill.ckpt_ticks=2", "distill.preview_n=4", "distill.steps=2",
            "distill.dropout=0.1", "distill.fake_updates=2", "distill.lr_g=1e-3",
            "distill.lr_f=1e-3"]  # fmt: skip
    prof = distill_profile(teacher, None, keys)
    dev = torch.device("cpu")
    run_a = create_run_dir(tmp_path / "runs", prof.name)
    distill(prof, teacher, run_a, device=dev, sink=RunSink(run_a))

    half = prof.model_copy(update={"distill": prof.distill.model_copy(update={"kimg": 0.032})})
    run_b = create_run_dir(tmp_path / "runs", prof.name)
    distill(half, teacher, run_b, device=dev, sink=RunSink(run_b))
    state = run_b / "checkpoints" / str(read_latest(run_b)["state"])  # type: ignore[index]
    result = distill(prof, teacher, run_b, device=dev, sink=RunSink(run_b), resume=state)

    assert result.step == 4
    assert list(_losses(run_b)) == list(range(1, 5))
    assert _losses(run_a) == _losses(run_b)  # exact float equality
    ema_a, meta = load_weights(run_a / "checkpoints" / str(read_latest(run_a)["ema"]))  # type: ignore[index]
    ema_b, _ = load_weights(run_b / "checkpoints" / str(read_latest(run_b)["ema"]))  # type: ignore[index]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert meta["kind"] == "distill"
    assert meta["steps"] == "2"
    assert float(meta["aug_dim"]) == 128.0
    assert meta["teacher_method"] == "pfgmpp"
    ema_file = run_a / "checkpoints" / str(read_latest(run_a)["ema"])  # type: ignore[index]
    assert is_distilled(ema_file)
    loaded = load_distilled(ema_file)
    assert loaded.model.steps == 2
    assert loaded.profile.distill.teacher == "teacher.safetensors"
    res = sample_distilled(loaded, seeds=range(5))
    assert res.nfe == 2
    assert res.x.shape == (5, 2)
    assert bool(torch.isfinite(res.x).all())
