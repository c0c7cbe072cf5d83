"""An exact decision procedure for Ordering requirements on a PLNet, in Z3 linear real arithmetic.

Semantics: Z3 decides the REAL network (every weight and bias the exact rational value of
its float64 entry) over every REAL x of the region part; by itself it says nothing about
float32 execution. "sat" gives an exact rational x where the real network violates the
requirement: a real counterexample, which the caller must round to float32 and replay on
the model (as `checkers.verify._Search.witness` does) before calling anything VIOLATED.
"unsat" proves the requirement for the real network only: float32 rounding may still tie
or swap close scores, so a float32 HOLDS needs the margin of `checkers.floaterror` too.
"unknown" (out of time) proves nothing.

Encoding: h = relu(z) is (z >= 0 and h = z) or (z <= 0 and h = 0). Plain Z3 is hopeless on
that beyond a dozen unstable neurons, so it also gets implied facts: bounds l <= z <= u
(linear bounds in the input propagated forward, DeepPoly-style, in `Fraction`s, their
coefficients rounded to float64 values with the error moved outwards into the constant);
a neuron they prove stable is linear, an unstable one gets its triangle (u - l) h <=
u (z - l); and a box Z3 does not decide within its slice is bisected (case splits on the
input). Where the optional float64 `hidden` bounds show a neuron stable, it is linear too,
but only when the bound clears 0 by the relative margin `STABLE_MARGIN`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import z3

from checkers.bounds import HiddenBounds
from checkers.plnet import PLNet
from spec import ir

STABLE_MARGIN = 1e-9  # relative distance from 0 a float64 bound must keep to fix a neuron's phase
SLICE_MS = 200  # the least Z3 time a sub-box gets before it is bisected

Form = list[Fraction]  # a linear function of the input: coefficients, then the constant
Layers = list[tuple[list[list[Fraction]], list[Fraction]]]  # exact (weights, biases) per layer


def _q(value: float | Fraction) -> z3.ArithRef:
    """The exact rational value of a float (or Fraction) as a Z3 real constant."""
    f = Fraction(value)
    return z3.RealVal(f"{f.numerator}/{f.denominator}")


def _affine(row: Sequence[Fraction], bias: Fraction, inputs: Sequence[z3.ArithRef]) -> z3.ArithRef:
    return z3.Sum([*(_q(c) * v for c, v in zip(row, inputs, strict=True) if c != 0), _q(bias)])


def _region(part: ir.RegionPart, x: list[z3.ArithRef]) -> list[z3.BoolRef]:
    box, out = part.box, []
    for i, v in enumerate(x):
        lo, hi = box.lower[i], box.upper[i]
        if math.isfinite(lo):
            out.append(v > _q(lo) if box.lower_strict[i] else v >= _q(lo))
        if math.isfinite(hi):
            out.append(v < _q(hi) if box.upper_strict[i] else v <= _q(hi))
    for h in part.halfspaces:
        value = z3.Sum([_q(c) * x[i] for i, c in h.coeffs])
        out.append(value < _q(h.bound) if h.strict else value <= _q(h.bound))
    return out


@dataclass(frozen=True)
class Drift:
    """Bounds on e = f32(x) - f(x), the float32 scores' distance from the real ones, over a box:
    |e_i| <= output[i] (`floaterror.output_error`) and |row(e)| <= atoms[atom] for the linear
    part of each atom's row (`floaterror.row_error`). With a drift, Z3 decides the scores
    f(x) + e for every such e, so "unsat" covers float32 execution, and disjuncts that
    share outputs keep sharing their error (y0 >= y1 or y1 > y0 stays a tautology)."""

    output: tuple[float, ...]
    atoms: dict[ir.Atom, float]


def _fails(atom: ir.Atom, y: list[z3.ArithRef]) -> z3.BoolRef:
    """The negation of an atom, exactly."""
    if isinstance(atom, ir.Order):  # holds: y[hi] > y[lo] (>=)
        return y[atom.hi] <= y[atom.lo] if atom.strict else y[atom.hi] < y[atom.lo]
    value = z3.Sum([_q(c) * y[i] for i, c in atom.coeffs])  # holds: value < bound (<=)
    return value >= _q(atom.bound) if atom.strict else value > _q(atom.bound)


def _row(atom: ir.Atom, e: list[z3.ArithRef]) -> z3.ArithRef:
    """The linear part of an atom's row (value < 0 holds the atom) applied to e."""
    if isinstance(atom, ir.Order):
        return e[atom.lo] - e[atom.hi]
    return z3.Sum([_q(c) * e[i] for i, c in atom.coeffs])


def violation(req: ir.Ordering, y: list[z3.ArithRef]) -> z3.BoolRef:
    """The real scores y violate the DNF: in every disjunct some atom fails."""
    per = [z3.Or([_fails(a, y) for a in conj]) if conj else z3.BoolVal(False) for conj in req.disjuncts]
    return z3.And(per) if per else z3.BoolVal(True)


