"""Lowering to the IR: normalisation, decision order, strictness, DNF, robustness, ensembles."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import spec
from spec import ir
from spec.errors import IRError

NET = """
network n : real[3] -> real[4]
  labels a, b, c, d
  inputs u, v, w
  domain u in [0, 10], v in [0, 10], w in [0, 10]
  normalize inputs mean [5, 5, 5] range [10, 10, 10]
  normalize outputs mean 1 range 2
"""


def one(text: str, decide: str = "argmax") -> ir.Property:
    loaded = spec.load(NET + f"  decide {decide}\n" + text, "t.prop")
    assert len(loaded.properties) == 1
    return loaded.properties[0]


def holds(req: ir.Ordering, y: list[float]) -> bool:
    """Evaluate an Ordering on concrete scores (an oracle independent of the lowering)."""

    def atom(a: ir.Atom) -> bool:
        if isinstance(a, ir.Order):
            return y[a.hi] > y[a.lo] if a.strict else y[a.hi] >= y[a.lo]
        value = sum(c * y[i] for i, c in a.coeffs)
        return value < a.bound if a.strict else value <= a.bound

    return any(all(atom(a) for a in conj) for conj in req.disjuncts)


def test_inputs_are_normalised_and_clipped_to_the_domain() -> None:
    prop = one("property p:\n  when u >= 2 and v < 7 and w in (1, 20]\n  require a is first")
    (part,) = prop.region.parts
    assert part.box.lower == pytest.approx((-0.3, -0.5, -0.4))
    assert part.box.upper == pytest.approx((0.5, 0.2, 0.5))
    assert part.box.lower_strict == (False, False, True)
    assert part.box.upper_strict == (False, True, False)


def test_output_constants_are_normalised_with_strictness_kept() -> None:
    prop = one("property p:\n  require a < 5 and b >= 3")
    assert prop.requirement == ir.Ordering(((ir.Linear(((0, 1.0),), 2.0, True), ir.Linear(((1, -1.0),), -1.0, False)),))


def test_decision_order_flips_for_argmin() -> None:
    above = one("property p:\n  require a above b").requirement
    assert above == ir.Ordering(((ir.Order(0, 1, True),),))
    assert one("property p:\n  require a above b", "argmin").requirement == ir.Ordering(((ir.Order(1, 0, True),),))
    assert one("property p:\n  require a below b").requirement == ir.Ordering(((ir.Order(1, 0, True),),))


@pytest.mark.parametrize("decide", ["argmax", "argmin"])
@pytest.mark.parametrize(
    ("text", "oracle"),
    [
        ("a is first", lambda r: all(r[0] < r[j] for j in (1, 2, 3))),
        ("a is last", lambda r: all(r[0] > r[j] for j in (1, 2, 3))),
        ("a is not first", lambda r: any(r[j] < r[0] for j in (1, 2, 3))),
        ("not a is first", lambda r: not all(r[0] < r[j] for j in (1, 2, 3))),
        ("a is not last", lambda r: any(r[j] > r[0] for j in (1, 2, 3))),
        ("a above {b, c} or d below b", lambda r: (r[0] < r[1] and r[0] < r[2]) or r[3] > r[1]),
        ("not (a above b and c above d)", lambda r: not (r[0] < r[1] and r[2] < r[3])),
    ],
)
def test_shorthands_match_their_meaning_on_every_ordering_with_ties(decide: str, text: str, oracle) -> None:  # type: ignore[no-untyped-def]
    """Brute force over all weak orders of 4 scores: the DNF means what the docs say.

    `oracle` reads ranks r (lower rank = earlier in decision order).
    """
    req = one(f"property p:\n  require {text}", decide).requirement
    assert isinstance(req, ir.Ordering)
    for ranks in itertools.product(range(4), repeat=4):
        scores = [float(-r if decide == "argmax" else r) for r in ranks]
        assert holds(req, scores) == oracle(ranks), (text, ranks)


@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=4, max_size=4))
def test_not_is_exact_negation(y: list[float]) -> None:
    base = "a - 2 * b <= 0.5 or c > d and a >= c"
    req = one(f"property p:\n  require {base}").requirement
    neg = one(f"property p:\n  require not ({base})").requirement
    assert isinstance(req, ir.Ordering) and isinstance(neg, ir.Ordering)
    assert holds(req, y) != holds(neg, y)


def test_or_in_a_region_makes_several_parts_and_halfspaces_stay() -> None:
    prop = one("property p:\n  when (u <= 1 or u >= 9) and u + v <= 13\n  require a is first")
    assert len(prop.region.parts) == 2
    for part in prop.region.parts:
        (h,) = part.halfspaces
        # raw u + v <= 13 is 10 x0 + 5 + 10 x1 + 5 <= 13
        assert h == ir.HalfSpace(((0, 10.0), (1, 10.0)), 3.0, False)
    # with u >= 9 and v >= 0, u + v <= 3 is empty: Z3 drops that part exactly
    prop = one("property p:\n  when (u <= 1 or u >= 9) and u + v <= 3\n  require a is first")
    assert len(prop.region.parts) == 1


def test_predicted_condition_and_empty_parts_dropped() -> None:
    prop = one("property p:\n  when predicted in {b, a} or u > 100\n  require c below a")
    (part,) = prop.region.parts
    assert part.predicted == (0, 1)


def test_robust_eps_and_points_are_normalised() -> None:
    prop = one("dataset test = digits\nproperty p: robust top 2 eps 0.5 norm linf at [5, 6, 7], [0, 0, 0]")
    req = prop.requirement
    assert isinstance(req, ir.Robust)
    assert req.eps == pytest.approx(0.05)
    assert req.kind == ir.TopK(2)
    assert req.points[0] == pytest.approx((0.0, 0.1, 0.2))
    assert req.norm is ir.Norm.LINF


def test_affinity_sets_are_label_indices() -> None:
    req = one("dataset t = x\nproperty p: robust within {b, a}, {d} eps 1 norm l2 over t").requirement
    assert isinstance(req, ir.Robust)
    assert req.kind == ir.Affinity(((0, 1), (3,)))
    assert req.dataset == "t"


def test_ensembles_and_default_targets() -> None:
    loaded = spec.load(
        NET + "network m : real[3] -> real[4]\nproperty q: require y[0] above y[1]\n"
        "ensemble e = vote(n: 2, m: 1)\nensemble s = selective(n, m, alpha 0.05)\n"
        "property r: require a is first for e\n",
        "t.prop",
    )
    assert loaded.property("q").target == "m"  # the last network above it
    assert loaded.property("r").target == "e"
    assert loaded.ensembles[0] == ir.Ensemble("e", ir.EnsembleKind.VOTE, ("n", "m"), (2.0, 1.0))
    assert loaded.ensembles[1].alpha == 0.05


def test_requirement_dnf_is_canonical_and_absorbs() -> None:
    req = one("property p:\n  require (a above b or a above b and c above d) and (a above b)").requirement
    assert req == ir.Ordering(((ir.Order(0, 1, True),),))


def test_validator_rejects_broken_ir() -> None:
    net = ir.Network("n", (2,), (2,), ("a", "b"), ("x", "z"), ir.Box.unbounded(2))
    region = ir.Region((ir.RegionPart(ir.Box.unbounded(2)),))
    good = ir.Property("p", "n", region, ir.Ordering(((ir.Order(0, 1, True),),)))
    ir.validate(ir.Spec((net,), properties=(good,)))
    bad_index = ir.Property("p", "n", region, ir.Ordering(((ir.Order(0, 5, True),),)))
    bad_eps = ir.Property("p", "n", region, ir.Robust(ir.Local(), -1.0, ir.Norm.L2, ((0.0, 0.0),)))
    bad_box = ir.Property("p", "n", ir.Region((ir.RegionPart(ir.Box((0.0,), (1.0,), (False,), (False,))),)), good.requirement)
    bad_target = ir.Property("p", "nope", region, good.requirement)
    for prop in (bad_index, bad_eps, bad_box, bad_target):
        with pytest.raises(IRError):
            ir.validate(ir.Spec((net,), properties=(prop,)))


def test_box_intersection_keeps_strict_sides() -> None:
    a = ir.Box((0.0,), (1.0,), (True,), (False,))
    b = ir.Box((0.0,), (1.0,), (False,), (True,))
    both = a.intersect(b)
    assert both == ir.Box((0.0,), (1.0,), (True,), (True,))
    assert not both.contains((0.0,)) and not both.contains((1.0,)) and both.contains((0.5,))
    assert ir.Box((1.0,), (1.0,), (True,), (False,)).is_empty()
    assert not ir.Box((1.0,), (1.0,), (False,), (False,)).is_empty()
    assert math.isinf(ir.Box.unbounded(1).upper[0])
