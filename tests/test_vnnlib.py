"""VNN-LIB import and export (spec/vnnlib.py).

The shared ACAS Xu and MNIST files load, validate and survive export then import
unchanged; two independent oracles check the meaning of the import: Z3 reading the file
as SMT-LIB, and a small vectorised evaluator of the file's text written here. Hand-built
and generated IR properties round trip; user mistakes give exact, located messages.
"""

from __future__ import annotations

import decimal
import functools
import itertools
import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import z3
from hypothesis import given
from hypothesis import strategies as st

from conftest import SHARED_DATA, shared_data
from spec import canon, ir
from spec.errors import VnnlibError
from spec.vnnlib import MAX_DEPTH, dump_vnnlib, load_vnnlib, read_vnnlib

FOLDERS = ("acasxu", "mnistfc")


def _shared_files() -> list[str]:
    """'folder/file' for every shared prop_*.vnnlib; one placeholder per absent folder (it skips)."""
    out = []
    for folder in FOLDERS:
        found = sorted((SHARED_DATA / folder).glob("prop_*.vnnlib"))
        out += [f"{folder}/{p.name}" for p in found] or [f"{folder}/prop_absent.vnnlib"]
    return out


FILES = _shared_files()


@functools.cache
def _load(rel: str) -> tuple[Path, ir.Network, ir.Property]:
    path = shared_data(*rel.split("/"))
    loaded = read_vnnlib(path)
    (net,), (prop,) = loaded.networks, loaded.properties
    return path, net, prop


def _ordering(req: ir.Requirement) -> ir.Ordering:
    assert isinstance(req, ir.Ordering)
    return req


# ---------------------------------------------------------------- the shared files


@pytest.mark.parametrize("rel", FILES)
def test_shared_file_loads_validates_and_round_trips(rel: str) -> None:
    path, net, prop = _load(rel)
    assert prop.name == path.stem
    assert prop.target == net.name == "net"
    assert net.input_names[0] == "X_0"
    assert net.labels[0] == "Y_0"
    ir.validate(ir.Spec(networks=(net,), properties=(prop,)))
    text = dump_vnnlib(prop, net)
    again = load_vnnlib(text, path.name, network=net)
    assert again.properties == (prop,)
    assert dump_vnnlib(again.properties[0], net) == text


def test_acasxu_prop_6_has_two_region_parts() -> None:
    _, _, prop = _load("acasxu/prop_6.vnnlib")
    assert len(prop.region.parts) == 2
    first, second = (p.box for p in prop.region.parts)
    assert (first.lower[1], first.upper[1]) == (0.11140846, 0.499999896)
    assert (second.lower[1], second.upper[1]) == (-0.499999896, -0.11140846)
    assert not any(first.lower_strict + first.upper_strict + second.lower_strict + second.upper_strict)
    expected = ir.Order(1, 0, True), ir.Order(2, 0, True), ir.Order(3, 0, True), ir.Order(4, 0, True)
    assert prop.requirement == ir.Ordering((expected,))


def test_acasxu_prop_8_requirement_is_the_expanded_dnf() -> None:
    _, _, prop = _load("acasxu/prop_8.vnnlib")
    req = _ordering(prop.requirement)
    choices = [(ir.Order(j, 0, True), ir.Order(j, 1, True)) for j in (2, 3, 4)]
    expected = {frozenset(c) for c in itertools.product(*choices)}
    assert len(req.disjuncts) == 8
    assert {frozenset(conj) for conj in req.disjuncts} == expected
    assert req == canon.ordering(tuple(expected))


def _least_double_at_least(text: str) -> float:
    q = Fraction(text)
    d = float(q)
    return d if Fraction(d) >= q else math.nextafter(d, math.inf)


def _greatest_double_at_most(text: str) -> float:
    return -_least_double_at_least(text[1:] if text.startswith("-") else "-" + text)


def test_acasxu_prop_1_and_prop_2_requirements_are_exact() -> None:
    _, _, p1 = _load("acasxu/prop_1.vnnlib")
    assert p1.requirement == ir.Ordering(((ir.Linear(((0, 1.0),), 3.991125645861615, True),),))
    box = p1.region.parts[0].box
    # each side is the double bound admitting exactly the doubles the decimal admits
    assert box.lower == (_least_double_at_least("0.6"), -0.5, -0.5, _least_double_at_least("0.45"), -0.5)
    assert box.upper == (_greatest_double_at_most("0.679857769"), 0.5, 0.5, 0.5, _greatest_double_at_most("-0.45"))
    assert box.lower[0] == math.nextafter(0.6, 1.0)  # the double nearest 0.6 lies below it
    _, _, p2 = _load("acasxu/prop_2.vnnlib")
    assert p2.requirement == ir.Ordering(tuple((ir.Order(j, 0, True),) for j in range(1, 5)))


