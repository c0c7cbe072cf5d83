"""examples/acasxu/acasxu.prop lowers to the regions and requirements of VNN-COMP's files.

Regions: the same boxes, bounds equal within 1e-6 (the .vnnlib files print 9 decimals),
strictness equal. Requirements: equivalent over the reals, decided by Z3 (ours are
written with shorthands, the files as negated DNFs, so the DNFs differ in shape); a
constant in a `Linear` atom may differ by 1e-6 for the same reason.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest
import z3

import spec
from conftest import EXAMPLES, shared_data
from spec import ir
from spec.vnnlib import read_vnnlib

TOL = 1e-6


def _z3_atom(atom: ir.Atom, y: list[z3.ArithRef]) -> z3.BoolRef:
    if isinstance(atom, ir.Order):
        return y[atom.hi] > y[atom.lo] if atom.strict else y[atom.hi] >= y[atom.lo]
    lhs = z3.Sum([z3.RealVal(Fraction(c)) * y[i] for i, c in atom.coeffs])
    bound = z3.RealVal(Fraction(atom.bound))
    return lhs < bound if atom.strict else lhs <= bound


def _z3_ordering(req: ir.Ordering, y: list[z3.ArithRef]) -> z3.BoolRef:
    return z3.Or([z3.And([_z3_atom(a, y) for a in conj]) for conj in req.disjuncts])


def _align(ours: ir.Ordering, theirs: ir.Ordering) -> ir.Ordering:
    """Ours with each Linear bound replaced by the matching bound of theirs (within TOL)."""
    targets = [a for conj in theirs.disjuncts for a in conj if isinstance(a, ir.Linear)]

    def fix(a: ir.Atom) -> ir.Atom:
        if isinstance(a, ir.Order):
            return a
        for t in targets:
            # `COC < 1500` is, exactly, `y0 <= d` with d the largest double below the normalised 1500; the file
            # writes `y0 < d` with d that quotient's nearest double: the same bound but for the one double d
            if t.coeffs == a.coeffs and (t.strict == a.strict or not a.strict) and abs(t.bound - a.bound) <= TOL:
                return t
        return a

    return ir.Ordering(tuple(tuple(fix(a) for a in conj) for conj in ours.disjuncts))


def equivalent(ours: ir.Ordering, theirs: ir.Ordering, m: int) -> bool:
    y = [z3.Real(f"y{i}") for i in range(m)]
    solver = z3.Solver()
    solver.add(_z3_ordering(_align(ours, theirs), y) != _z3_ordering(theirs, y))
    return bool(solver.check() == z3.unsat)


def boxes_close(a: ir.Box, b: ir.Box) -> bool:
    return (
        all(abs(x - y) <= TOL for x, y in zip(a.lower + a.upper, b.lower + b.upper, strict=True))
        and a.lower_strict == b.lower_strict
        and a.upper_strict == b.upper_strict
    )


@pytest.fixture(scope="module")
def ours() -> ir.Spec:
    return spec.load_file(EXAMPLES / "acasxu" / "acasxu.prop")


@pytest.mark.parametrize("n", range(1, 11))
def test_phi_n_lowers_to_prop_n(ours: ir.Spec, n: int) -> None:
    theirs = read_vnnlib(shared_data("acasxu", f"prop_{n}.vnnlib")).properties[0]
    mine = ours.property(f"phi{n}")
    assert len(mine.region.parts) == len(theirs.region.parts)
    for part in mine.region.parts:
        assert part.halfspaces == () and part.predicted is None
        assert any(boxes_close(part.box, other.box) for other in theirs.region.parts), (n, part.box)
    assert isinstance(mine.requirement, ir.Ordering) and isinstance(theirs.requirement, ir.Ordering)
    assert equivalent(mine.requirement, theirs.requirement, 5), n


def test_the_equivalence_check_sees_strictness(ours: ir.Spec) -> None:
    """The oracle is not vacuous: making phi3's comparisons non-strict breaks equivalence."""
    theirs = read_vnnlib(shared_data("acasxu", "prop_3.vnnlib")).properties[0].requirement
    mine = ours.property("phi3").requirement
    assert isinstance(mine, ir.Ordering) and isinstance(theirs, ir.Ordering)
    weak = ir.Ordering(
        tuple(tuple(dataclasses.replace(a, strict=False) for a in conj) for conj in mine.disjuncts)
    )
    assert equivalent(mine, theirs, 5)
    assert not equivalent(weak, theirs, 5)


def test_the_box_check_sees_a_shifted_bound(ours: ir.Spec) -> None:
    theirs = read_vnnlib(shared_data("acasxu", "prop_1.vnnlib")).properties[0].region.parts[0].box
    box = ours.property("phi1").region.parts[0].box
    assert boxes_close(box, theirs)
    shifted = dataclasses.replace(box, upper=(box.upper[0] + 2 * TOL, *box.upper[1:]))
    assert not boxes_close(shifted, theirs)
