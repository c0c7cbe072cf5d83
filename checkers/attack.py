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


def pgd(
    module: nn.Module, rows: Rows, lower: torch.Tensor, upper: torch.Tensor, *,
    starts: int = 16, steps: int = 30, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Candidates (starts * (steps + 1), n) in float32 inside the box [lower, upper] (n,).

    Sign-gradient ascent on `violation_margin`, from random starts, with a step that
    shrinks from a quarter of the box width; every iterate is returned.
    """
    lo32, hi32 = inner_float32(lower, upper)
    width = hi32 - lo32
    x = lo32 + torch.rand(starts, lo32.numel(), generator=generator) * width
    trail = [x.clone()]
    for step in range(steps):
        x = x.detach().requires_grad_(True)
        margin = violation_margin(rows, module(x))
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
