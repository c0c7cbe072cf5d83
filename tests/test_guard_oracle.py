"""The guard against a brute-force oracle over every ranking of up to 6 labels, and against Z3.

Each example draws properties (boxes, half-spaces, their disjunctions, prediction
conditions; requirements mixing strict and non-strict comparisons), an argmax or argmin
network, inputs on a small grid (so inputs land exactly on region boundaries) and scores
with many ties, then checks every point of issue 4 on every input.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from checkers import semantics
from checkers.guard import GuardOptions, Reason, compile_layer
from guard_oracle import Oracle, decision_ranks, expected_values, z3_satisfiable
from spec import ir

GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)
N_INPUTS = 2


def network(m: int, decide: ir.Decide) -> ir.Network:
    return ir.Network("net", (N_INPUTS,), (m,), tuple(f"l{i}" for i in range(m)), ("a", "b"),
                      ir.Box.unbounded(N_INPUTS), decide)


@st.composite
def boxes(draw: st.DrawFn) -> ir.Box:
    lower, upper, ls, us = [], [], [], []
    for _ in range(N_INPUTS):
        lo, hi = sorted(draw(st.lists(st.sampled_from(GRID), min_size=2, max_size=2)))
        bounded_lo, bounded_hi = draw(st.booleans()), draw(st.booleans())
        lower.append(lo if bounded_lo else -math.inf)
        upper.append(hi if bounded_hi else math.inf)
        ls.append(bounded_lo and lo < hi and draw(st.booleans()))
        us.append(bounded_hi and lo < hi and draw(st.booleans()))
    return ir.Box(tuple(lower), tuple(upper), tuple(ls), tuple(us))


@st.composite
def parts(draw: st.DrawFn, m: int) -> ir.RegionPart:
    halfspaces: tuple[ir.HalfSpace, ...] = ()
    if draw(st.booleans()):
        coeffs = tuple((i, draw(st.sampled_from((-1.0, 0.5, 1.0, 2.0, 0.1)))) for i in range(N_INPUTS))
        halfspaces = (ir.HalfSpace(coeffs, draw(st.sampled_from(GRID)), draw(st.booleans())),)
    predicted = None
    if draw(st.booleans()):
        predicted = tuple(sorted(draw(st.sets(st.integers(0, m - 1), min_size=1, max_size=m))))
    return ir.RegionPart(draw(boxes()), halfspaces, predicted)


@st.composite
def requirements(draw: st.DrawFn, m: int) -> ir.Ordering:
    atom = st.builds(lambda pair, strict: ir.Order(pair[0], pair[1], strict),
                     st.lists(st.integers(0, m - 1), min_size=2, max_size=2, unique=True),
                     st.booleans().map(lambda b: b or False) | st.just(True))
    conj = st.lists(atom, min_size=1, max_size=3, unique=True).map(tuple)
    disjuncts = draw(st.lists(conj, min_size=0, max_size=3, unique=True))
    if not disjuncts and draw(st.integers(0, 3)):  # the false requirement, now and then
        disjuncts = [draw(conj)]
    return ir.Ordering(tuple(disjuncts))


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[ir.Property], ir.Network, torch.Tensor, torch.Tensor]:
    m = draw(st.integers(2, 6))
    decide = draw(st.sampled_from(ir.Decide))
    net = network(m, decide)
    props = []
    for k in range(draw(st.integers(1, 4))):
        region = ir.Region(tuple(draw(st.lists(parts(m), min_size=1, max_size=2))))
        props.append(ir.Property(f"p{k}", "net", region, draw(requirements(m))))
    ir.validate(ir.Spec(networks=(net,), properties=tuple(props)))
    batch = draw(st.integers(1, 12))
    x = torch.tensor(draw(st.lists(st.lists(st.sampled_from(GRID), min_size=2, max_size=2), min_size=batch,
                                   max_size=batch)), dtype=torch.float32)
    value = st.sampled_from((-1.0, 0.0, 0.5, 1.0, 2.0)) | st.floats(-4, 4, width=32)
    y = torch.tensor(draw(st.lists(st.lists(value, min_size=m, max_size=m), min_size=batch, max_size=batch)),
                     dtype=torch.float32)
    return props, net, x, y


def exact_active(props: list[ir.Property], net: ir.Network, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    predicted = semantics.decision(y, net.decide)
    columns = []
    for prop in props:
        inside = torch.zeros(x.shape[0], dtype=torch.bool)
        for part in prop.region.parts:
            inside |= semantics.in_part(part, x, predicted)
        columns.append(inside)
    return torch.stack(columns, dim=1)


def check_one(props: list[ir.Property], net: ir.Network, y: torch.Tensor, out: torch.Tensor, reason: int,
              active: torch.Tensor) -> None:
    """Every guarantee of the guard on one input."""
    reqs = [p.requirement for p, a in zip(props, active.tolist(), strict=True) if a]
    assert all(isinstance(r, ir.Ordering) for r in reqs)
    rows = [semantics.compile_ordering(r, net.n_outputs) for r in reqs]  # type: ignore[arg-type]
    holds_before = all(bool(semantics.holds(r, y[None])[0]) for r in rows)
    oracle = Oracle(reqs, net.n_outputs, net.decide)  # type: ignore[arg-type]
    assert oracle.satisfiable == z3_satisfiable(reqs, net.n_outputs)  # type: ignore[arg-type]
    if holds_before:  # unchanged, bit for bit
        assert reason == Reason.UNCHANGED and torch.equal(out, y)
        return
    if not oracle.satisfiable:
        assert reason == Reason.UNSATISFIABLE
        return
    finite = bool(torch.isfinite(y).all())
    assert reason == Reason.RERANKED, (reason, y, reqs)
    assert finite
    assert all(bool(semantics.holds(r, out[None])[0]) for r in rows)  # safe, by the exact semantics
    assert torch.equal(out, expected_values(y, out, net.decide))  # a permutation plus the minimal shift
    top = int(semantics.decision(y[None], net.decide)[0])
    if oracle.can_keep_first(top):
        assert int(semantics.decision(out[None], net.decide)[0]) == top
    if len(oracle.strict):  # a strict ranking exists: the output is the lexicographically smallest one
        got = [int(i) for i in decision_ranks(out, net.decide).argsort()]
        assert len(set(out.tolist())) == net.n_outputs
        assert got == oracle.best_strict(decision_ranks(y, net.decide))


@pytest.mark.parametrize("engine", ["table", "greedy"])
@given(case=cases())
def test_guard_matches_the_oracle(engine: str,
                                  case: tuple[list[ir.Property], ir.Network, torch.Tensor, torch.Tensor]) -> None:
    props, net, x, y = case
    layer = compile_layer(props, net, GuardOptions(max_combinations=4096, engine=engine))
    assert layer.use_table == (engine == "table")
    result = layer.explain(x, y)
    guarded = [p.name for p in props if not any(len(c) == 0 for c in p.requirement.disjuncts)]  # type: ignore[union-attr]
    assert list(layer.names) == guarded
    kept = [p for p in props if p.name in guarded]
    active = exact_active(kept, net, x, y) if kept else torch.zeros(x.shape[0], 0, dtype=torch.bool)
    assert torch.equal(result.active, active)
    assert torch.equal(result.abstained, result.reason >= Reason.UNSATISFIABLE)
    bottom_first = result.bottom == (math.inf if net.decide is ir.Decide.ARGMAX else -math.inf)
    assert torch.equal(bottom_first, result.abstained)
    for b in range(x.shape[0]):
        check_one(kept, net, y[b], result.scores[b], int(result.reason[b]), active[b])
    np.testing.assert_array_equal(result.original.numpy(), y.numpy())