def _atom_holds(atom: ir.Atom, y: Sequence[Fraction]) -> bool:
    if isinstance(atom, ir.Order):
        return y[atom.hi] > y[atom.lo] if atom.strict else y[atom.hi] >= y[atom.lo]
    value = sum((Fraction(c) * y[i] for i, c in atom.coeffs), Fraction(0))
    return value < Fraction(atom.bound) if atom.strict else value <= Fraction(atom.bound)


def real_holds(req: ir.Ordering, y: Sequence[Fraction]) -> bool:
    """Do the exact scores y meet the requirement? (The rational twin of semantics.holds.)"""
    return any(all(_atom_holds(a, y) for a in conj) for conj in req.disjuncts)


def real_scores(net: PLNet, x: Sequence[Fraction]) -> list[Fraction]:
    """The real network's scores at x, in exact rational arithmetic (the network Z3 decides)."""
    h = list(x)
    last = len(net.weights) - 1
    for k, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        z = [sum((Fraction(c) * v for c, v in zip(row, h, strict=True) if c), Fraction(bias))
             for row, bias in zip(w.tolist(), b.tolist(), strict=True)]
        h = z if k == last else [max(v, Fraction(0)) for v in z]
    return h


def _down(v: Fraction) -> Fraction:
    f = float(v)
    return Fraction(f) if Fraction(f) <= v else Fraction(math.nextafter(f, -math.inf))


def _up(v: Fraction) -> Fraction:
    return -_down(-v)


def _rounded(form: Form, lo: list[Fraction], hi: list[Fraction], upper: bool) -> Form:
    """`form` with float64 coefficients, the rounding error moved into the constant, outwards."""
    coeffs = [Fraction(float(c)) for c in form[:-1]]
    err = sum(abs(c - r) * max(abs(a), abs(b)) for c, r, a, b in zip(form[:-1], coeffs, lo, hi, strict=True))
    return [*coeffs, _up(form[-1] + err) if upper else _down(form[-1] - err)]


def _extreme(form: Form, lo: list[Fraction], hi: list[Fraction], upper: bool) -> Fraction:
    """The max (or min) of `form` over the box."""
    return form[-1] + sum(c * (b if (c > 0) == upper else a) for c, a, b in zip(form[:-1], lo, hi, strict=True))


def _bounds(layers: Layers, lo: list[Fraction], hi: list[Fraction]) -> list[tuple[list[Fraction], list[Fraction]]]:
    """(lower, upper) bounds of every hidden pre-activation over the box [lo, hi]."""
    n, out = len(lo), []
    zero = [Fraction(0)] * (n + 1)
    low_f = up_f = [[Fraction(int(i == j)) for j in range(n + 1)] for i in range(n)]  # h = x
    for rows, biases in layers[:-1]:
        zlo, zhi, next_low, next_up = [], [], [], []
        for row, bias in zip(rows, biases, strict=True):
            lf, uf = [Fraction(0)] * n + [bias], [Fraction(0)] * n + [bias]
            for c, fl, fu in zip(row, low_f, up_f, strict=True):
                if c != 0:
                    lf = [t + c * v for t, v in zip(lf, fl if c > 0 else fu, strict=True)]
                    uf = [t + c * v for t, v in zip(uf, fu if c > 0 else fl, strict=True)]
            lf, uf = _rounded(lf, lo, hi, False), _rounded(uf, lo, hi, True)
            low, up = _down(_extreme(lf, lo, hi, False)), _up(_extreme(uf, lo, hi, True))
            zlo.append(low)
            zhi.append(up)
            if low >= 0 or up <= 0:
                next_low.append(lf if low >= 0 else zero)
                next_up.append(uf if low >= 0 else zero)
            else:
                slope = _up(up / (up - low))  # relu(z) <= slope (z - low) on [low, up]
                next_up.append(_rounded([slope * c for c in uf[:-1]] + [slope * (uf[-1] - low)], lo, hi, True))
                next_low.append(lf if up > -low else zero)
        out.append((zlo, zhi))
        low_f, up_f = next_low, next_up
    return out