def test_mnist_prop_0_is_a_box_and_one_conjunction() -> None:
    _, net, prop = _load("mnistfc/prop_0_0.03.vnnlib")
    assert (net.n_inputs, net.n_outputs) == (784, 10)
    assert prop.requirement == ir.Ordering((tuple(ir.Order(8, j, True) for j in range(10) if j != 8),))
    (part,) = prop.region.parts
    assert len(part.box.lower) == 784
    assert part.halfspaces == ()
    assert part.predicted is None
    assert all(0.0 <= lo <= hi <= 1.0 for lo, hi in zip(part.box.lower, part.box.upper, strict=True))
    assert part.box.upper[783] == _greatest_double_at_most("0.029999999329447746")
    assert part.box.upper[783] < 0.029999999329447746  # the nearest double lies above the file's decimal


# ---------------------------------------------------------------- oracle 1: Z3 reads the file itself

_LITERAL = re.compile(r"(?<![\w.])[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.])")


_BOUND_ATOM = re.compile(r"\((<=|<|>=|>) ([XY]_\d+) ([^()\s]+)\)")


def _rational(q: Fraction) -> str:
    rational = f"(/ {abs(q.numerator)}.0 {q.denominator}.0)"
    return f"(- {rational})" if q < 0 else rational


def _exact_literals(text: str) -> str:
    """The file as SMT-LIB reads it (which has no `-0.5` or `1e-05`) with the numbers as VNN-LIB
    import means them: the bound of a one-variable comparison `(op V number)` exactly, every
    other number as its nearest double."""
    text = "\n".join(line.split(";")[0] for line in text.splitlines())
    exact: list[str] = []

    def bound(m: re.Match[str]) -> str:
        if not _LITERAL.fullmatch(m.group(3)):
            return m.group()
        exact.append(_rational(Fraction(m.group(3))))
        return f"({m.group(1)} {m.group(2)} EXACT{len(exact) - 1}E)"  # a name, which _LITERAL skips

    text = _LITERAL.sub(lambda m: _rational(Fraction(float(m.group()))), _BOUND_ATOM.sub(bound, text))
    return re.sub(r"EXACT(\d+)E", lambda m: exact[int(m.group(1))], text)


def _z3_linear(coeffs: tuple[tuple[int, float], ...], v: list[Any], bound: float, strict: bool) -> Any:
    lhs = z3.Sum([z3.RealVal(Fraction(c)) * v[i] for i, c in coeffs])
    return lhs < Fraction(bound) if strict else lhs <= Fraction(bound)


def _z3_region(region: ir.Region, x: list[Any]) -> Any:
    parts = []
    for part in region.parts:
        b, cs = part.box, []
        for i, xi in enumerate(x):
            if b.lower[i] != -np.inf:
                cs.append(xi > Fraction(b.lower[i]) if b.lower_strict[i] else xi >= Fraction(b.lower[i]))
            if b.upper[i] != np.inf:
                cs.append(xi < Fraction(b.upper[i]) if b.upper_strict[i] else xi <= Fraction(b.upper[i]))
        cs += [_z3_linear(h.coeffs, x, h.bound, h.strict) for h in part.halfspaces]
        parts.append(z3.And(cs))
    return z3.Or(parts)


def _z3_requirement(req: ir.Ordering, y: list[Any]) -> Any:
    def atom(a: ir.Atom) -> Any:
        if isinstance(a, ir.Order):
            return y[a.hi] > y[a.lo] if a.strict else y[a.hi] >= y[a.lo]
        return _z3_linear(a.coeffs, y, a.bound, a.strict)

    return z3.Or([z3.And([atom(a) for a in conj]) for conj in req.disjuncts])


def _double_side(op: str, q: Fraction) -> tuple[str, Fraction]:
    """`v op q` as `v op' d` with d a double, admitting the same doubles v (written here apart
    from spec.canon, as the oracle's own rounding)."""
    d = float(q)
    if Fraction(d) == q:  # a double already: the side stays as written
        return op, q
    if op in ("<=", "<"):
        return "<=", Fraction(d if Fraction(d) < q else math.nextafter(d, -math.inf))
    return ">=", Fraction(d if Fraction(d) > q else math.nextafter(d, math.inf))


def _doubles_only(text: str) -> str:
    """Every one-variable bound `(op V number)` replaced by the double bound that admits the same doubles."""

    def atom(m: re.Match[str]) -> str:
        if not _LITERAL.fullmatch(m.group(3)):
            return m.group()
        op, d = _double_side(m.group(1), Fraction(m.group(3)))
        return f"({op} {m.group(2)} {decimal.Decimal(float(d)):f})"  # the double's exact decimal

    return _BOUND_ATOM.sub(atom, text)


