"""Built-in profiles: all load and round-trip; paper profiles carry the papers' numbers.

Sources of the expected values: /work/shared/docs/pfgm.md §2 and §8 (PFGM table), pfgmpp_ipfm.md §A8
(PFGM++ / EDM CIFAR-10 settings), architecture.md §1b (units: kimg, B_S, B_L). Unit conversions
are recomputed here from the papers' per-step numbers, not copied from the profiles.
"""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from pfgmctl.cli import app
from pfgmctl.config.load import (
    builtin_dir,
    list_profiles,
    load_profile,
    profile_from_text,
    profile_to_toml,
)
from pfgmctl.config.schema import PFGMMethod, PFGMPPMethod, Profile, UNetNet
from pfgmctl.engine.build import build_model, check_precond
from pfgmctl.engine.ema import ema_beta

PAPER = ("cifar10", "cifar10-pfgmpp-d2048", "celeba64", "lsun-bedroom256")
BUILTIN = sorted(p.stem for p in builtin_dir().glob("*.toml"))


def _pfgm(p: Profile) -> PFGMMethod:
    assert isinstance(p.method, PFGMMethod)
    return p.method


def _unet(p: Profile) -> UNetNet:
    assert isinstance(p.net, UNetNet)
    return p.net


def halflife_kimg(decay: float, batch: int) -> float:
    """EMA decay per step → half-life in kimg: decay^h = ½ ⇒ h = ln ½ / ln decay steps of `batch`."""
    return math.log(0.5) / math.log(decay) * batch / 1000.0


