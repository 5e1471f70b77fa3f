"""Hand-written euler/heun: convergence order, exactness on the linear EDM path, callbacks, NFE."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch

from pfgmctl.solvers import Solution, StepInfo, euler, heun, solve
from pfgmctl.solvers.schedules import karras, log_uniform


def _riccati(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx/dt = x², solution x(t) = x₀/(1 − x₀t)."""
    return x.square()


def _riccati_error(solver: str, steps: int) -> float:
    x0 = torch.tensor([1.0, 0.5, -1.0], dtype=torch.float64)
    ts = torch.linspace(0.0, 0.5, steps + 1, dtype=torch.float64)
    sol = solve(_riccati, x0, ts, solver=solver)
    exact = x0 / (1 - x0 * 0.5)
    return float((sol.x - exact).abs().max())


@pytest.mark.parametrize(("solver", "lo", "hi"), [("euler", 1.8, 2.2), ("heun", 3.5, 4.5)])
def test_convergence_order(solver: str, lo: float, hi: float) -> None:
    errors = [_riccati_error(solver, n) for n in (64, 128, 256)]
    for coarse, fine in itertools.pairwise(errors):
        assert lo <= coarse / fine <= hi


def test_decaying_ode_backwards_in_time() -> None:
    """dx/dt = −x from t = 1 down to t = 0: x(0) = x(1)·e; heun's error is O(h²)."""
    x1 = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    ts = torch.linspace(1.0, 0.0, 201, dtype=torch.float64)
    for fn, tol in ((euler, 2e-2), (heun, 1e-4)):
        sol = fn(lambda x, t: -x, x1, ts)
        assert torch.allclose(sol.x, x1 * torch.e, rtol=tol)


@pytest.mark.parametrize("fn", [euler, heun])
def test_constant_denoiser_path_is_linear_in_sigma(fn: Callable[..., Solution]) -> None:
    """D ≡ c: dx/dσ = (x − c)/σ has x(σ) = c + (x₀ − c)·σ/σ₀; euler and heun are exact on it."""
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(1, 3, generator=gen, dtype=torch.float64)
    x0 = 80.0 * torch.randn(4, 3, generator=gen, dtype=torch.float64)
    sigmas = karras(18, 0.002, 80.0, 7.0)
    states: list[torch.Tensor] = []
    sol = fn(lambda x, s: (x - c) / s, x0, sigmas, callback=lambda info: states.append(info.x))
    for s, x in zip(sigmas[1:], states, strict=True):
        assert torch.allclose(x, c + (x0 - c) * s / 80.0, rtol=1e-11, atol=1e-12)
    assert torch.allclose(sol.x, c + (x0 - c) * 0.002 / 80.0, atol=1e-12)


def test_euler_into_zero_lands_on_constant_denoiser() -> None:
    """Euler's last step into σ = 0 is the denoiser output (EDM's final step)."""
    c = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    x0 = torch.tensor([[50.0, 20.0]], dtype=torch.float64)
    sigmas = torch.cat([karras(10, 0.002, 80.0), torch.zeros(1, dtype=torch.float64)])
    sol = euler(lambda x, s: (x - c) / s, x0, sigmas)
    assert torch.allclose(sol.x, c, atol=1e-12)


@pytest.mark.parametrize(("fn", "per_step"), [(euler, 1), (heun, 2)])
def test_callback_nfe_and_times(fn: Callable[..., Solution], per_step: int) -> None:
    ts = log_uniform(9, 40.0, 1e-3).log()
    seen_t: list[torch.Tensor] = []
    infos: list[StepInfo] = []

    def rhs(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen_t.append(t)
        return -0.1 * x

    x0 = torch.ones(2, 2, dtype=torch.float64)
    sol = fn(rhs, x0, ts, callback=infos.append)
    n = len(ts) - 1
    assert sol.nfe == per_step * n == len(seen_t)
    assert [i.i for i in infos] == list(range(1, n + 1))
    assert all(i.n == n for i in infos)
    assert [i.t for i in infos] == [float(t) for t in ts[1:]]
    assert [i.nfe for i in infos] == [per_step * k for k in range(1, n + 1)]
    assert torch.equal(infos[-1].x, sol.x)
    # rhs receives 0-dim float64 times from the grid.
    assert all(t.ndim == 0 and t.dtype == torch.float64 for t in seen_t)
    assert {float(t) for t in seen_t} <= {float(t) for t in ts}


def test_single_step_formulas() -> None:
    """One step re-derived: euler x + h·f(x, t0); heun x + h/2·(f(x, t0) + f(x + h·f(x, t0), t1))."""
    ts = torch.tensor([0.3, 0.7], dtype=torch.float64)
    x = torch.tensor([[1.5]], dtype=torch.float64)

    def rhs(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return t * x.square()

    h = 0.4
    d = 0.3 * 1.5**2
    assert float(euler(rhs, x, ts).x) == pytest.approx(1.5 + h * d, abs=1e-14)
    pred = 1.5 + h * d
    assert float(heun(rhs, x, ts).x) == pytest.approx(1.5 + h / 2 * (d + 0.7 * pred**2), abs=1e-14)


def test_no_callback_is_fine_and_zero_steps() -> None:
    x = torch.ones(3, dtype=torch.float64)
    one = torch.tensor([1.0], dtype=torch.float64)
    assert euler(lambda x, t: x, x, one).nfe == 0
    assert torch.equal(heun(lambda x, t: x, x, one).x, x)