def _z3_agrees(text: str, net: ir.Network, prop: ir.Property) -> bool:
    """Does region and not requirement admit exactly the points of the file's asserts whose
    coordinates are doubles (the model's inputs and scores are float32)? Checked in two steps,
    over the reals: ours implies the file's asserts with their numbers read exactly, and ours
    is equivalent to the asserts with each one-variable bound moved to the double bound that
    admits the same doubles (`_doubles_only`)."""
    x = [z3.Real(f"X_{i}") for i in range(net.n_inputs)]
    y = [z3.Real(f"Y_{j}") for j in range(net.n_outputs)]
    theirs = z3.And(list(z3.parse_smt2_string(_exact_literals(text))))
    on_doubles = z3.And(list(z3.parse_smt2_string(_exact_literals(_doubles_only(text)))))
    ours = z3.And(_z3_region(prop.region, x), z3.Not(_z3_requirement(_ordering(prop.requirement), y)))
    inside, same = z3.Solver(), z3.Solver()
    inside.add(ours, z3.Not(theirs))
    same.add(on_doubles != ours)
    return bool(inside.check() == z3.unsat and same.check() == z3.unsat)


@pytest.mark.parametrize("rel", FILES)
def test_z3_reads_the_file_as_region_and_not_requirement(rel: str) -> None:
    path, net, prop = _load(rel)
    assert _z3_agrees(path.read_text(), net, prop)


def test_the_z3_oracle_sees_strictness_and_a_moved_bound() -> None:
    path, net, prop = _load("acasxu/prop_2.vnnlib")
    req = _ordering(prop.requirement)
    weak = ir.Ordering(tuple((ir.Order(a.hi, a.lo, False),) for (a,) in req.disjuncts if isinstance(a, ir.Order)))
    assert not _z3_agrees(path.read_text(), net, ir.Property(prop.name, prop.target, prop.region, weak))
    moved = path.read_text().replace("(<= X_0 0.679857769)", "(<= X_0 0.679857770)")
    assert not _z3_agrees(moved, net, prop)


# ---------------------------------------------------------------- oracle 2: evaluate the text directly


def _sexprs(text: str) -> list[Any]:
    stack: list[list[Any]] = [[]]
    for tok in re.findall(r"[()]|[^\s()]+", "\n".join(line.split(";")[0] for line in text.splitlines())):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    return stack[0]


_OPS = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal, ">": np.greater}


def _evaluate(e: Any, env: dict[str, np.ndarray]) -> Any:
    """The value of an assert's expression on every sample at once (floats, as written)."""
    if isinstance(e, str):
        return env[e] if e in env else float(e)
    op, args = e[0], [_evaluate(a, env) for a in e[1:]]
    if op in _OPS:
        return np.logical_and.reduce([_OPS[op](a, b) for a, b in itertools.pairwise(args)])
    if op == "and":
        return np.logical_and.reduce(args)
    if op == "or":
        return np.logical_or.reduce(args)
    if op == "+":
        return sum(args)
    if op == "-":
        return -args[0] if len(args) == 1 else args[0] - sum(args[1:])
    assert op == "*", op
    return np.prod(args, axis=0)


