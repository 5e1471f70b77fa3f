"""Built-in 2-D toy densities, drawn only from a passed generator, per-coordinate std ≈ 0.5–1."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from pfgmctl.errors import DataError

ToyFn = Callable[[int, torch.Generator], Tensor]


def _randn(n: int, d: int, gen: torch.Generator) -> Tensor:
    """Standard normal draws [n, d] in float64 on the generator's device."""
    return torch.randn(n, d, generator=gen, device=gen.device, dtype=torch.float64)


def _rand(n: int, gen: torch.Generator) -> Tensor:
    """Uniform [0, 1) draws [n] in float64 on the generator's device."""
    return torch.rand(n, generator=gen, device=gen.device, dtype=torch.float64)


def _randint(high: int, n: int, gen: torch.Generator) -> Tensor:
    """Uniform integers in [0, high) of shape [n]."""
    return torch.randint(high, (n,), generator=gen, device=gen.device)


def _polar(r: Tensor, theta: Tensor) -> Tensor:
    """Points [n, 2] at radius r and angle theta."""
    return torch.stack([r * torch.cos(theta), r * torch.sin(theta)], dim=1)


def _out(x: Tensor) -> Tensor:
    """Final dtype of every toy: float32 [n, 2]."""
    return x.to(torch.float32)


def eight_gaussians(n: int, gen: torch.Generator) -> Tensor:
    """Eight Gaussians (std 0.1) on a circle of radius 1.2."""
    theta = _randint(8, n, gen).to(torch.float64) * (math.pi / 4)
    return _out(_polar(torch.full_like(theta, 1.2), theta) + 0.1 * _randn(n, 2, gen))


def checkerboard(n: int, gen: torch.Generator) -> Tensor:
    """Uniform on the dark squares of a 4×4 checkerboard spanning [-1.2, 1.2]²."""
    x1 = 4 * _rand(n, gen) - 2
    x2 = _rand(n, gen) - 2 * _randint(2, n, gen).to(torch.float64)
    x2 = x2 + torch.floor(x1) % 2
    return _out(0.6 * torch.stack([x1, x2], dim=1))


def moons(n: int, gen: torch.Generator) -> Tensor:
    """Two interleaving half circles (sklearn's make_moons, noise 0.05), centred."""
    t = math.pi * _rand(n, gen)
    lower = _randint(2, n, gen).bool()
    outer = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    inner = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    x = torch.where(lower[:, None], inner, outer) - t.new_tensor([0.5, 0.25])
    return _out(x + 0.05 * _randn(n, 2, gen))


def swissroll(n: int, gen: torch.Generator) -> Tensor:
    """A 2-D Swiss roll t·(cos t, sin t), t ∈ [1.5π, 4.5π], centred and scaled by 1/10."""
    t = 1.5 * math.pi * (1 + 2 * _rand(n, gen))
    x = _polar(t, t) + 0.5 * _randn(n, 2, gen)
    return _out((x - x.new_tensor([2.0, 2 / (3 * math.pi)])) / 10)  # minus the exact mean


def rings(n: int, gen: torch.Generator) -> Tensor:
    """Four concentric rings of radii 0.35, 0.7, 1.05, 1.4 with noise 0.03."""
    r = 0.35 * (1 + _randint(4, n, gen).to(torch.float64))
    theta = 2 * math.pi * _rand(n, gen)
    return _out(_polar(r, theta) + 0.03 * _randn(n, 2, gen))


_HEART_MEAN_Y = 0.2933  # centroid height of the heart below (Monte Carlo, 2e7 points)


def _in_heart(x: Tensor, y: Tensor) -> Tensor:
    """Inside the algebraic heart (x² + y² − 1)³ − x²y³ ≤ 0."""
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


def heart(n: int, gen: torch.Generator) -> Tensor:
    """Uniform on a filled heart, by batched rejection from its bounding box."""
    kept: list[Tensor] = []
    while sum(len(k) for k in kept) < n:  # ~55% acceptance: one or two rounds
        box = _rand(2 * (2 * n + 64), gen).view(-1, 2)
        x, y = 2.4 * box[:, 0] - 1.2, 2.4 * box[:, 1] - 1.1
        kept.append(torch.stack([x, y], dim=1)[_in_heart(x, y)])
    pts = torch.cat(kept)[:n] - torch.tensor([0.0, _HEART_MEAN_Y], device=gen.device)
    return _out(pts * 1.4)


