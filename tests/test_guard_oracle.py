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
F32 = torch.finfo(torch.float32)
SUBNORMAL = F32.smallest_normal * F32.eps  # the smallest positive float32, 2**-149
# the ends of the float32 range: the largest floats, their neighbours, the smallest subnormals
EXTREMES = (F32.max, -F32.max, float(np.nextafter(np.float32(F32.max), np.float32(0))),
            float(np.nextafter(np.float32(-F32.max), np.float32(0))), SUBNORMAL, -SUBNORMAL, 2 * SUBNORMAL, -0.0)


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
    value = st.sampled_from((-1.0, 0.0, 0.5, 1.0, 2.0)) | st.floats(-4, 4, width=32) | st.sampled_from(EXTREMES)
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
    assert bool(torch.isfinite(out).all()), (y, out)  # finite scores stay finite, at the ends of the range too
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


def _extreme_rows(dtype: torch.dtype) -> list[list[float]]:
    info = torch.finfo(dtype)
    tiny = info.smallest_normal * info.eps
    big, low = info.max, -info.max
    return [[big] * 5, [low] * 5, [big, big, 1.0, low, low], [low, low, low, low, big], [big, low] * 2 + [big],
            [tiny] * 5, [-tiny] * 5, [tiny, -tiny, 0.0, -0.0, tiny], [big, tiny, low, -tiny, 0.0],
            [low, low, tiny, tiny, 0.0]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("decide", list(ir.Decide))
@pytest.mark.parametrize("engine", ["table", "greedy"])
def test_extreme_scores_rerank_to_finite_strict_scores(engine: str, decide: ir.Decide, dtype: torch.dtype) -> None:
    """Scores at FLT_MAX / -FLT_MAX (and DBL_MAX), subnormals and mixes: a strict ranking exists, so the
    output is strict and finite (before, [FLT_MAX] * 5 under argmin became ties at +inf)."""
    net = network(5, decide)
    everywhere = ir.Region((ir.RegionPart(ir.Box.unbounded(N_INPUTS)),))
    reqs = [ir.Ordering(((ir.Order(1, 0, True),),)), ir.Ordering(((ir.Order(4, 2, False), ir.Order(3, 4, True)),))]
    props = [ir.Property(f"p{k}", "net", everywhere, r) for k, r in enumerate(reqs)]
    layer = compile_layer(props, net, GuardOptions(engine=engine))
    y = torch.tensor(_extreme_rows(dtype), dtype=dtype)
    x = torch.zeros(y.shape[0], N_INPUTS, dtype=dtype)
    result = layer.explain(x, y)
    assert result.scores.dtype == dtype and bool(torch.isfinite(result.scores).all()), result.scores
    for b in range(y.shape[0]):
        check_one(props, net, y[b], result.scores[b], int(result.reason[b]), result.active[b])