def _text_violated(text: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    env = {f"X_{i}": x[:, i] for i in range(x.shape[1])} | {f"Y_{j}": y[:, j] for j in range(y.shape[1])}
    out = np.ones(len(x), dtype=bool)
    for command in _sexprs(text):
        if command[0] == "assert":
            out &= np.broadcast_to(_evaluate(command[1], env), out.shape)
    return out


def _ir_in_region(region: ir.Region, x: np.ndarray) -> np.ndarray:
    inside = np.zeros(len(x), dtype=bool)
    for part in region.parts:
        b = part.box
        lo, hi = np.array(b.lower), np.array(b.upper)
        ok = np.where(b.lower_strict, x > lo, x >= lo) & np.where(b.upper_strict, x < hi, x <= hi)
        here = ok.all(axis=1)
        for h in part.halfspaces:
            value = sum(c * x[:, i] for i, c in h.coeffs)
            here &= value < h.bound if h.strict else value <= h.bound
        inside |= here
    return inside


def _ir_holds(req: ir.Ordering, y: np.ndarray) -> np.ndarray:
    def atom(a: ir.Atom) -> np.ndarray:
        if isinstance(a, ir.Order):
            return y[:, a.hi] > y[:, a.lo] if a.strict else y[:, a.hi] >= y[:, a.lo]
        value = sum(c * y[:, i] for i, c in a.coeffs)
        return np.asarray(value < a.bound if a.strict else value <= a.bound)

    out = np.zeros(len(y), dtype=bool)
    for conj in req.disjuncts:
        out |= np.logical_and.reduce([atom(a) for a in conj] or [np.ones(len(y), dtype=bool)])
    return out


def _samples(prop: ir.Property, net: ir.Network, text: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    """x: in a part's box, on its bounds, or pushed out of it; y: random with ties and file constants."""
    rng = np.random.default_rng(0)
    n, m = net.n_inputs, net.n_outputs
    boxes = [p.box for p in prop.region.parts]
    x = np.empty((count, n))
    for k in range(count):
        b = boxes[rng.integers(len(boxes))]
        lo, hi = np.array(b.lower), np.array(b.upper)
        x[k] = rng.uniform(lo, hi)
        snap = rng.random(n) < 0.2
        x[k, snap] = np.where(rng.random(n) < 0.5, lo, hi)[snap]
        if rng.random() < 0.5:  # push one coordinate out by up to a tenth of the width (and a bit)
            i = rng.integers(n)
            width = hi[i] - lo[i] + 1e-3
            x[k, i] = lo[i] - rng.uniform(0, width / 10) if rng.random() < 0.5 else hi[i] + rng.uniform(0, width / 10)
    y = rng.normal(0.0, 2.0, size=(count, m))
    constants = [float(t) for t in _LITERAL.findall(text)] or [0.0]
    for k in range(count):
        if rng.random() < 0.4:
            y[k, rng.integers(m)] = y[k, rng.integers(m)]
        if rng.random() < 0.2:
            y[k, rng.integers(m)] = constants[rng.integers(len(constants))]
    return x, y


@pytest.mark.parametrize(
    "rel",
    ["acasxu/prop_1.vnnlib", "acasxu/prop_2.vnnlib", "acasxu/prop_6.vnnlib", "acasxu/prop_8.vnnlib",
     "mnistfc/prop_0_0.03.vnnlib"],
)  # fmt: skip
def test_ir_and_text_agree_on_random_points(rel: str) -> None:
    path, net, prop = _load(rel)
    text = path.read_text()
    x, y = _samples(prop, net, text, 2000)
    theirs = _text_violated(text, x, y)
    ours = _ir_in_region(prop.region, x) & ~_ir_holds(_ordering(prop.requirement), y)
    assert np.array_equal(theirs, ours)
    assert 0 < theirs.sum() < len(theirs)
    assert _ir_in_region(prop.region, x).sum() < len(x)


# ---------------------------------------------------------------- hand-built properties

DECLARE = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"


def _net(n: int, m: int, domain: ir.Box | None = None) -> ir.Network:
    return ir.Network(
        "toy", (n,), (m,), tuple(f"c{j}" for j in range(m)), tuple(f"i{i}" for i in range(n)),
        domain or ir.Box.unbounded(n),
    )  # fmt: skip


def _atom(coeffs: dict[int, float], bound: float, strict: bool) -> ir.Atom:
    a = canon.output_atom(coeffs, bound, strict)
    assert not isinstance(a, bool)
    return a


def _constraint(coeffs: dict[int, float], bound: float, strict: bool, n: int) -> tuple[ir.RegionPart, ...]:
    part = canon.input_constraint(coeffs, bound, strict, n)
    assert isinstance(part, ir.RegionPart)
    return (part,)


def _part(*constraints: tuple[dict[int, float], float, bool], n: int) -> tuple[ir.RegionPart, ...]:
    out: tuple[ir.RegionPart, ...] = (ir.RegionPart(ir.Box.unbounded(n)),)
    for coeffs, bound, strict in constraints:
        out = canon.region_and(out, _constraint(coeffs, bound, strict, n))
    return out


def _round_trip(prop: ir.Property, net: ir.Network) -> ir.Property:
    text = dump_vnnlib(prop, net)
    return load_vnnlib(text, f"{prop.name}.vnnlib", network=net).properties[0]


def test_hand_built_property_round_trips() -> None:
    net = _net(3, 4, ir.Box((-1.0,) * 3, (1.0,) * 3, (False,) * 3, (False,) * 3))
    first = _part(({0: 1.0}, 0.25, True), ({0: -1.0}, 0.5, False), ({1: 2.0, 2: -3.0}, 0.1, True), n=3)
    second = _part(({1: -1.0}, -0.125, True), ({0: 1.0, 1: 1.0}, 1.5, False), ({0: 1.0, 2: 0.5}, -0.3, True), n=3)
    region = canon.region(canon.region_or(first, second), net.domain)
    atoms = [
        _atom({0: 1.0, 1: -1.0}, 0.0, True),  # y1 > y0
        _atom({2: -1.0, 3: 1.0}, 0.0, False),  # y2 >= y3
        _atom({0: 2.0, 1: -1.0, 3: 0.5}, 3.0, True),
        _atom({1: 1.5, 2: 2.5}, -1e-05, False),
        _atom({3: -4.0}, 2.0, True),  # y3 > -0.5
        _atom({2: 1.0}, 0.1, False),
    ]
    conjunctions = ((0, 2), (1,), (3, 4, 5), (4, 0))
    req = canon.ordering(tuple(frozenset(atoms[i] for i in c) for c in conjunctions))
    prop = ir.Property("hand", "toy", region, req)
    ir.validate(ir.Spec(networks=(net,), properties=(prop,)))
    assert [len(p.halfspaces) for p in region.parts] == [1, 2]
    assert _round_trip(prop, net) == prop
    text = dump_vnnlib(prop, net)
    assert _z3_agrees(text, net, prop)
    assert "(> X_0 -0.5)" not in text
    assert "(>= X_0 -0.5)" in text
    assert "(< X_0 0.25)" in text
    assert "(< (+ (* 2.0 X_1) (* -3.0 X_2)) 0.1)" in text
    assert "(<= (+ X_0 X_1) 1.5)" in text
    assert "(assert (< Y_2 Y_3))" in text
    assert "(>= (+ (* 2.0 Y_0) (* -1.0 Y_1) (* 0.5 Y_3)) 3.0)" in text
    assert "(and (<= Y_3 -0.5))" in text
    assert "(and (> Y_2 0.1000000000000000055511151231257827021181583404541015625))" in text  # strict at a double: exact


@pytest.mark.parametrize("strict", [False, True])
def test_bounds_at_the_largest_double_round_trip(strict: bool) -> None:
    """A side at +-DBL_MAX (found by tests/test_hostile.py: export crashed on the double beyond it) is written as
    its exact decimal and read back as itself; `x < DBL_MAX` keeps DBL_MAX itself out."""
    big = float(np.finfo(np.float64).max)
    box = ir.Box((-1.0, -big), (1.0, big), (False, strict), (False, strict))
    net = _net(2, 2, box)
    up = canon.ordering((frozenset({_atom({0: -1.0, 1: 1.0}, 0.0, True)}),))
    prop = ir.Property("edge", "toy", ir.Region((ir.RegionPart(box),)), up)
    assert _round_trip(prop, net) == prop
    assert canon.double_bound(Fraction(big), True, True) == (big, True)
    assert canon.double_bound(Fraction(big), True, False) == (big, False)
    assert canon.double_bound(Fraction(big) + 1, True, False) == (math.inf, False)


def test_true_and_false_requirements_round_trip() -> None:
    net = _net(2, 2)
    region = canon.region(_part(({0: 1.0}, 1.0, False), n=2), net.domain)
    always = ir.Property("always", "toy", region, ir.Ordering(((),)))
    never = ir.Property("never", "toy", region, ir.Ordering(()))
    assert "(assert false)" in dump_vnnlib(always, net)
    assert _round_trip(always, net) == always
    assert not [line for line in dump_vnnlib(never, net).splitlines() if "assert" in line and "Y_" in line]
    assert _round_trip(never, net) == never


def test_an_unbounded_part_among_several_is_written_as_true() -> None:
    net = _net(2, 2)
    region = canon.region(canon.region_or(_part(({0: 1.0}, 1.0, False), n=2), _part(n=2)), net.domain)
    prop = ir.Property("p", "toy", region, ir.Ordering(((_atom({0: 1.0}, 2.0, False),),)))
    assert "    true\n" in dump_vnnlib(prop, net)
    assert _round_trip(prop, net) == prop


_COEFF = st.sampled_from([-2.5, -1.0, -0.5, 0.25, 1.0, 3.0])
_BOUND = st.sampled_from([-1.5, -1e-05, 0.0, 0.1, 2.0, 1e3])


@st.composite
def _atoms(draw: st.DrawFn, m: int = 3) -> ir.Atom:
    if draw(st.booleans()):
        hi, lo = draw(st.permutations(range(m)))[:2]
        return ir.Order(hi, lo, draw(st.booleans()))
    indices = draw(st.sets(st.integers(0, m - 1), min_size=1, max_size=m))
    return _atom({i: draw(_COEFF) for i in indices}, draw(_BOUND), draw(st.booleans()))


@st.composite
def _parts(draw: st.DrawFn, n: int = 3) -> tuple[ir.RegionPart, ...]:
    constraints = draw(
        st.lists(
            st.tuples(st.dictionaries(st.integers(0, n - 1), _COEFF, min_size=1, max_size=n), _BOUND, st.booleans()),
            max_size=4,
        )
    )
    return _part(*constraints, n=n)


@given(
    st.lists(_parts(), min_size=1, max_size=3),
    st.lists(st.lists(_atoms(), max_size=3), max_size=3),
)
def test_generated_properties_round_trip(parts: list[tuple[ir.RegionPart, ...]], dnf: list[list[ir.Atom]]) -> None:
    net = _net(3, 3)
    joined: tuple[ir.RegionPart, ...] = ()
    for p in parts:
        joined = canon.region_or(joined, p)
    region = canon.region(joined, net.domain)
    if not region.parts:
        return
    prop = ir.Property("gen", "toy", region, canon.ordering(tuple(frozenset(c) for c in dnf)))
    assert _round_trip(prop, net) == prop
    assert _z3_agrees(dump_vnnlib(prop, net), net, prop)


# ---------------------------------------------------------------- reading


def _requirement(asserts: str) -> ir.Requirement:
    return load_vnnlib(DECLARE + asserts).properties[0].requirement


def test_strictness_is_negated_exactly() -> None:
    assert _requirement("(assert (<= Y_1 Y_0))") == ir.Ordering(((ir.Order(1, 0, True),),))
    assert _requirement("(assert (< Y_1 Y_0))") == ir.Ordering(((ir.Order(1, 0, False),),))
    assert _requirement("(assert (>= Y_0 3.75))") == ir.Ordering(((ir.Linear(((0, 1.0),), 3.75, True),),))
    assert _requirement("(assert (> Y_0 3.75))") == ir.Ordering(((ir.Linear(((0, 1.0),), 3.75, False),),))
    # 3.99 is no double, so y > 3.99 and y >= 3.99 hold for the same doubles: y >= the least double above
    # 3.99 (which is the double nearest it, 3.99 + 2.1e-16)
    above = _least_double_at_least("3.99")
    assert above > 3.99 - 1e-15 and Fraction(above) > Fraction("3.99")
    for op in (">=", ">"):
        assert _requirement(f"(assert ({op} Y_0 3.99))") == ir.Ordering(((ir.Linear(((0, 1.0),), above, True),),))
    assert _requirement("(assert (<= Y_0 3.99))") == ir.Ordering(
        ((ir.Linear(((0, -1.0),), -math.nextafter(above, 0.0), True),),)
    )  # not(y <= the greatest double below 3.99) is -y < -that double


def test_terms_nesting_and_constants() -> None:
    a = ir.Linear(((0, 2.0), (1, -1.0)), 1.0, True)  # not(2 y0 - y1 >= 1)
    assert _requirement("(assert (>= (+ (* 2 Y_0) (- Y_1)) 1))") == ir.Ordering(((a,),))
    assert _requirement("(assert (>= (- (* Y_0 2.0) Y_1 -0.5) 1.5))") == ir.Ordering(((a,),))
    half = ir.Linear(((0, 1.0),), 1.0, True)  # not(-y0 / 2 <= -1 / 2)
    assert _requirement("(assert (<= (* 0.5 (- Y_0)) (/ -1 2)))") == ir.Ordering(((half,),))
    nested = "(assert (and (or (<= Y_1 Y_0) (and (not (> Y_0 1)) (<= 1e-05 Y_1))) true))"
    first, second = ir.Linear(((0, -1.0),), -1.0, True), ir.Linear(((1, 1.0),), 1e-05, True)  # y0 > 1, y1 < 1e-05
    expected = canon.ordering((frozenset((ir.Order(1, 0, True), first)), frozenset((ir.Order(1, 0, True), second))))
    assert _requirement(nested) == expected
    assert _requirement("(assert (<= 1 0))") == ir.Ordering(((),))  # never violated: always holds
    assert _requirement("(assert (<= 0 1))") == ir.Ordering(())  # every output violates
    assert _requirement("") == ir.Ordering(())


def test_top_level_and_splits_inputs_from_outputs() -> None:
    text = DECLARE + "(assert (and (< X_0 1) (>= X_1 -0.5) (<= Y_0 Y_1)))\n(assert (<= (+ X_0 X_1) 1.5))"
    prop = load_vnnlib(text, "mix.vnnlib").properties[0]
    (part,) = prop.region.parts
    assert part.box == ir.Box((-np.inf, -0.5), (1.0, np.inf), (False, False), (True, False))
    assert part.halfspaces == (ir.HalfSpace(((0, 1.0), (1, 1.0)), 1.5, False),)
    assert prop.requirement == ir.Ordering(((ir.Order(0, 1, True),),))
    assert prop.name == "mix"


def test_a_given_network_names_the_target_and_clips_the_region() -> None:
    net = _net(2, 2, ir.Box((0.0, 0.0), (1.0, 1.0), (False, False), (False, False)))
    loaded = load_vnnlib(DECLARE + "(assert (<= X_0 2.0))\n(assert (>= X_1 0.5))", "dir/p.vnnlib", network=net)
    assert loaded.networks == (net,)
    (prop,) = loaded.properties
    assert prop.name == "p"
    assert prop.target == "toy"
    assert prop.region.parts[0].box == ir.Box((0.0, 0.5), (1.0, 1.0), (False, False), (False, False))
    assert load_vnnlib(DECLARE).properties[0].name == "vnnlib"


# ---------------------------------------------------------------- errors


def _error(text: str, network: ir.Network | None = None) -> str:
    with pytest.raises(VnnlibError) as info:
        load_vnnlib(text, "bad.vnnlib", network=network)
    return str(info.value)


def test_unbalanced_parentheses() -> None:
    assert _error(DECLARE + "(assert (<= X_0 1.0)\n") == (
        "bad.vnnlib:5:1: unbalanced '(': it is never closed\n(assert (<= X_0 1.0)\n^"
    )
    assert _error(DECLARE + "(assert (<= X_0 1.0)))\n") == (
        "bad.vnnlib:5:22: unbalanced ')': no '(' to close\n(assert (<= X_0 1.0)))\n                     ^"
    )


def test_undeclared_and_missing_variables() -> None:
    assert _error(DECLARE + "(assert (<= X_2 1.0))") == (
        "bad.vnnlib:5:13: undeclared variable 'X_2'\n(assert (<= X_2 1.0))\n            ^~~"
    )
    assert _error("(declare-const X_0 Real)\n(declare-const X_2 Real)\n(declare-const Y_0 Real)\n") == (
        "bad.vnnlib:2:16: X_2 is declared but X_1 is not\n(declare-const X_2 Real)\n               ^~~"
    )


def test_mixed_inputs_and_outputs_in_one_disjunction() -> None:
    assert _error(DECLARE + "(assert (or (<= X_0 1.0) (<= Y_0 Y_1)))") == (
        "bad.vnnlib:5:9: cannot mix inputs (X_i) and outputs (Y_j) in one disjunction "
        "(region and requirement are separate)\n"
        "(assert (or (<= X_0 1.0) (<= Y_0 Y_1)))\n"
        "        ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"
    )


def test_unknown_operator_bad_token_and_non_linear_term() -> None:
    assert _error(DECLARE + "; a comment\n(assert (foo X_0 1.0)) ; trailing\n") == (
        "bad.vnnlib:6:10: unknown operator 'foo'\n(assert (foo X_0 1.0)) ; trailing\n         ^~~"
    )
    assert _error(DECLARE + "(assert (<= X_0 1.0.0))") == (
        "bad.vnnlib:5:17: bad token '1.0.0'\n(assert (<= X_0 1.0.0))\n                ^~~~~"
    )
    assert _error(DECLARE + "(assert (<= (* X_0 X_1) 1))") == (
        "bad.vnnlib:5:20: not linear: multiply by constants and divide by nonzero constants only\n"
        "(assert (<= (* X_0 X_1) 1))\n                   ^~~"
    )


def test_input_size_mismatch_with_a_given_network() -> None:
    assert _error(DECLARE, _net(3, 2)) == (
        "bad.vnnlib: declares 2 inputs and 2 outputs, but network 'toy' has 3 inputs and 2 outputs"
    )


def test_an_empty_region_is_an_error() -> None:
    assert _error(DECLARE + "(assert (<= X_0 1))\n(assert (>= X_0 2))") == (
        "bad.vnnlib: the input region is empty, so the file can never be violated"
    )


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"(declare-const X_0 Real)\n(as\xffsert)\n", 2),
        (b"(declare-const X_0 Real)\r; \x0c note\r(as\xffsert)\r", 3),  # lone carriage returns end lines
    ],
    ids=["LF", "CR"],
)
def test_bad_utf8_names_the_line_and_column(tmp_path: Path, data: bytes, line: int) -> None:
    path = tmp_path / "bad.vnnlib"
    path.write_bytes(data)
    with pytest.raises(VnnlibError) as info:
        read_vnnlib(path)
    assert str(info.value) == f"{path}:{line}:4: invalid UTF-8 byte 0xff\n(as\ufffdsert)\n   ^"


