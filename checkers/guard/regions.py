"""Which properties are active at each input: boxes, half-spaces, and the original prediction.

Exact, vectorised, and the same in eager torch, under torch.export and in ONNX:
- boxes: a strict side is moved to the next float64 at compile time (x > l iff x >= next(l)
  for a float64 x), and for float32 inputs the bounds are rounded outwards to float32, so
  the comparison is exact in the input's own dtype (inputs of +-inf: see `in_boxes`);
- half-spaces: sum_j c_j x_j against b is summed from exact pieces (each c_j split into three
  18-bit parts, each x_j into its float32 part and the rest, so every product is exact in
  float64) with error-free additions (TwoSum); the sign is exact when the rounding errors
  are all zero or smaller than the sum, which covers every input except those within about
  1e-30 (relative) of the boundary and products that underflow. Inside that sliver the
  half-space counts as met: the guard then enforces the property (sound, perhaps needless);
- the prediction condition reads the ORIGINAL scores (`checkers.semantics.decision`).
"""

from __future__ import annotations

import torch

_SAFETY = 1.0 + 2.0**-40  # covers the rounding of the error sum itself (fewer than 2**12 terms)


def in_boxes(xt: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, parts: int) -> torch.Tensor:
    """Points as columns (n, B) in Q closed boxes, bounds given as columns (Q * n, 1) -> (Q, B) bool.

    (Batch-last layout: these small reductions run several times faster than batch-first.)
    lower <= x <= upper is read off min(x - lower, upper - x) >= 0: in round-to-nearest with
    subnormals, a difference of two floats of one dtype is 0 only when they are equal and
    has the exact sign otherwise. An unbounded side is stored as the largest finite float,
    so an infinite or NaN input coordinate is outside (the exact semantics puts x = +-inf
    inside a side unbounded in its direction: the only difference).
    """
    xs = xt.repeat(parts, 1)
    margin = torch.minimum(xs - lower, upper - xs)
    return margin.view(parts, xt.shape[0], xt.shape[1]).amin(dim=1) >= 0


def _two_sum(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """s = fl(a + b) and e with a + b = s + e exactly (Knuth; no multiplication, so no FMA contraction)."""
    s = a + b
    bp = s - a
    return s, (a - (s - bp)) + (b - bp)


def halfspace_signs(x: torch.Tensor, index: torch.Tensor, coeff: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """sign(sum_j c_j x[index_j] - bound) per point and half-space (B, H): -1, 0, +1, or 2 when unsure.

    `coeff` is (3, H, T): the three 18-bit pieces of each coefficient (zero padding).
    """
    x64 = x.to(torch.float64)
    xs = x64[:, index]  # (B, H, T)
    if x.dtype == torch.float64:
        hi = xs.to(torch.float32).to(torch.float64)
        pieces = [hi, xs - hi]
    else:  # float32, float16, bfloat16: one exact float64 piece
        pieces = [xs]
    terms = [c * p for p in pieces for c in coeff.unbind(0)]  # each product exact: 18 + 35 bits at most
    total = -bound.expand(xs.shape[0], -1)
    errors = torch.zeros_like(total)
    for term in terms:
        for j in range(term.shape[2]):
            total, e = _two_sum(total, term[:, :, j])
            errors = errors + e.abs()
    sign = torch.sign(total)
    sure = (errors == 0) | (total.abs() > errors * _SAFETY)
    return torch.where(sure, sign, torch.full_like(sign, 2.0))


def in_halfspaces(x: torch.Tensor, index: torch.Tensor, coeff: torch.Tensor, bound: torch.Tensor,
                  strict: torch.Tensor) -> torch.Tensor:
    """(B, H) bool: does each point meet each half-space? An unsure sign counts as met (see above)."""
    sign = halfspace_signs(x, index, coeff, bound)
    return (sign == 2) | torch.where(strict, sign < 0, sign <= 0)
