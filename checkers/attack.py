"""Falsifiers: random points and PGD inside a box, maximising the violation margin.

They only propose float32 candidates; a candidate becomes a witness only after
`checkers.semantics` confirms, exactly, that it lies in the region and that the model's
float32 scores violate the requirement.
"""

from __future__ import annotations

import torch
from torch import nn

from checkers.semantics import Rows, violation_margin


def inner_float32(lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The float32 box inside [lower, upper]: bounds rounded inwards, never outwards."""
    lo, hi = lower.to(torch.float32), upper.to(torch.float32)
    lo = torch.where(lo.to(torch.float64) < lower, torch.nextafter(lo, torch.full_like(lo, torch.inf)), lo)
    hi = torch.where(hi.to(torch.float64) > upper, torch.nextafter(hi, torch.full_like(hi, -torch.inf)), hi)
    return lo, hi


def _clip(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.minimum(x, upper), lower)


def _targets(rows: Rows, starts: int) -> torch.Tensor:
    """For each start, one atom per disjunct to break (start s takes atom s mod size)."""
    choice = [[conj[(s + i) % len(conj)] if conj else -1 for i, conj in enumerate(rows.disjuncts)] for s in range(starts)]
    return torch.tensor(choice, dtype=torch.long)


def targeted_margin(rows: Rows, y: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """min over disjuncts of the chosen atom's G y + g, per start: >= 0 breaks every disjunct."""
    values = y.to(torch.float64) @ rows.matrix.T + rows.consts
    safe = targets.clamp(min=0)
    chosen = values.gather(1, safe)
    chosen = torch.where(targets < 0, torch.full_like(chosen, -torch.inf), chosen)  # an empty disjunct always holds
    return chosen.min(dim=1).values


def pgd(
    module: nn.Module, rows: Rows, lower: torch.Tensor, upper: torch.Tensor, *,
    starts: int = 16, steps: int = 30, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Candidates (starts * (steps + 1), n) in float32 inside the box [lower, upper] (n,).

    Sign-gradient ascent from random starts. Each start targets one atom per disjunct
    (a violation must break every disjunct), cycling through the atoms, so the gradient
    never stalls on a max; the step shrinks from a quarter of the box width.
    """
    lo32, hi32 = inner_float32(lower, upper)
    if any(len(conj) == 0 for conj in rows.disjuncts):  # an empty conjunction is true: no point breaks it
        return lo32[None]
    width = hi32 - lo32
    targets = _targets(rows, starts)
    x = lo32 + torch.rand(starts, lo32.numel(), generator=generator) * width
    trail = [x.clone()]
    for step in range(steps):
        x = x.detach().requires_grad_(True)
        margin = targeted_margin(rows, module(x), targets) if rows.disjuncts else violation_margin(rows, module(x))
        (grad,) = torch.autograd.grad(margin.sum(), x)
        size = 0.25 * (1.0 - step / steps) + 0.01
        x = _clip(x.detach() + size * width * grad.sign(), lo32, hi32)
        trail.append(x)
    return torch.cat(trail)


def random_points(lower: torch.Tensor, upper: torch.Tensor, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`count` uniform float32 points in the box, with its centre and two opposite corners."""
    lo32, hi32 = inner_float32(lower, upper)
    points = lo32 + torch.rand(count, lo32.numel(), generator=generator) * (hi32 - lo32)
    return torch.cat([((lo32 + hi32) / 2)[None], lo32[None], hi32[None], points])