def test_export_errors() -> None:
    net = _net(2, 2)
    region = canon.region(_part(n=2), net.domain)
    robust = ir.Property("r", "toy", region, ir.Robust(ir.Local(), 0.1, ir.Norm.LINF, points=((0.0, 0.0),)))
    with pytest.raises(VnnlibError) as info:
        dump_vnnlib(robust, net)
    assert str(info.value) == (
        "property r: VNN-LIB has no robustness form; state the input box and the output condition instead"
    )
    predicted = ir.Property("q", "toy", ir.Region((ir.RegionPart(ir.Box.unbounded(2), (), (1,)),)), ir.Ordering(()))
    with pytest.raises(VnnlibError) as info:
        dump_vnnlib(predicted, net)
    assert str(info.value) == "property q: VNN-LIB cannot state a condition on the network's prediction"
    with pytest.raises(VnnlibError, match=r"^property e: the region has no parts \(it is empty\)$"):
        dump_vnnlib(ir.Property("e", "toy", ir.Region(()), ir.Ordering(())), net)


# ---------------------------------------------------------------- hostile input: comments, nesting, long sums

# Line breaks of str.splitlines that are not line breaks in SMT-LIB: a comment runs past them.
NOT_LINE_BREAKS = ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
BOX = "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 1))\n"


