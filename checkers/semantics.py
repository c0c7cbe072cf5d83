"""The concrete interpreter of the IR: is a point in a region, do scores meet a requirement.

Exact: float32 points and scores are compared with float64 bounds exactly; a linear
form is evaluated in float64 and, when the result is within a rounding error of its
bound, again in rationals (`fractions.Fraction`), so strict and non-strict comparisons
are decided exactly. `Rows` is an `Ordering` compiled to a matrix: atom r holds iff
G[r] . y + g[r] < 0 (strict) or <= 0, the form the bounds and attacks use.

Non-finite values have no truth value. The property's semantics is over the reals: a score
vector with a NaN or infinite entry (`finite` is False) neither `holds` nor is `violated`
(every checker reports UNKNOWN there, with `nonfinite_reason`, never HOLDS or VIOLATED), and a
point with a non-finite coordinate lies in no region and no ball.

`float32_box` is the one answer to "which float32 points can this region part hold?": every
checker bounds its search by it, and a part for which it is None holds no float32 point, so a
property holds there vacuously (`NO_FLOAT32_POINT`, the same words from every checker).
"""

from __future__ import annotations

import math
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


NO_FLOAT32_POINT = "no float32 point in the region"
VACUOUS = f"{NO_FLOAT32_POINT}: the property holds vacuously"  # the reason every checker gives


def _exact_sign(terms: tuple[tuple[int, float], ...], bound: float, v: list[float]) -> int:
    """The sign of sum c v[i] - bound in rationals (every value finite: callers screen the rest)."""
    total = sum((Fraction(c) * Fraction(v[i]) for i, c in terms), Fraction(0)) - Fraction(bound)
    return (total > 0) - (total < 0)


def finite(y: torch.Tensor) -> torch.Tensor:
    """(B,) bool: every entry of each row of y (B, m) is finite (no NaN, no +-inf)."""
    return torch.isfinite(y).all(dim=1)


def nonfinite_reason(x: torch.Tensor | list[float] | tuple[float, ...], y: torch.Tensor | list[float] | tuple[float, ...],
                     where: str = "x") -> str:
    """The UNKNOWN reason for a point whose float32 scores are not finite (no verdict rests on them)."""
    xs = x.tolist() if isinstance(x, torch.Tensor) else list(x)
    ys = y.tolist() if isinstance(y, torch.Tensor) else list(y)
    return (f"the model's scores are not finite at {where} = ({', '.join(repr(float(v)) for v in xs)}): "
            f"y = ({', '.join(repr(float(v)) for v in ys)}); a comparison with a NaN or infinite score has no "
            "truth value, so neither HOLDS nor VIOLATED can rest on it")


def atom_values(rows: Rows, y: torch.Tensor) -> torch.Tensor:
    """sign of G y + g per sample and row (B, R): -1, 0 or +1, decided exactly; NaN for a sample
    whose scores are not all finite (`finite`): it has no sign."""
    y64 = y.to(torch.float64)
    ok = finite(y64)
    clean = torch.where(ok[:, None], y64, torch.zeros_like(y64))  # no inf * 0 = NaN, no inf in the screen
    values = clean @ rows.matrix.T + rows.consts
    scale = clean.abs() @ rows.matrix.abs().T + rows.consts.abs()
    signs = torch.sign(values)
    # an overflowing float64 sum (finite scores near float64's range) is decided exactly too
    unsure = ((values.abs() <= _SCREEN * scale) | ~torch.isfinite(values) | ~torch.isfinite(scale)).nonzero().tolist()
    for b, r in unsure:
        signs[b, r] = _exact_sign(rows.terms[r], rows.bounds[r], clean[b].tolist())
    return signs.masked_fill(~ok[:, None], float("nan"))


def _meets(rows: Rows, signs: torch.Tensor) -> torch.Tensor:
    strict = torch.tensor(rows.strict, dtype=torch.bool)
    atom_ok = torch.where(strict, signs < 0, signs <= 0)
    out = torch.zeros(signs.shape[0], dtype=torch.bool)
    for conj in rows.disjuncts:
        out |= atom_ok[:, list(conj)].all(dim=1) if conj else torch.ones_like(out)
    return out


def holds(rows: Rows, y: torch.Tensor) -> torch.Tensor:
    """Does each score vector (B, m) meet the requirement? (B,) bool, exact; False where a score is not
    finite (no truth value: see `violated`, which is False there too)."""
    signs = atom_values(rows, y)
    return _meets(rows, signs) & finite(y)


