"""Canonical IR builders, shared by the lowering of `.prop` files and VNN-LIB import.

One form per meaning, as far as syntax goes: `y[a] - y[b] < 0` is always an `Order`; a
one-term output constraint has coefficient +1 or -1; a one-term input constraint is a
box bound; conjunctions are sorted sets; a disjunct implied by a smaller one is dropped
(absorption). Semantic equivalence beyond that is the business of the Z3 checks.

A DNF here is a tuple of frozensets of atoms: `()` is false, `(frozenset(),)` is true.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction

from spec.errors import CheckError
from spec.ir import Atom, Box, HalfSpace, Linear, Order, Ordering, Region, RegionPart

MAX_DISJUNCTS = 4096

Dnf = tuple[frozenset[Atom], ...]
TRUE: Dnf = (frozenset(),)
FALSE: Dnf = ()


def _sorted_coeffs(coeffs: Mapping[int, float]) -> tuple[tuple[int, float], ...]:
    return tuple(sorted((i, float(c)) for i, c in coeffs.items() if c != 0.0))


def output_atom(coeffs: Mapping[int, float], bound: float, strict: bool) -> Atom | bool:
    """The atom `sum(c * y[i]) < bound` (`<=` if not strict), or its truth value if constant."""
    items = _sorted_coeffs(coeffs)
    if not items:
        return bound > 0.0 if strict else bound >= 0.0
    if len(items) == 2 and bound == 0.0 and items[0][1] == -items[1][1]:
        (a, ca), (b, _) = items
        # ca*y[a] - ca*y[b] < 0: y[b] > y[a] when ca > 0, else y[a] > y[b]
        return Order(b, a, strict) if ca > 0 else Order(a, b, strict)
    if len(items) == 1:
        i, c = items[0]
        return Linear(((i, 1.0 if c > 0 else -1.0),), bound / abs(c) + 0.0, strict)  # + 0.0: no -0.0
    return Linear(items, float(bound) + 0.0, strict)


def negate(atom: Atom) -> Atom:
    """The exact logical negation (strictness flips)."""
    if isinstance(atom, Order):
        return Order(atom.lo, atom.hi, not atom.strict)
    return Linear(tuple((i, -c) for i, c in atom.coeffs), -atom.bound, not atom.strict)


def _check_size(n: int) -> None:
    if n > MAX_DISJUNCTS:
        raise CheckError(f"the condition expands to more than {MAX_DISJUNCTS} disjuncts")


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


def input_bound(coeffs: Mapping[int, float], bound: float, strict: bool) -> Bound | HalfSpace | bool:
    """`sum(c * x[i]) < bound` (`<=` if not strict): a box bound, a half-space, or a truth value."""
    items = _sorted_coeffs(coeffs)
    if not items:
        return bound > 0.0 if strict else bound >= 0.0
    if len(items) > 1:
        return HalfSpace(items, float(bound) + 0.0, strict)  # + 0.0 turns -0.0 into 0.0
    i, c = items[0]
    return (i, bound / c + 0.0, c > 0, strict)


def tighten(lower: list[float], upper: list[float], ls: list[bool], us: list[bool], b: Bound) -> None:
    """Intersect the box given by the four lists with one bound, in place."""
    i, value, is_upper, strict = b
    if is_upper:
        if value < upper[i] or (value == upper[i] and strict):
            upper[i], us[i] = value, strict
    elif value > lower[i] or (value == lower[i] and strict):
        lower[i], ls[i] = value, strict


def input_constraint(coeffs: Mapping[int, float], bound: float, strict: bool, n: int) -> RegionPart | bool:
    """The region `sum(c * x[i]) < bound` (`<=` if not strict) as one RegionPart, or a truth value."""
    b = input_bound(coeffs, bound, strict)
    if isinstance(b, bool):
        return b
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
    return tuple(dict.fromkeys(part_and(x, y) for x in a for y in b))


def region_or(a: tuple[RegionPart, ...], b: tuple[RegionPart, ...]) -> tuple[RegionPart, ...]:
    out = tuple(dict.fromkeys((*a, *b)))
    _check_size(len(out))
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