@pytest.mark.parametrize("ch", NOT_LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in NOT_LINE_BREAKS])
def test_a_comment_runs_past_characters_that_are_not_line_breaks(ch: str) -> None:
    # The hidden assert would make the violation Y_0 <= -1e6 as well: a sat instance turns unsat.
    honest = DECLARE + BOX + "(assert (>= Y_0 Y_1))\n"
    hidden = DECLARE + BOX + f"; harmless note{ch}(assert (<= Y_0 -1000000))\n(assert (>= Y_0 Y_1))\n"
    assert load_vnnlib(hidden) == load_vnnlib(honest)
    # and the line numbers after it count the real line breaks only
    message = _error(hidden + f"; again{ch}(assert (<= Y_0 1))\n(assert (<= Y_0 Y_9))")
    assert message.startswith("bad.vnnlib:12:17: undeclared variable 'Y_9'\n(assert (<= Y_0 Y_9))\n"), message


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_a_comment_ends_at_a_line_break_and_lines_are_counted_by_them(eol: str) -> None:
    text = eol.join([*DECLARE.splitlines(), "; note", "(assert (<= X_0 1))", "; note\x0c more", "(assert (<= Y_0 Y_7))"])
    assert _error(text) == "bad.vnnlib:8:17: undeclared variable 'Y_7'\n(assert (<= Y_0 Y_7))\n                ^~~"