def violated(rows: Rows, y: torch.Tensor) -> torch.Tensor:
    """Does each score vector (B, m) break the requirement? (B,) bool, exact: finite scores that do not
    meet it. A witness is a point where this is True; non-finite scores are never one."""
    signs = atom_values(rows, y)
    return ~_meets(rows, signs) & finite(y)


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
    ok &= finite(x64)  # a region is a set of reals: +-inf is in none, even an unbounded one
    x64 = torch.where(ok[:, None], x64, torch.zeros_like(x64))
    for h in part.halfspaces:
        idx = [i for i, _ in h.coeffs]
        coeffs = torch.tensor([c for _, c in h.coeffs], dtype=torch.float64)
        value = x64[:, idx] @ coeffs - h.bound
        scale = x64[:, idx].abs() @ coeffs.abs() + abs(h.bound)
        sign = torch.sign(value)
        unsure = (value.abs() <= _SCREEN * scale) | ~torch.isfinite(value) | ~torch.isfinite(scale)
        for b in unsure.nonzero().flatten().tolist():
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
    if not all(math.isfinite(v) for v in x):
        return False
    d = [Fraction(a) - Fraction(c) for a, c in zip(x, centre, strict=True)]
    if norm is ir.Norm.LINF:
        return all(abs(v) <= Fraction(radius) for v in d)
    return sum(v * v for v in d) <= Fraction(radius) ** 2


def ball_box(centre: tuple[float, ...], eps: float) -> ir.Box:
    """The box of a ball's float32 points: per coordinate the least and greatest float32 values in
    [c - eps, c + eps], computed exactly (c - eps rounded in float64 can fall outside the ball: 2^-60 - 0.125
    is -0.125). It holds every float32 point of the linf ball (and of the l2 ball inside it), and its
    corners are float32 points of the linf ball. A coordinate with no float32 value in its interval gives
    an empty box (that coordinate's lower end above its upper one): the ball has no float32 point, and
    `float32_box` of the box (intersected with anything) is None."""
    lower, upper = [], []
    e = Fraction(eps)
    for c in centre:
        lo, hi = Fraction(c) - e, Fraction(c) + e
        a, b = _float32_at_least(lo), _float32_at_most(hi)
        lower.append(a)
        upper.append(b)
    return ir.Box(tuple(lower), tuple(upper), (False,) * len(centre), (False,) * len(centre))


_F32_MAX = float(np.finfo(np.float32).max)


def float32_box(region: ir.RegionPart | ir.Box) -> ir.Box | None:
    """The float32 box of a region part, or None when the part holds no float32 point.

    Per coordinate, the least and greatest float32 values that meet the part's box (strict sides
    respected), found exactly (in rationals: a float64 bound such as 5e-324 or 1e-45 lies between
    float32 values); every side of the result is non-strict, and an infinite side stays infinite
    (unbounded). It holds every float32 point of the part, and its ends are float32 values.
    None when some coordinate has no float32 value in its interval, or when a half-space of the part
    misses the whole float32 box (its least value over the box, exact, is above the bound, or at it for
    a strict one). A box that is not None may still hold no float32 point when half-spaces exclude it
    jointly; a witness is always checked against the part itself (`in_part`).
    """
    part = region if isinstance(region, ir.RegionPart) else ir.RegionPart(region)
    box = part.box
    lower: list[float] = []
    upper: list[float] = []
    for lo, hi, ls, us in zip(box.lower, box.upper, box.lower_strict, box.upper_strict, strict=True):
        a, b = float32_interval(lo, hi, ls, us)
        if a == math.inf or b == -math.inf or a > b:
            return None
        lower.append(a)
        upper.append(b)
    for h in part.halfspaces:
        ends = [lower[i] if c > 0 else upper[i] for i, c in h.coeffs]
        if not all(math.isfinite(v) for v in ends):
            continue  # unbounded below on this box: it cannot be ruled out
        least = sum((Fraction(c) * Fraction(v) for (_, c), v in zip(h.coeffs, ends, strict=True)), Fraction(0))
        if least > Fraction(h.bound) or (h.strict and least == Fraction(h.bound)):
            return None
    n = len(lower)
    return ir.Box(tuple(lower), tuple(upper), (False,) * n, (False,) * n)


def float32_interval(lo: float, hi: float, lo_strict: bool = False, hi_strict: bool = False) -> tuple[float, float]:
    """(a, b): the least finite float32 value >= lo (> lo when strict) and the greatest <= hi (< hi), exactly;
    an infinite end stays infinite, and inf (or -inf) when there is no such finite value. The interval holds
    a float32 point iff a <= b with both finite or unbounded (`float32_box` per coordinate)."""
    a = -math.inf if lo == -math.inf else _float32_above(Fraction(lo), lo_strict)
    b = math.inf if hi == math.inf else -_float32_above(-Fraction(hi), hi_strict)
    return a, b


def _float32_above(bound: Fraction, strict: bool) -> float:
    """The least finite float32 value >= bound (> bound when strict); inf when there is none."""
    v = _float32_at_least(bound)
    if strict and v != math.inf and Fraction(v) == bound:
        v = float(np.nextafter(np.float32(v), np.float32(np.inf)))
    return v if math.isfinite(v) else math.inf


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
