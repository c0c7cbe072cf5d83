"""The hierarchy stress case: 100 labels in 20 superclasses of 5, 20 properties of 475 edges each.

"If the top label is in superclass S, the top 5 are exactly S", on random scores with ties,
checked row by row with the exact semantics: the result is what the lexicographic measure
prescribes (S in its original order, then the others in theirs), with the minimal shift.
"""

from __future__ import annotations

import importlib.util
import sys

import torch

from checkers import semantics
from checkers.guard import Reason
from conftest import ROOT
from guard_oracle import expected_values
from spec import ir

_SPEC = importlib.util.spec_from_file_location("bench_guard", ROOT / "bench" / "guard.py")
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("bench_guard", bench)
_SPEC.loader.exec_module(bench)


def test_hierarchy_layer_has_20_properties_of_475_edges() -> None:
    layer = bench.hierarchy_layer()
    assert len(layer.names) == 20 and not layer.use_table
    assert [int(layer.edges[d].sum()) for d in range(20)] == [475] * 20
    assert layer.slots == 1 and layer.count == 1  # the prediction conditions are disjoint


def test_hierarchy_guard_on_random_scores_with_ties() -> None:
    layer = bench.hierarchy_layer()
    y = bench.hierarchy_scores(300, 100, seed=3)
    y[:5] = torch.arange(100, 0, -1, dtype=torch.float32)  # already safe: c0..c4 on top, superclass 0
    y[5, :10] = 7.0  # a tie at the top across two superclasses
    x = torch.zeros(len(y), 1)
    result = layer.explain(x, y)
    assert (result.reason[:5] == Reason.UNCHANGED).all() and torch.equal(result.scores[:5], y[:5])
    assert (result.reason[5:] == Reason.RERANKED).all()
    top = semantics.decision(y, ir.Decide.ARGMAX)
    assert torch.equal(semantics.decision(result.scores, ir.Decide.ARGMAX), top)  # the top label always stays
    for b in range(len(y)):
        group = int(top[b]) // 5
        prop = layer.properties[group]
        rows = semantics.compile_ordering(prop.requirement, 100)  # type: ignore[arg-type]
        assert bool(semantics.holds(rows, result.scores[b : b + 1])[0])
        members = [i for i in range(100) if i // 5 == group]
        by_rank = sorted(range(100), key=lambda i: (-float(y[b, i]), i))
        expected = [i for i in by_rank if i in members] + [i for i in by_rank if i not in members]
        got = sorted(range(100), key=lambda i: (-float(result.scores[b, i]), i))
        assert got == expected
        if b >= 5:
            assert len(set(result.scores[b].tolist())) == 100  # ties broken
        assert torch.equal(result.scores[b], expected_values(y[b], result.scores[b], ir.Decide.ARGMAX))