def _nested(head: str, depth: int, inner: str) -> str:
    return f"({head} " * depth + inner + ")" * depth


@pytest.mark.parametrize(
    "assertion",
    [
        pytest.param(_nested("and", 500, "(<= Y_0 Y_1)"), id="and-500"),
        pytest.param(_nested("or", 500, "(<= Y_0 Y_1)"), id="or-500"),
        pytest.param(_nested("not", 1000, "(<= Y_0 Y_1)"), id="not-1000"),
        pytest.param(f"(<= Y_0 {_nested('-', 1000, 'Y_1')})", id="minus-1000"),
        pytest.param(_nested("or", 500, "(<= X_0 1)"), id="or-on-inputs-500"),
        pytest.param(_nested("not", 1000, "(<= X_0 1)"), id="not-on-inputs-1000"),
        pytest.param(f"(<= X_0 {_nested('+', 1000, '1')})", id="plus-on-inputs-1000"),
        pytest.param(_nested("and", 100_000, "true"), id="and-100000"),
    ],
)
def test_deep_nesting_is_a_located_error(assertion: str) -> None:
    message = _error(DECLARE + BOX + f"(assert {assertion})")
    # the (MAX_DEPTH + 1)-th open parenthesis of line 9, counting the assert's own
    column = assertion.index("(", len(_nested_prefix(assertion, MAX_DEPTH - 1))) + len("(assert ") + 1
    assert message.startswith(f"bad.vnnlib:9:{column}: this is nested too deeply: more than {MAX_DEPTH} levels"), message


