"""Lowering to the IR: normalisation, decision order, strictness, DNF, robustness, ensembles."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import time
import tracemalloc
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

import spec
from spec import canon, ir
from spec.errors import CheckError, IRError, UsageError

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
    # w > 1 is x > -0.4 and v < 7 is x < 0.2, exactly: neither is a double, so each side becomes the
    # nearest double inside, non-strict (the same doubles meet it)
    assert part.box.lower_strict == (False, False, False)
    assert part.box.upper_strict == (False, False, False)
    w, v = part.box.lower[2], part.box.upper[1]
    assert Fraction(w) > Fraction(-2, 5) > Fraction(math.nextafter(w, -math.inf))
    assert Fraction(v) < Fraction(1, 5) < Fraction(math.nextafter(v, math.inf))


def test_output_constants_are_normalised_with_strictness_kept() -> None:
    prop = one("property p:\n  require a < 5 and b >= 3")
    assert prop.requirement == ir.Ordering(((ir.Linear(((0, 1.0),), 2.0, True), ir.Linear(((1, -1.0),), -1.0, False)),))


def _meets(c: float, d: float, op: str, b: float) -> bool:
    """c * d op b in rationals: the meaning of a one-term constraint on the doubles written."""
    left, right = Fraction(c) * Fraction(d), Fraction(b)
    return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]


@pytest.mark.parametrize(("c", "op", "b"), [
    (2.0, ">=", 5e-324),  # the quotient is half the least subnormal: rounded to nearest it is 0
    (0.1, "<", -1.401298464324817e-45), (-0.1, ">", -1.401298464324817e-45), (0.1, "<=", 0.3),
    (3.0, "<", 1.0), (3.0, ">", 1.0), (-3.0, ">=", 1.0), (0.5, "<", 0.25), (1e-300, "<", 1e-10),
])
def test_a_one_term_constraint_admits_exactly_the_doubles_that_meet_it(c: float, op: str, b: float) -> None:
    """One input and one score scaled by c: the box side (the atom) computed from the exact quotient b / c,
    rounded inwards, not the quotient's nearest double (which moves the face by one double)."""
    text = (f"network n : real[1] -> real[2]\nproperty p: when {c!r} * x[0] {op} {b!r} require y[0] > y[1]\n"
            f"property q: require {c!r} * y[1] {op} {b!r}\n")
    p, q = spec.load(text, "t.prop").properties
    box = p.region.parts[0].box
    ((atom,),) = q.requirement.disjuncts
    assert isinstance(atom, ir.Linear)
    face = box.upper[0] if math.isfinite(box.upper[0]) else box.lower[0]
    for d in {face, math.nextafter(face, math.inf), math.nextafter(face, -math.inf), 0.0, b / c}:
        inside = box.lower[0] <= d <= box.upper[0] and not (box.lower_strict[0] and d == box.lower[0]) \
            and not (box.upper_strict[0] and d == box.upper[0])
        assert inside == _meets(c, d, op, b), (d, box)
        ((_, sign),) = atom.coeffs
        met = sign * d < atom.bound if atom.strict else sign * d <= atom.bound
        assert met == _meets(c, d, op, b), (d, atom)


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


# ---------------------------------------------------------------- sizes: tiny files, bounded memory

TINY = "network n : real[4096, 4096] -> real[2]\n  domain x[*] in [0, 1]\n"  # 66 bytes, 16,777,216 inputs


def test_a_shape_beyond_max_inputs_is_refused_at_the_shape_before_anything_is_built() -> None:
    # Run apart, with its address space capped at 1 GiB: building one object per input
    # (once about 27 GB) ends in a MemoryError there, not in this process.
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "import spec\n"
        "from spec.errors import CheckError\n"
        "try:\n"
        f"    spec.load({TINY + 'property p: require y[0] > y[1]'!r}, 'tiny.prop')\n"
        "except CheckError as err:\n"
        "    print(err)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSPEC_MAX")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == (
        "tiny.prop:1:13: network n has 16777216 inputs, more than MAX_INPUTS = 4194304: "
        "set the environment variable CERTSPEC_MAX_INPUTS to raise the limit\n"
        "network n : real[4096, 4096] -> real[2]\n"
        "            ^~~~~~~~~~~~~~~~\n"
    )


def test_the_environment_sets_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTSPEC_MAX_INPUTS", "6")
    monkeypatch.setenv("CERTSPEC_MAX_OUTPUTS", "3")
    assert spec.load("network n : real[2, 3] -> real[3]\n").networks[0].n_inputs == 6
    with pytest.raises(CheckError, match=r"network n has 8 inputs, more than MAX_INPUTS = 6: .*CERTSPEC_MAX_INPUTS") as info:
        spec.load("network n : real[2, 4] -> real[3]\n")
    assert (info.value.span.column, info.value.span.end_column) == (13, 23)  # type: ignore[union-attr]
    with pytest.raises(CheckError, match=r"network n has 4 outputs, more than MAX_OUTPUTS = 3: ") as info:
        spec.load("network n : real[2] -> real[4]\n")
    assert info.value.span.column == 24  # type: ignore[union-attr]
    with pytest.raises(CheckError, match="more than 10\\*\\*30 inputs"):
        spec.load(f"network n : real[{'9' * 40}] -> real[2]\n")
    monkeypatch.setenv("CERTSPEC_MAX_INPUTS", "lots")
    with pytest.raises(UsageError, match=r"^CERTSPEC_MAX_INPUTS='lots' must be a positive integer$"):
        spec.load("network n : real[2] -> real[3]\n")


