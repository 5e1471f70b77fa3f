"""torchdiffeq wrapper: accuracy, NFE counting, step hooks, fixed-grid methods, dispatch."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch

from pfgmctl.solvers import StepInfo, canonical, is_adaptive, odeint, solve


class _Counted:
    """dx/dt = −x that records every call."""

    def __init__(self) -> None:
        self.ts: list[float] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.ndim == 0
        assert t.dtype == torch.float64
        self.ts.append(float(t))
        return -x


def _grid(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_dopri5_matches_analytic_solution() -> None:
    x0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    rhs = _Counted()
    sol = odeint(rhs, x0, _grid(0.0, 2.0), method="dopri5", rtol=1e-8, atol=1e-10)
    assert torch.allclose(sol.x, x0 * math.exp(-2.0), rtol=1e-6)
    assert sol.nfe > 0
    assert sol.nfe == len(rhs.ts)
    loose = odeint(_Counted(), x0, _grid(0.0, 2.0), method="dopri5", rtol=1e-3, atol=1e-3)
    assert loose.nfe < sol.nfe
    assert torch.allclose(loose.x, x0 * math.exp(-2.0), rtol=1e-2, atol=1e-2)


def test_nonlinear_ode_and_intermediate_grid_points_ignored() -> None:
    """Adaptive methods use only the end points of ts."""
    x0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
    exact = x0 / (1 - x0 * 0.5)
    a = odeint(lambda x, t: x.square(), x0, _grid(0.0, 0.5), method="dopri5", rtol=1e-9, atol=1e-9)
    b = odeint(
        lambda x, t: x.square(),
        x0,
        torch.linspace(0, 0.5, 7, dtype=torch.float64),
        method="dopri5",
        rtol=1e-9,
        atol=1e-9,
    )
    assert torch.allclose(a.x, exact, rtol=1e-7)
    assert torch.equal(a.x, b.x)
    assert a.nfe == b.nfe


def test_decreasing_grid_and_callbacks() -> None:
    x1 = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    infos: list[StepInfo] = []
    rhs = _Counted()
    sol = odeint(
        rhs, x1, _grid(1.0, 0.0), method="dopri5", rtol=1e-8, atol=1e-8, callback=infos.append
    )
    assert torch.allclose(sol.x, x1 * math.e, rtol=1e-6)
    assert len(infos) >= 2
    assert [i.i for i in infos] == list(range(1, len(infos) + 1))
    assert all(i.n is None for i in infos)
    times = [i.t for i in infos]
    assert all(a > b for a, b in itertools.pairwise(times))  # monotone toward ts[-1]
    assert times[0] < 1.0
    assert times[-1] == pytest.approx(0.0, abs=0.2)
    nfes = [i.nfe for i in infos]
    assert nfes == sorted(nfes)
    assert 0 < nfes[-1] <= sol.nfe


def test_dopri5_stays_inside_the_grid() -> None:
    """Neither rhs evaluations nor reported times may pass ts[-1] (here σ_min on an EDM-like run)."""
    x0 = torch.tensor([[40.0, -30.0]], dtype=torch.float64)
    c = torch.tensor([[0.1, 0.2]], dtype=torch.float64)
    seen: list[float] = []
    infos: list[StepInfo] = []

    def rhs(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(float(t))
        return (x - c) / t

    odeint(rhs, x0, _grid(80.0, 0.002), method="dopri5", callback=infos.append)
    assert min(seen) >= 0.002 - 1e-12
    assert min(i.t for i in infos) >= 0.002 - 1e-12


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_callback_state_is_the_state_at_t(method: str) -> None:
    """StepInfo.x must be x(StepInfo.t), as it is for the hand-written euler/heun."""
    x1 = torch.tensor([[2.0, -1.0]], dtype=torch.float64)
    infos: list[StepInfo] = []
    ts = torch.linspace(0.0, 1.0, 9, dtype=torch.float64)
    odeint(lambda x, t: -x, x1, ts, method=method, rtol=1e-8, atol=1e-8, callback=infos.append)
    for info in infos:
        assert torch.allclose(info.x, x1 * math.exp(-info.t), rtol=1e-4)
    if method == "rk4":  # NFE after the step, like euler (n) and heun (2n)
        assert [i.nfe for i in infos] == [4 * k for k in range(1, len(ts))]


def test_rk4_steps_on_the_grid() -> None:
    ts = torch.linspace(0.0, 0.5, 9, dtype=torch.float64)
    rhs = _Counted()
    infos: list[StepInfo] = []
    x0 = torch.tensor([1.0], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # see test_fixed_grid_emits_no_warning
        sol = odeint(rhs, x0, ts, method="rk4", callback=infos.append)
    n = len(ts) - 1
    assert sol.nfe == 4 * n == len(rhs.ts)
    assert len(infos) == n
    assert [i.t for i in infos] == pytest.approx([float(t) for t in ts[1:]])
    # Every grid point but the last starts a step; every evaluation lies inside the grid.
    grid = {round(float(t), 12) for t in ts[:-1]}
    assert grid <= {round(t, 12) for t in rhs.ts}
    assert min(rhs.ts) >= 0.0
    assert max(rhs.ts) <= 0.5
    assert torch.allclose(sol.x, x0 * math.exp(-0.5), rtol=1e-7)


def test_rk4_is_fourth_order() -> None:
    x0 = torch.tensor([1.0], dtype=torch.float64)
    errors = []
    for n in (8, 16, 32):
        ts = torch.linspace(0.0, 0.5, n + 1, dtype=torch.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = odeint(lambda x, t: x.square(), x0, ts, method="rk4")
        errors.append(float((sol.x - 2.0).abs()))
    for coarse, fine in itertools.pairwise(errors):
        assert 12 < coarse / fine < 20


def test_fixed_grid_emits_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        odeint(
            lambda x, t: -x,
            torch.ones(2, dtype=torch.float64),
            torch.linspace(0, 1, 3, dtype=torch.float64),
            method="rk4",
        )


def test_solve_dispatch_and_names() -> None:
    x0 = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    ts = _grid(0.0, 1.0)
    a = solve(lambda x, t: -x, x0, ts, solver="rk45", rtol=1e-6, atol=1e-6)
    b = odeint(lambda x, t: -x, x0, ts, method="dopri5", rtol=1e-6, atol=1e-6)
    assert torch.equal(a.x, b.x)
    assert a.nfe == b.nfe
    assert canonical("rk45") == "dopri5"
    assert canonical("heun") == "heun"
    assert canonical("bosh3") == "bosh3"
    assert is_adaptive("rk45")
    assert not is_adaptive("heun")
    assert not is_adaptive("rk4")
    with pytest.raises(ValueError, match="unknown solver"):
        solve(lambda x, t: -x, x0, ts, solver="rk99")
    with pytest.raises(ValueError, match="unknown solver"):
        canonical("nope")
    with pytest.raises(ValueError, match="unknown torchdiffeq method"):
        odeint(lambda x, t: -x, x0, ts, method="heun")


@pytest.mark.parametrize("solver", ["bosh3", "adaptive_heun", "midpoint"])
def test_other_torchdiffeq_methods_by_name(solver: str) -> None:
    x0 = torch.tensor([1.0, -1.0], dtype=torch.float64)
    ts = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = solve(lambda x, t: -x, x0, ts, solver=solver, rtol=1e-6, atol=1e-6)
    assert torch.allclose(sol.x, x0 * math.exp(-1.0), rtol=1e-3)
    assert sol.nfe > 0