def _nested_prefix(text: str, opens: int) -> str:
    """The prefix of `text` holding its first `opens` open parentheses."""
    count = 0
    for i, ch in enumerate(text):
        count += ch == "("
        if count == opens:
            return text[: i + 1]
    raise AssertionError("not that deep")


@pytest.mark.parametrize("head", ["and", "or", "not"])
def test_nesting_up_to_the_limit_loads(head: str) -> None:
    depth = MAX_DEPTH - 2  # the assert and the comparison are two levels
    out = load_vnnlib(DECLARE + BOX + f"(assert {_nested(head, depth, '(<= Y_0 Y_1)')})")
    negated = head == "not" and depth % 2 == 1
    expected = ir.Order(1, 0, False) if negated else ir.Order(0, 1, True)  # the negation of the violation
    assert out.properties[0].requirement == ir.Ordering(((expected,),))
    region = load_vnnlib(DECLARE + f"(assert {_nested(head, depth, '(<= X_0 0.5)')})\n" + BOX)
    assert region.properties[0].region.parts[0].box.upper[0] == (1.0 if negated else 0.5)


@pytest.mark.parametrize("n", [250, 784])
def test_a_sum_of_many_inputs_is_a_half_space(n: int) -> None:
    declare = "".join(f"(declare-const X_{i} Real)\n" for i in range(n)) + "(declare-const Y_0 Real)\n"
    box = "".join(f"(assert (>= X_{i} 0))\n(assert (<= X_{i} 1))\n" for i in range(n))
    terms = " ".join(f"X_{i}" for i in range(n))
    out = load_vnnlib(declare + box + f"(assert (<= (+ {terms}) 100))\n(assert (>= Y_0 0))\n")
    (part,) = out.properties[0].region.parts
    assert part.halfspaces == (ir.HalfSpace(tuple((i, 1.0) for i in range(n)), 100.0, False),)


def test_a_sum_of_784_outputs_is_one_atom() -> None:
    n = 784
    declare = "(declare-const X_0 Real)\n" + "".join(f"(declare-const Y_{j} Real)\n" for j in range(n))
    terms = " ".join(f"Y_{j}" if j % 2 else f"(- Y_{j})" for j in range(n))
    out = load_vnnlib(declare + "(assert (<= X_0 1))\n" + f"(assert (<= (+ {terms}) 0.5))\n")
    (conj,) = _ordering(out.properties[0].requirement).disjuncts
    assert conj == (ir.Linear(tuple((j, 1.0 if j % 2 == 0 else -1.0) for j in range(n)), -0.5, True),)


@pytest.mark.parametrize(
    ("factor", "op", "count"),
    [pytest.param("1.0000001", "*", 1000, id="product"), pytest.param("3", "/", 20_000, id="quotient")],
)
def test_an_exact_value_that_outgrows_max_bits_is_a_located_error(factor: str, op: str, count: int) -> None:
    # each factor used to make every later step dearer: 40,000 of them took minutes
    line = f"(assert (<= ({op} X_0 {' '.join([factor] * count)}) 1))"
    message = _error(DECLARE + line)
    found = re.match(r"bad\.vnnlib:5:(\d+): the exact value of this term needs more than 20000 bits", message)
    assert found, message[:200]
    column = int(found.group(1))
    assert line[column - 1 :].startswith(factor + " ")  # the factor that made it too big
