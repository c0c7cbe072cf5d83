"""The ACAS Xu data check of issue 4 (bench/guard.py has the full run): 0 unsafe, 0 needless top-1 changes.

Counts come from the exact semantics and a brute-force search over the 120 rankings, not
from the guard. The fast test covers three networks (every assigned property appears); the
slow one is the full run: 18 networks, 5,000 uniform points each plus 2,000 per property.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

import spec
from conftest import EXAMPLES, ROOT, shared_data

_SPEC = importlib.util.spec_from_file_location("bench_guard", ROOT / "bench" / "guard.py")
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_guard"] = bench
_SPEC.loader.exec_module(bench)


def run(networks: list[tuple[int, int]], uniform: int, per_property: int) -> dict[tuple[int, int], object]:
    root = shared_data("acasxu")
    loaded = spec.load_file(EXAMPLES / "acasxu" / "acasxu.prop")
    out = {}
    for first, second in networks:
        guarded, props = bench.acas_guard(loaded, first, second, root)
        x = bench.acas_points(loaded, props, uniform, per_property, seed=10 * first + second)
        out[(first, second)] = bench.check(guarded, props, loaded.network("acas"), x)
    return out


def test_assignment_is_the_issue_s() -> None:
    assert bench.assignment(1, 1) == (3, 4, 5, 6)
    assert bench.assignment(1, 9) == (3, 4, 7)
    assert bench.assignment(2, 9) == (2, 3, 4, 8)
    assert bench.assignment(2, 4) == (2, 3, 4)
    assert bench.assignment(1, 5) == (3, 4)


def test_guard_is_safe_and_keeps_top_labels_on_three_networks() -> None:
    counts = run([(1, 1), (1, 9), (2, 9)], uniform=400, per_property=200)
    for c in counts.values():
        assert c.unsafe == 0 and c.needless_top == 0 and c.abstained == 0  # type: ignore[attr-defined]
    assert counts[(1, 9)].top_changed > 0  # type: ignore[attr-defined]  # N1,9 breaks phi3/phi4: the guard acts


@pytest.mark.slow
def test_guard_full_acasxu_run() -> None:
    counts = run(bench.NETWORKS, uniform=5000, per_property=2000)
    total = bench.Counts()
    for c in counts.values():
        total.add(c)  # type: ignore[arg-type]
    assert total.points == 18 * 5000 + 2000 * sum(len(bench.assignment(a, b)) for a, b in bench.NETWORKS)
    assert total.unsafe == 0 and total.needless_top == 0 and total.abstained == 0
    assert total.top_changed > 0