def pinwheel(n: int, gen: torch.Generator) -> Tensor:
    """Five curved blades (the FFJORD pinwheel): radial std 0.3, tangential std 0.1."""
    blades = _randint(5, n, gen).to(torch.float64)
    feats = _randn(n, 2, gen)
    feats = feats * feats.new_tensor([0.3, 0.1]) + feats.new_tensor([1.0, 0.0])
    angle = blades * (2 * math.pi / 5) + 0.25 * torch.exp(feats[:, 0])
    cos, sin = torch.cos(angle), torch.sin(angle)
    x = torch.stack([cos * feats[:, 0] - sin * feats[:, 1], sin * feats[:, 0] + cos * feats[:, 1]])
    return _out(x.T)


def circles(n: int, gen: torch.Generator) -> Tensor:
    """Two concentric circles of radii 1.5 and 0.75 with noise 0.04."""
    r = 1.5 - 0.75 * _randint(2, n, gen).to(torch.float64)
    theta = 2 * math.pi * _rand(n, gen)
    return _out(_polar(r, theta) + 0.04 * _randn(n, 2, gen))


def spirals(n: int, gen: torch.Generator) -> Tensor:
    """Two interleaved spiral arms (the FFJORD 2spirals), scaled to unit-ish std."""
    t = torch.sqrt(_rand(n, gen)) * 3 * math.pi
    arm = 1 - 2 * _randint(2, n, gen).to(torch.float64)
    x = torch.stack([-torch.cos(t) * t, torch.sin(t) * t], dim=1) * arm[:, None]
    return _out(x / 6 + 0.05 * _randn(n, 2, gen))


# The word "PFGM" as polylines (arcs as 24-chord ellipse pieces) in letter boxes of height 2.
_Polyline = list[tuple[float, float]]
_GAP = 0.35  # space between letters


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> _Polyline:
    """An elliptical arc from angle a0 to a1 (radians) as a 25-point polyline."""
    angles = [a0 + (a1 - a0) * i / 24 for i in range(25)]
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


def _letters() -> list[tuple[float, list[_Polyline]]]:
    """(width, polylines) of P, F, G, M, each drawn in the box [0, width] × [0, 2]."""
    half = math.pi / 2
    p = [[(0.0, 0.0), (0.0, 2.0), (0.4, 2.0), *_arc(0.4, 1.5, 0.45, 0.5, half, -half), (0.0, 1.0)]]
    f = [[(0.8, 2.0), (0.0, 2.0), (0.0, 0.0)], [(0.0, 1.1), (0.65, 1.1)]]
    g = [[*_arc(0.5, 1.0, 0.5, 1.0, 0.3 * math.pi, 2 * math.pi), (0.5, 1.0)]]
    m = [[(0.0, 0.0), (0.0, 2.0), (0.55, 0.7), (1.1, 2.0), (1.1, 0.0)]]
    return [(0.85, p), (0.8, f), (1.0, g), (1.1, m)]


def _pfgm_segments() -> tuple[Tensor, Tensor]:
    """Start and end points [S, 2] of every stroke segment of "PFGM", centred on the ink."""
    starts, ends, x0 = [], [], 0.0
    for width, lines in _letters():
        for line in lines:
            pts = torch.tensor(line, dtype=torch.float64) + torch.tensor([x0, 0.0])
            starts.append(pts[:-1])
            ends.append(pts[1:])
        x0 += width + _GAP
    a, b = torch.cat(starts), torch.cat(ends)
    length = (b - a).norm(dim=1, keepdim=True)
    centre = ((a + b) / 2 * length).sum(0) / length.sum()  # centroid of uniform ink
    return a - centre, b - centre


def pfgm(n: int, gen: torch.Generator) -> Tensor:
    """The word "PFGM": points uniform along the letter strokes plus Gaussian jitter."""
    a, b = (t.to(gen.device) for t in _pfgm_segments())
    seg = torch.multinomial((b - a).norm(dim=1), n, replacement=True, generator=gen)
    u = _rand(n, gen)[:, None]
    x = a[seg] + u * (b[seg] - a[seg]) + 0.04 * _randn(n, 2, gen)
    return _out(x * x.new_tensor([0.6, 0.8]))  # tall letters keep the y-std near 0.5


TOYS: dict[str, ToyFn] = {
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "moons": moons,
    "swissroll": swissroll,
    "rings": rings,
    "heart": heart,
    "pfgm": pfgm,
    "pinwheel": pinwheel,
    "circles": circles,
    "spirals": spirals,
}


def toy(name: str, n: int, gen: torch.Generator) -> Tensor:
    """Draw `n` points [n, 2] float32 of the named toy density."""
    if name not in TOYS:
        raise DataError(
            f"unknown toy data set '{name}'; set [data] name to one of {', '.join(TOYS)}"
        )
    return TOYS[name](n, gen)