def test_expected_builtins_exist() -> None:
    assert {*PAPER, "shapes"} <= set(BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_loads_validates_and_round_trips(name: str) -> None:
    prof = load_profile(name)
    assert prof.name == name
    assert prof.description
    check_precond(prof)  # method and preconditioner agree
    again = profile_from_text(profile_to_toml(prof), f"{name} (round trip)")
    assert again == prof  # what a checkpoint embeds loads back to the same profile


def test_profile_list_shows_no_invalid_profile() -> None:
    infos = {i.name: i for i in list_profiles()}
    for name in BUILTIN:
        assert not infos[name].description.startswith("(invalid"), infos[name].description


@pytest.mark.parametrize("name", PAPER)
def test_profile_show_without_data(name: str) -> None:
    result = CliRunner().invoke(app, ["profile", "show", name, "--no-resolve"])
    assert result.exit_code == 0, result.stderr
    assert f'name = "{name}"' in result.stdout
    assert 'kind = "unet"' in result.stdout


def test_cifar10_pfgm_paper_values() -> None:
    p = load_profile("cifar10")
    m, net, t = _pfgm(p), _unet(p), p.train
    # pfgm.md §8 table, CIFAR-10 DDPM++ column, and §8 "common to all configs"
    assert (m.n_charges, t.batch_size) == (4096, 128)  # B_L / B_S
    assert (m.m, m.z_max, m.upper_norm, m.z_exp) == (291, 40, 3000, 5)
    assert (m.sigma, m.tau, m.gamma, m.z_min, m.restrict_m) == (0.01, 0.03, 5, 1e-3, True)
    assert (t.lr, t.beta1, t.beta2, t.grad_clip, t.seed) == (2e-4, 0.9, 0.999, 1.0, 49)
    assert (net.arch, net.model_channels, net.channel_mult) == ("ddpmpp", 128, (1, 2, 2, 2))
    assert (net.num_blocks, net.attn_resolutions, net.dropout) == (4, (16,), 0.1)
    assert p.data.kind == "cifar10"
    assert p.data.xflip
    assert (p.sample.solver, p.sample.rtol, p.sample.atol) == ("rk45", 1e-4, 1e-4)
    assert p.precond == "field"


def test_celeba_and_lsun_pfgm_paper_values() -> None:
    c = load_profile("celeba64")
    cm = _pfgm(c)
    assert (cm.n_charges, c.train.batch_size) == (512, 128)
    assert (cm.m, cm.z_max, cm.upper_norm, cm.z_exp) == (291, 60, 6000, 1)
    assert (c.train.lr, _unet(c).dropout, c.train.seed) == (2e-4, 0.1, 42)
    assert c.data.kind == "folder"
    assert c.data.resolution == 64
    lsun = load_profile("lsun-bedroom256")
    lm, ln = _pfgm(lsun), _unet(lsun)
    assert (lm.n_charges, lsun.train.batch_size) == (32, 32)
    assert (lm.m, lm.z_max, lm.upper_norm, lm.z_exp) == (356, 100, 30000, 0.1)
    assert (lsun.train.lr, ln.dropout) == (2e-5, 0.0)
    assert (ln.channel_mult, ln.num_blocks) == ((1, 1, 2, 2, 4, 4), 2)
    assert lsun.data.kind == "folder"
    assert lsun.data.resolution == 256


def test_pfgmpp_d2048_paper_values() -> None:
    p = load_profile("cifar10-pfgmpp-d2048")
    m, net, t = p.method, _unet(p), p.train
    assert isinstance(m, PFGMPPMethod)
    assert m.aug_dim == 2048
    assert (m.p_mean, m.p_std, m.sigma_min, m.sigma_max, m.rho) == (-1.2, 1.2, 0.002, 80, 7)
    assert (t.batch_size, t.lr, net.dropout, t.augment) == (512, 1e-3, 0.13, 0.12)
    assert (t.ema_halflife_kimg, t.ema_rampup) == (500, 0.05)  # 0.5 Mimg, EDM ramp-up
    assert (t.warmup_kimg, t.kimg) == (10_000, 200_000)  # 10 Mimg, 200 Mimg
    assert (p.sample.solver, p.sample.steps) == ("heun", 18)  # 35 NFE
    assert (net.arch, net.embedding, net.channel_mult) == ("ncsnpp", "fourier", (2, 2, 2))
    assert t.amp == "off"
    assert not t.tf32


@pytest.mark.parametrize(
    ("name", "iters", "warmup_steps", "decay"),
    [
        ("cifar10", 1_300_000, 5000, 0.9999),
        ("celeba64", 1_300_000, 5000, 0.9999),
        ("lsun-bedroom256", 2_400_000, 5000, 0.9999),
    ],
)
def test_pfgm_unit_conversions(name: str, iters: int, warmup_steps: int, decay: float) -> None:
    t = load_profile(name).train
    b = t.batch_size
    assert t.kimg == pytest.approx(iters * b / 1000)
    assert t.warmup_kimg == pytest.approx(warmup_steps * b / 1000)
    assert t.ema_halflife_kimg == pytest.approx(halflife_kimg(decay, b), abs=0.05)
    # The engine's per-step EMA weight at this half-life is the paper's decay (EDM formula).
    beta = ema_beta(10**9, b, t.ema_halflife_kimg, None)
    assert beta == pytest.approx(decay, abs=2e-9)
    # Reference EMA warm-up min(decay, (1+n)/(10+n)): its half-life is ≈ ema_rampup · images seen.
    n = 100_000
    h_steps = math.log(0.5) / math.log((1 + n) / (10 + n))
    assert t.ema_rampup == pytest.approx(h_steps / n, rel=0.01)


def test_architecture_md_unit_example() -> None:
    """architecture.md §1b: warm-up 5000 × 128 = 640 kimg; EMA 0.9999 at 128 ≈ 6931 steps ≈ 887 kimg."""
    assert math.log(0.5) / math.log(0.9999) == pytest.approx(6931.1, abs=0.1)
    assert halflife_kimg(0.9999, 128) == pytest.approx(887.2, abs=0.05)


def test_shapes_profile_is_small() -> None:
    p = load_profile("shapes")
    assert p.data.kind == "shapes"
    model = build_model(p, (p.data.channels, p.data.resolution, p.data.resolution))
    assert sum(q.numel() for q in model.parameters()) < 2_000_000