def _check_box(
    layers: Layers, part: ir.RegionPart, req: ir.Ordering, box: tuple[list[Fraction], list[Fraction]] | None,
    hidden: HiddenBounds | None, timeout_ms: int, drift: Drift | None,
) -> tuple[z3.CheckSatResult, list[Fraction] | None]:
    """One Z3 call: the part, intersected with the finite sub-box `box` if any, and the exact network."""
    solver = z3.Solver()
    solver.set("timeout", max(1, timeout_ms))
    x = [z3.Real(f"x{i}") for i in range(len(layers[0][0][0]))]
    solver.add(*_region(part, x))
    bounds = _bounds(layers, *box) if box is not None else None
    for v, a, b in zip(x, *box, strict=True) if box is not None else ():
        solver.add(v >= _q(a), v <= _q(b))
    h: list[z3.ArithRef] = x
    for k, (rows, biases) in enumerate(layers[:-1]):
        nxt = []
        for j, (row, bias) in enumerate(zip(rows, biases, strict=True)):
            z, hj = z3.Real(f"z{k}_{j}"), z3.Real(f"h{k}_{j}")
            solver.add(z == _affine(row, bias, h))
            low, up = (bounds[k][0][j], bounds[k][1][j]) if bounds is not None else (None, None)
            phase = 1 if low is not None and low >= 0 else -1 if up is not None and up <= 0 else 0
            if not phase and hidden is not None:  # float64 bounds: trusted only with a margin
                hl, hu = float(hidden.lower[k][0, j]), float(hidden.upper[k][0, j])
                slack = STABLE_MARGIN * max(abs(hl), abs(hu))
                phase = 1 if hl > slack else -1 if hu < -slack else 0  # NaN compares False: unstable
            if phase:
                solver.add(hj == z if phase > 0 else hj == 0)
            else:
                solver.add(hj >= 0, hj >= z, z3.Or(z3.And(z >= 0, hj == z), z3.And(z <= 0, hj == 0)))
                if low is not None and up is not None:  # the triangle: implied, it prunes the search
                    solver.add(z >= _q(low), z <= _q(up), _q(up - low) * hj <= _q(up) * (z - _q(low)))
            nxt.append(hj)
        h = nxt
    rows, biases = layers[-1]
    scores = [_affine(r, c, h) for r, c in zip(rows, biases, strict=True)]
    if drift is not None:
        e = [z3.Real(f"e{i}") for i in range(len(scores))]
        solver.add(*(z3.And(v >= -_q(b), v <= _q(b)) for v, b in zip(e, drift.output, strict=True)))
        solver.add(*(z3.And(_row(a, e) >= -_q(b), _row(a, e) <= _q(b)) for a, b in drift.atoms.items()))
        scores = [s + v for s, v in zip(scores, e, strict=True)]
    solver.add(violation(req, scores))
    result = solver.check()
    if result != z3.sat:
        return result, None
    model = solver.model()
    return result, [Fraction(model.eval(v, model_completion=True).as_fraction()) for v in x]


def z3_decide(
    net: PLNet, part: ir.RegionPart, req: ir.Ordering, *, timeout_ms: int, hidden: HiddenBounds | None = None,
    drift: Drift | None = None,
) -> tuple[str, list[Fraction] | None]:
    """Does some real x in `part` make the real network violate `req`?

    Returns ("unsat", None) when none does, ("sat", x) with such an x as exact rationals,
    or ("unknown", None) when `timeout_ms` runs out. `hidden`: float64 bounds over the reals
    for `part`'s box (a batch of one), used only to fix stable neurons. `drift`: the float32
    error bounds over the box (see `Drift`): then "unsat" proves float32 execution too,
    and "sat" may be a point where only the error breaks the requirement.
    Raises ValueError for a part with a `predicted` condition.
    """
    if part.predicted is not None:
        raise ValueError("z3_decide does not encode a condition on the prediction")
    if hidden is not None and any(t.shape[0] != 1 for t in hidden.lower):
        raise ValueError("z3_decide needs hidden bounds for exactly one box")
    deadline = time.monotonic() + timeout_ms / 1000
    layers = [([[Fraction(c) for c in row] for row in w.tolist()], [Fraction(c) for c in b.tolist()])
              for w, b in zip(net.weights, net.biases, strict=True)]
    reach = [sum(abs(row[i]) for row in layers[0][0]) for i in range(net.n_inputs)]  # which input to split
    finite = all(map(math.isfinite, part.box.lower + part.box.upper))  # else no bounds, no splits: one call
    boxes = [([Fraction(v) for v in part.box.lower], [Fraction(v) for v in part.box.upper]) if finite else None]
    slice_ms = timeout_ms // 2  # the whole box first: bisecting pays only where Z3 is stuck
    while boxes:
        box = boxes.pop()
        left = int((deadline - time.monotonic()) * 1000)
        if left <= 0:
            return "unknown", None
        lo, hi = box or ([], [])
        split = max(range(len(lo)), key=lambda i: (hi[i] - lo[i]) * reach[i], default=0)
        can_split = box is not None and hi[split] > lo[split]
        result, x = _check_box(layers, part, req, box, hidden, min(slice_ms, left) if can_split else left, drift)
        if result == z3.sat:
            return "sat", x
        if result == z3.unsat:
            continue
        if not can_split:
            return "unknown", None
        slice_ms = max(SLICE_MS, timeout_ms // 20)
        mid = (lo[split] + hi[split]) / 2
        boxes.append((lo, [mid if i == split else v for i, v in enumerate(hi)]))
        boxes.append(([mid if i == split else v for i, v in enumerate(lo)], hi))
    return "unsat", None
