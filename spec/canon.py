"""Canonical IR builders, shared by the lowering of `.prop` files and VNN-LIB import.

One form per meaning, as far as syntax goes: `y[a] - y[b] < 0` is always an `Order`; a
one-term output constraint has coefficient +1 or -1; a one-term input constraint is a
box bound; conjunctions are sorted sets; a disjunct implied by a smaller one is dropped
(absorption). Semantic equivalence beyond that is the business of the Z3 checks.

A DNF here is a tuple of frozensets of atoms: `()` is false, `(frozenset(),)` is true.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping
from fractions import Fraction

from spec.errors import CheckError, UsageError
from spec.ir import Atom, Box, HalfSpace, Linear, Order, Ordering, Region, RegionPart

MAX_DISJUNCTS = 4096
MAX_ATOMS = 1 << 22  # atoms in all the conjunctions of one DNF together
MAX_COORDINATES = 1 << 24  # box coordinates (parts x inputs) of the regions of one file; see size_limit

Dnf = tuple[frozenset[Atom], ...]
TRUE: Dnf = (frozenset(),)
FALSE: Dnf = ()


def _sorted_coeffs(coeffs: Mapping[int, float]) -> tuple[tuple[int, float], ...]:
    return tuple(sorted((i, float(c)) for i, c in coeffs.items() if c != 0.0))


def output_atom(coeffs: Mapping[int, float | Fraction], bound: float | Fraction, strict: bool) -> Atom | bool:
    """The atom `sum(c * y[i]) < bound` (`<=` if not strict), or its truth value if constant.

    A one-term atom's bound is the exact quotient of the numbers given (VNN-LIB's decimals as
    `Fraction`s, the `.prop` language's doubles as they are) rounded inwards (`double_bound`:
    the same doubles meet it). Atoms of several terms keep the nearest doubles."""
    if _finite(coeffs, bound) and len(exact := {i: Fraction(c) for i, c in coeffs.items() if c != 0}) == 1:
        ((index, q),) = exact.items()
        side, strict = double_bound(Fraction(bound) / abs(q), True, strict)
        if math.isinf(side):  # beyond every double: always true, or never
            return side > 0
        return Linear(((index, 1.0 if q > 0 else -1.0),), side, strict)
    items = _sorted_coeffs({i: float(c) for i, c in coeffs.items()})
    if not items:
        return bound > 0 if strict else bound >= 0
    value = float(bound)
    if len(items) == 1:
        i, c = items[0]
        return Linear(((i, 1.0 if c > 0 else -1.0),), value / abs(c) + 0.0, strict)  # + 0.0: no -0.0
    if len(items) == 2 and value == 0.0 and items[0][1] == -items[1][1]:
        (a, ca), (b, _) = items
        # ca*y[a] - ca*y[b] < 0: y[b] > y[a] when ca > 0, else y[a] > y[b]
        return Order(b, a, strict) if ca > 0 else Order(a, b, strict)
    return Linear(items, value + 0.0, strict)  # + 0.0: no -0.0


def negate(atom: Atom) -> Atom:
    """The exact logical negation (strictness flips)."""
    if isinstance(atom, Order):
        return Order(atom.lo, atom.hi, not atom.strict)
    return Linear(tuple((i, -c) for i, c in atom.coeffs), -atom.bound, not atom.strict)


def _check_size(n: int) -> None:
    if n > MAX_DISJUNCTS:
        raise CheckError(f"the condition expands to more than {MAX_DISJUNCTS} disjuncts")


def size_limit(name: str, default: int) -> int:
    """The limit `name` (MAX_INPUTS...): the environment variable CERTSPEC_<name> when set, else `default`."""
    raw = os.environ.get(f"CERTSPEC_{name}")
    if raw is None:
        return default
    digits = raw.strip()
    value = int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 20 else 0
    if value < 1:
        raise UsageError(f"CERTSPEC_{name}={raw!r} must be a positive integer")
    return value


def check_coordinates(parts: int, n: int) -> None:
    """Refuse, before it is built, a region of `parts` boxes over `n` inputs beyond MAX_COORDINATES."""
    limit = size_limit("MAX_COORDINATES", MAX_COORDINATES)
    if parts * n > limit:
        raise CheckError(
            f"the region expands to {parts} parts of {n} inputs each, more than MAX_COORDINATES = {limit} "
            "box coordinates: set the environment variable CERTSPEC_MAX_COORDINATES to raise the limit"
        )


def dnf_of(atom: Atom | bool) -> Dnf:
    if isinstance(atom, bool):
        return TRUE if atom else FALSE
    return (frozenset((atom,)),)


def dnf_or(a: Dnf, b: Dnf) -> Dnf:
    out = tuple(dict.fromkeys((*a, *b)))
    _check_size(len(out))
    return out


def _absorbed(conjs: Iterable[frozenset[Atom]]) -> Dnf:
    """Drop every conjunction that contains another one (it adds nothing to the or)."""
    kept: list[frozenset[Atom]] = []
    for conj in sorted(set(conjs), key=lambda c: (len(c), sorted(map(atom_key, c)))):
        if not any(k <= conj for k in kept):
            kept.append(conj)
    return tuple(kept)


def dnf_and(a: Dnf, b: Dnf) -> Dnf:
    """The product of two DNFs, absorbed as it goes (so chains of products stay small)."""
    _check_size(len(a) * len(b))
    if len(b) * sum(map(len, a)) + len(a) * sum(map(len, b)) > MAX_ATOMS:
        raise CheckError(f"the condition expands to more than {MAX_ATOMS} atoms")
    if len(a) == 1 and len(b) == 1:
        return (a[0] | b[0],)
    return _absorbed(x | y for x in a for y in b)


def dnf_all(parts: Iterable[Dnf]) -> Dnf:
    out = TRUE
    for p in parts:
        out = dnf_and(out, p)
    return out


def dnf_any(parts: Iterable[Dnf]) -> Dnf:
    out = FALSE
    for p in parts:
        out = dnf_or(out, p)
    return out


def dnf_not(a: Dnf) -> Dnf:
    """not (or_i and_j a_ij) = and_i or_j not a_ij, expanded back to a DNF."""
    return dnf_all(tuple(frozenset((negate(x),)) for x in conj) for conj in a)


def atom_key(atom: Atom) -> tuple[object, ...]:
    if isinstance(atom, Order):
        return (0, atom.hi, atom.lo, atom.strict)
    return (1, atom.coeffs, atom.bound, atom.strict)


def ordering(dnf: Dnf) -> Ordering:
    """The canonical Ordering of a DNF: absorption, then atoms and disjuncts sorted."""
    disjuncts = [tuple(sorted(c, key=atom_key)) for c in _absorbed(dnf)]
    return Ordering(tuple(sorted(disjuncts, key=lambda d: [atom_key(a) for a in d])))


# ---------------------------------------------------------------- regions


Bound = tuple[int, float, bool, bool]  # (index, value, is_upper, strict)


def double_bound(value: Fraction, is_upper: bool, strict: bool) -> tuple[float, bool]:
    """The bound `x <= value` (`<` if strict; `>=`/`>` for a lower bound) as a double bound
    that holds for exactly the same doubles (and so the same float32 values).

    `value` is exact; the double returned is rounded inwards, never outwards, and a strict
    side stays strict only where `value` is itself a double (x < 0.1 and x <= the largest
    double below 0.1 admit the same doubles). Beyond the double range the side is +-inf.
    """
    sign = 1 if is_upper else -1
    v = value * sign  # now an upper bound x' <= v with x' = sign * x
    if v > _DBL_MAX:  # every finite double is below
        return math.inf * sign, False
    if v < -_DBL_MAX:  # no finite double is: an empty side (a strict bound at -inf)
        return -math.inf * sign, True
    d = float(v)
    if Fraction(d) > v:
        d, strict = math.nextafter(d, -math.inf), False
    elif Fraction(d) < v:
        strict = False
    return d * sign + 0.0, strict  # + 0.0 turns -0.0 into 0.0


_DBL_MAX = Fraction(sys.float_info.max)


def input_bound(coeffs: Mapping[int, float | Fraction], bound: float | Fraction, strict: bool) -> Bound | HalfSpace | bool:
    """`sum(c * x[i]) < bound` (`<=` if not strict): a box bound, a half-space, or a truth value.

    A one-term constraint becomes a box bound: the exact quotient of the numbers given
    (VNN-LIB's decimals as `Fraction`s, the `.prop` language's doubles as they are) rounded
    inwards (`double_bound`), so the box admits exactly the doubles that satisfy the
    constraint with those numbers. A half-space keeps the nearest doubles of its coefficients
    and bound.
    """
    items = _sorted_coeffs({i: float(c) for i, c in coeffs.items()})
    if not items:
        return bound > 0 if strict else bound >= 0
    if len(items) > 1:
        return HalfSpace(items, float(bound) + 0.0, strict)  # + 0.0 turns -0.0 into 0.0
    ((i, c),) = ((i, q) for i, q in coeffs.items() if q != 0)
    if _finite(coeffs, bound):
        value, strict = double_bound(Fraction(bound) / Fraction(c), c > 0, strict)
        return (i, value, c > 0, strict)
    return (i, float(bound) / float(c) + 0.0, c > 0, strict)


def _finite(coeffs: Mapping[int, float | Fraction], bound: float | Fraction) -> bool:
    """Every number finite (a Fraction always is): then the one-term bound is computed exactly."""
    return all(isinstance(v, Fraction) or math.isfinite(v) for v in (bound, *coeffs.values()))


def tighten(lower: list[float], upper: list[float], ls: list[bool], us: list[bool], b: Bound) -> None:
    """Intersect the box given by the four lists with one bound, in place."""
    i, value, is_upper, strict = b
    if is_upper:
        if value < upper[i] or (value == upper[i] and strict):
            upper[i], us[i] = value, strict
    elif value > lower[i] or (value == lower[i] and strict):
        lower[i], ls[i] = value, strict


def input_constraint(coeffs: Mapping[int, float | Fraction], bound: float | Fraction, strict: bool, n: int) -> RegionPart | bool:
    """The region `sum(c * x[i]) < bound` (`<=` if not strict) as one RegionPart, or a truth value."""
    b = input_bound(coeffs, bound, strict)
    return b if isinstance(b, bool) else bound_part(b, n)


def bound_part(b: Bound | HalfSpace, n: int) -> RegionPart:
    """The region part of one box bound or half-space over n inputs."""
    if isinstance(b, HalfSpace):
        return RegionPart(Box.unbounded(n), (b,))
    lower, upper = [-math.inf] * n, [math.inf] * n
    ls, us = [False] * n, [False] * n
    tighten(lower, upper, ls, us, b)
    return RegionPart(Box(tuple(lower), tuple(upper), tuple(ls), tuple(us)))


def sorted_halfspaces(halfspaces: Iterable[HalfSpace]) -> tuple[HalfSpace, ...]:
    return tuple(sorted(set(halfspaces), key=lambda h: (h.coeffs, h.bound, h.strict)))


def part_and(p: RegionPart, q: RegionPart) -> RegionPart:
    halfspaces = sorted_halfspaces((*p.halfspaces, *q.halfspaces))
    if p.predicted is None or q.predicted is None:
        predicted = p.predicted if q.predicted is None else q.predicted
    else:
        predicted = tuple(sorted(set(p.predicted) & set(q.predicted)))
    return RegionPart(p.box.intersect(q.box), halfspaces, predicted)


def region_and(a: tuple[RegionPart, ...], b: tuple[RegionPart, ...]) -> tuple[RegionPart, ...]:
    _check_size(len(a) * len(b))
    check_coordinates(len(a) * len(b), len(a[0].box.lower) if a else 0)
    return tuple(dict.fromkeys(part_and(x, y) for x in a for y in b))


def region_or(a: tuple[RegionPart, ...], b: tuple[RegionPart, ...]) -> tuple[RegionPart, ...]:
    out = tuple(dict.fromkeys((*a, *b)))
    _check_size(len(out))
    check_coordinates(len(out), len(out[0].box.lower) if out else 0)
    return out


def part_is_empty(part: RegionPart) -> bool:
    """Exactly (in rationals): is this part empty? Z3 decides parts with half-spaces."""
    if part.box.is_empty() or part.predicted == ():
        return True
    if not part.halfspaces:
        return False
    import z3  # a heavy import, needed only here

    solver = z3.Solver()
    xs = {}
    used = sorted({i for h in part.halfspaces for i, _ in h.coeffs})
    for i in used:
        xs[i] = z3.Real(f"x{i}")
        lo, hi = part.box.lower[i], part.box.upper[i]
        if lo != -math.inf:
            solver.add(xs[i] > Fraction(lo) if part.box.lower_strict[i] else xs[i] >= Fraction(lo))
        if hi != math.inf:
            solver.add(xs[i] < Fraction(hi) if part.box.upper_strict[i] else xs[i] <= Fraction(hi))
    for h in part.halfspaces:
        lhs = z3.Sum([z3.RealVal(Fraction(c)) * xs[i] for i, c in h.coeffs])
        solver.add(lhs < Fraction(h.bound) if h.strict else lhs <= Fraction(h.bound))
    return bool(solver.check() == z3.unsat)


def region(parts: tuple[RegionPart, ...], domain: Box) -> Region:
    """The parts intersected with the domain; empty parts dropped (the result may be empty)."""
    kept = []
    for p in parts:
        q = RegionPart(p.box.intersect(domain), p.halfspaces, p.predicted)
        if not part_is_empty(q):
            kept.append(q)
    return Region(tuple(dict.fromkeys(kept)))