def test_a_domain_of_every_input_holds_no_object_per_input() -> None:
    n = 1 << 17
    text = f"network n : real[{n}] -> real[2]\n  domain x[*] in [0, 255]\n  normalize inputs mean 127.5 range 255\n"
    text += "property p: require y[0] > y[1]\n"
    tracemalloc.start()
    try:
        loaded = spec.load(text, "big.prop")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    net = loaded.networks[0]
    # the input names (strings, part of the IR) and one box of shared floats; about 1,400 bytes once
    assert peak / n < 250, peak / n
    assert net.domain == ir.Box((-0.5,) * n, (0.5,) * n, (False,) * n, (False,) * n)
    assert len({id(v) for v in net.domain.lower}) == 1  # one float, shared
    assert loaded.properties[0].region.parts[0].box is net.domain  # the region everywhere shares the domain


def test_every_input_means_each_input_with_its_own_normalisation() -> None:
    means, ranges = [0.0, 1.0, 0.0, 1.0, -3.0], [1.0, 2.0, 1.0, 2.0, 0.1]
    norm = f"  normalize inputs mean {means} range {ranges}\n"
    head = "network n : real[5] -> real[2]\n"
    every = spec.load(head + "  domain x[*] in (0.1, 1]\n" + norm + "property p: when x[*] in [0, 0.7) require y[0] > y[1]\n")
    each = ", ".join(f"x[{i}] in (0.1, 1]" for i in range(5))
    when = " and ".join(f"x[{i}] in [0, 0.7)" for i in range(5))
    listed = spec.load(head + f"  domain {each}\n" + norm + f"property p: when {when} require y[0] > y[1]\n")
    assert every == listed
    with pytest.raises(CheckError, match="a `require` is about outputs"):
        spec.load(head + "property p: require x[*] in [0, 1]\n")


def _ors(k: int) -> str:
    return " and ".join(f"(x[{i}] < 0.25 or x[{i}] > 0.75)" for i in range(k))


def test_a_region_beyond_max_coordinates_is_refused_before_it_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTSPEC_MAX_COORDINATES", "20000")
    head = "network n : real[1000] -> real[2]\n  domain x[*] in [0, 1]\n"
    assert len(spec.load(head + f"property p: when {_ors(4)} require y[0] > y[1]\n").properties[0].region.parts) == 16
    with pytest.raises(CheckError, match=r"expands to 32 parts of 1000 inputs each, more than MAX_COORDINATES = 20000 ") as info:
        spec.load(head + f"property p: when {_ors(5)} require y[0] > y[1]\n", "big.prop")
    assert str(info.value).startswith("big.prop:3:19: ")


def test_the_regions_of_all_properties_count_against_max_coordinates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CERTSPEC_MAX_COORDINATES", "5000")
    head = "network n : real[1000] -> real[2]\n  domain x[*] in [0, 1]\n"
    props = "".join(f"property p{k}: when x[{k}] > 0.5 require y[0] > y[1]\n" for k in range(5))
    assert len(spec.load(head + props[: props.index("property p4")]).properties) == 4  # the domain and 4 boxes
    with pytest.raises(CheckError, match=r"hold more than MAX_COORDINATES = 5000 box coordinates") as info:
        spec.load(head + props, "many.prop")
    assert str(info.value).startswith("many.prop:7:19: ")
    everywhere = "".join(f"property q{k}: require y[0] > y[1]\n" for k in range(2, 50))
    assert len(spec.load(head + everywhere).properties) == 48  # they share the domain's box


def test_ranking_many_labels_is_linear() -> None:
    m = 50_000
    start = time.perf_counter()
    loaded = spec.load(f"network n : real[2] -> real[{m}]\nproperty p: require y[7] is first\n")
    assert time.perf_counter() - start < 15  # about 0.5 s; 25 s or more when each label copied the conjunction
    (conj,) = loaded.properties[0].requirement.disjuncts  # type: ignore[union-attr]
    assert len(conj) == m - 1 and ir.Order(7, 0, True) in conj


def test_a_condition_beyond_max_atoms_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canon, "MAX_ATOMS", 10_000)
    text = "network n : real[2] -> real[1000]\nproperty p: require "
    ok = spec.load(text + "(y[0] is first or y[1] is first) and y[2] < 1\n")
    assert len(ok.properties[0].requirement.disjuncts) == 2  # type: ignore[union-attr]
    with pytest.raises(CheckError, match="the condition expands to more than 10000 atoms"):
        spec.load(text + " and ".join(f"(y[{2 * k}] is first or y[{2 * k + 1}] is first)" for k in range(4)) + "\n")
