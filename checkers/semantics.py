"""The concrete interpreter of the IR: is a point in a region, do scores meet a requirement.

Exact: float32 points and scores are compared with float64 bounds exactly; a linear
form is evaluated in float64 and, when the result is within a rounding error of its
bound, again in rationals (`fractions.Fraction`), so strict and non-strict comparisons
are decided exactly. `Rows` is an `Ordering` compiled to a matrix: atom r holds iff
G[r] . y + g[r] < 0 (strict) or <= 0, the form the bounds and attacks use.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from spec import ir

_SCREEN = 1e-9  # relative distance to a bound under which float64 is not trusted


@dataclass(frozen=True)
class Rows:
    """Atoms as rows; `disjuncts[i]` lists the rows of disjunct i of the DNF."""

    matrix: torch.Tensor  # (R, m) float64
    consts: torch.Tensor  # (R,) float64
    strict: tuple[bool, ...]
    disjuncts: tuple[tuple[int, ...], ...]
    terms: tuple[tuple[tuple[int, float], ...], ...]  # row r as sparse (index, coeff), and consts exactly
    bounds: tuple[float, ...]
    atoms: tuple[ir.Atom, ...]  # the IR atom of each row


def compile_ordering(req: ir.Ordering, m: int) -> Rows:
    atoms: dict[ir.Atom, int] = {}
    disjuncts = []
    for conj in req.disjuncts:
        disjuncts.append(tuple(atoms.setdefault(a, len(atoms)) for a in conj))
    matrix = torch.zeros(len(atoms), m, dtype=torch.float64)
    consts = torch.zeros(len(atoms), dtype=torch.float64)
    terms, bounds, strict = [], [], []
    for atom, r in atoms.items():
        row: tuple[tuple[int, float], ...]
        if isinstance(atom, ir.Order):  # y[hi] > y[lo]  <=>  y[lo] - y[hi] < 0
            row = ((atom.lo, 1.0), (atom.hi, -1.0))
            bound = 0.0
        else:  # sum c y < b  <=>  sum c y - b < 0
            row, bound = atom.coeffs, atom.bound
        for i, c in row:
            matrix[r, i] += c
        consts[r] = -bound
        terms.append(row)
        bounds.append(bound)
        strict.append(atom.strict)
    return Rows(matrix, consts, tuple(strict), tuple(disjuncts), tuple(terms), tuple(bounds), tuple(atoms))


def _exact_sign(terms: tuple[tuple[int, float], ...], bound: float, v: list[float]) -> int:
    total = sum((Fraction(c) * Fraction(v[i]) for i, c in terms), Fraction(0)) - Fraction(bound)
    return (total > 0) - (total < 0)


def atom_values(rows: Rows, y: torch.Tensor) -> torch.Tensor:
    """sign of G y + g per sample and row (B, R): -1, 0 or +1, decided exactly."""
    y64 = y.to(torch.float64)
    values = y64 @ rows.matrix.T + rows.consts
    scale = y64.abs() @ rows.matrix.abs().T + rows.consts.abs()
    signs = torch.sign(values)
    unsure = (values.abs() <= _SCREEN * scale).nonzero().tolist()
    for b, r in unsure:
        signs[b, r] = _exact_sign(rows.terms[r], rows.bounds[r], y64[b].tolist())
    return signs


def holds(rows: Rows, y: torch.Tensor) -> torch.Tensor:
    """Does each score vector (B, m) meet the requirement? (B,) bool, exact."""
    signs = atom_values(rows, y)
    strict = torch.tensor(rows.strict, dtype=torch.bool)
    atom_ok = torch.where(strict, signs < 0, signs <= 0)
    out = torch.zeros(y.shape[0], dtype=torch.bool)
    for conj in rows.disjuncts:
        out |= atom_ok[:, list(conj)].all(dim=1) if conj else torch.ones_like(out)
    return out


def violation_margin(rows: Rows, y: torch.Tensor) -> torch.Tensor:
    """min over disjuncts of max over their atoms of G y + g: >= 0 near a violation (B,).

    A differentiable objective for attacks; the verdict itself always comes from `holds`.
    """
    values = y.to(torch.float64) @ rows.matrix.T + rows.consts
    if not rows.disjuncts:
        return torch.full((y.shape[0],), torch.inf, dtype=torch.float64)
    per = [values[:, list(c)].max(dim=1).values if c else torch.full_like(values[:, 0], -torch.inf) for c in rows.disjuncts]
    return torch.stack(per, dim=1).min(dim=1).values


def in_part(part: ir.RegionPart, x: torch.Tensor, predicted: torch.Tensor | None = None) -> torch.Tensor:
    """Is each point (B, n) in the region part? Exact; `predicted` (B,) the original labels."""
    x64 = x.to(torch.float64)
    box = part.box
    lower, upper = torch.tensor(box.lower, dtype=torch.float64), torch.tensor(box.upper, dtype=torch.float64)
    ls, us = torch.tensor(box.lower_strict), torch.tensor(box.upper_strict)
    ok = (torch.where(ls, x64 > lower, x64 >= lower) & torch.where(us, x64 < upper, x64 <= upper)).all(dim=1)
    for h in part.halfspaces:
        idx = [i for i, _ in h.coeffs]
        coeffs = torch.tensor([c for _, c in h.coeffs], dtype=torch.float64)
        value = x64[:, idx] @ coeffs - h.bound
        scale = x64[:, idx].abs() @ coeffs.abs() + abs(h.bound)
        sign = torch.sign(value)
        for b in (value.abs() <= _SCREEN * scale).nonzero().flatten().tolist():
            sign[b] = _exact_sign(h.coeffs, h.bound, x64[b].tolist())
        ok &= sign < 0 if h.strict else sign <= 0
    if part.predicted is not None:
        if predicted is None:
            raise ValueError("this region part constrains the prediction: pass the original labels")
        ok &= torch.isin(predicted, torch.tensor(part.predicted))
    return ok


def decision(y: torch.Tensor, decide: ir.Decide) -> torch.Tensor:
    """The label each score vector (B, m) predicts: argmax (or argmin), the LOWEST index on a tie.

    The one tie-breaking rule of certspec (the guard and every test use it). A NaN score
    counts as the best (torch's argmax and argmin both pick a NaN).
    """
    return y.argmax(dim=1) if decide is ir.Decide.ARGMAX else y.argmin(dim=1)


def in_ball(x: list[float], ball: tuple[tuple[float, ...], float, ir.Norm]) -> bool:
    """Exactly (rationals): is x in the closed ball (centre, radius, norm)? A witness must be, whatever
    centre +- eps rounds to in float64."""
    centre, radius, norm = ball
    d = [Fraction(a) - Fraction(c) for a, c in zip(x, centre, strict=True)]
    if norm is ir.Norm.LINF:
        return all(abs(v) <= Fraction(radius) for v in d)
    return sum(v * v for v in d) <= Fraction(radius) ** 2


def ball_box(centre: tuple[float, ...], eps: float) -> ir.Box:
    """The box of a ball's float32 points: per coordinate the least and greatest float32 values in
    [c - eps, c + eps], computed exactly (c - eps rounded in float64 can fall outside the ball: 2^-60 - 0.125
    is -0.125). It holds every float32 point of the linf ball (and of the l2 ball inside it), and its
    corners are float32 points of the linf ball. A coordinate with no float32 value in its interval keeps
    the float64 ends (the ball has no float32 point; witnesses are checked against the ball anyway)."""
    lower, upper = [], []
    e = Fraction(eps)
    for c in centre:
        lo, hi = Fraction(c) - e, Fraction(c) + e
        a, b = _float32_at_least(lo), _float32_at_most(hi)
        if a > b:
            a, b = float(lo), float(hi)
        lower.append(a)
        upper.append(b)
    return ir.Box(tuple(lower), tuple(upper), (False,) * len(centre), (False,) * len(centre))


_F32_MAX = float(np.finfo(np.float32).max)


def _float32_at_least(bound: Fraction) -> float:
    if bound > _F32_MAX:
        return float("inf")
    if bound <= -_F32_MAX:
        return -_F32_MAX
    v = np.float32(float(bound))
    while Fraction(float(v)) < bound:
        v = np.nextafter(v, np.float32(np.inf))
    while Fraction(float(below := np.nextafter(v, np.float32(-np.inf)))) >= bound:
        v = below
    return float(v)


def _float32_at_most(bound: Fraction) -> float:
    return -_float32_at_least(-bound)
