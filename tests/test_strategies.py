"""checkers.strategies and checkers.testing: what the generated data guarantees, and the pytest-friendly API."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import spec
from checkers.lipschitz import LipschitzNet
from checkers.plnet import from_module
from checkers.semantics import in_part
from checkers.strategies import build_network, inputs_in, networks, properties, scores
from checkers.testing import assert_holds, examples_of, find_counterexample
from checkers.verdict import Status
from conftest import ROOT
from spec import ir
from spec.errors import UsageError

torch.set_num_threads(1)


@given(properties(3, 3, kinds=("ordering", "robust", "topk", "affinity")))
def test_generated_text_lowers_to_the_generated_ir(gen) -> None:  # type: ignore[no-untyped-def]
    loaded = spec.load(gen.text, "generated.prop")
    assert loaded.networks == (gen.network,)
    assert loaded.properties == (gen.prop,)
    ir.validate(loaded)


def _f32(v: float) -> bool:
    return float(np.float32(v)) == v


BOX = ir.Box((-1.0, 0.1, -math.inf), (1.0, 0.3, 2.0), (True, False, False), (False, True, True))
PART = ir.RegionPart(BOX, (ir.HalfSpace(((0, 1.0), (2, -0.5)), 0.1, True),))


@given(inputs_in(ir.Region((PART, ir.RegionPart(ir.Box((5.0,) * 3, (5.0,) * 3, (False,) * 3, (False,) * 3))))))
def test_inputs_lie_in_the_region_exactly_and_are_float32(x: tuple[float, ...]) -> None:
    assert all(_f32(v) for v in x)
    t = torch.tensor([x], dtype=torch.float32)
    if x == (5.0, 5.0, 5.0):  # the second part: a single point
        return
    assert bool(in_part(PART, t)[0])
    assert x[0] != -1.0 and x[1] != 0.3  # strict sides
    assert -1e3 <= x[2] < 2.0  # the infinite side is cut at the bound


def test_inputs_hit_corners_faces_and_their_float32_neighbours() -> None:
    box = ir.Box((0.1, -2.0), (0.3, 5.0), (True, False), (False, True))
    points = set(examples_of(inputs_in(box), 300, seed=1))
    lo0 = float(np.nextafter(np.float32(0.1), np.float32(1)))  # 0.1 is not a float32; (0.1 strict: the next one up
    lo0 = float(np.float32(0.1)) if float(np.float32(0.1)) > 0.1 else lo0  # when float32(0.1) is below 0.1)
    hi1 = float(np.nextafter(np.float32(5.0), np.float32(0)))  # strict upper side 5: the float32 below
    xs = {p[0] for p in points}
    ys = {p[1] for p in points}
    assert {lo0, float(np.float32(0.3))} <= xs or float(np.float32(0.3)) > 0.3
    assert {-2.0, hi1} <= ys and 5.0 not in ys
    assert any(p[0] == lo0 and p[1] == -2.0 for p in points)  # a corner
    halfspace = ir.RegionPart(ir.Box((0.0, 0.0), (1.0, 1.0), (False,) * 2, (False,) * 2),
                              (ir.HalfSpace(((0, 1.0), (1, 1.0)), 0.7, False),))
    on_face = [p for p in examples_of(inputs_in(halfspace), 200, seed=2) if abs(p[0] + p[1] - 0.7) < 1e-7]
    assert on_face


def test_inputs_in_rejects_regions_without_float32_points() -> None:
    tiny = ir.Box((0.1,), (0.1,), (True,), (False,))  # empty
    with pytest.raises(InvalidArgument, match=r"region=.*holds no float32 point"):
        inputs_in(tiny)
    gap = ir.Box((0.1,), (0.1 + 1e-12,), (False,), (False,))  # non-empty, but no float32 inside
    with pytest.raises(InvalidArgument, match="holds no float32 point"):
        inputs_in(gap)
    with pytest.raises(InvalidArgument, match="bound=-1"):
        inputs_in(tiny, bound=-1)


@settings(max_examples=30)
@given(networks(3, 2))
def test_networks_are_small_float32_models_the_checkers_read(model: torch.nn.Module) -> None:
    y = model(torch.zeros(5, 3))
    assert y.shape == (5, 2) and y.dtype == torch.float32 and not model.training
    if isinstance(model, LipschitzNet):
        assert any(type(layer).__name__ == "MinMax" for layer in model)
    else:
        assert from_module(model, (3,)).n_outputs == 2


def test_strategy_arguments_are_validated() -> None:
    with pytest.raises(InvalidArgument, match="n_inputs=0"):
        networks(0, 2)
    with pytest.raises(InvalidArgument, match="activations=\\('tanh',\\)"):
        networks(2, 2, activations=("tanh",))
    with pytest.raises(InvalidArgument, match="depth=\\(3, 1\\)"):
        networks(2, 2, depth=(3, 1))
    with pytest.raises(InvalidArgument, match="kinds=\\('affine',\\)"):
        properties(2, 2, kinds=("affine",))
    with pytest.raises(InvalidArgument, match="n_outputs=1"):
        properties(2, 1)
    with pytest.raises(InvalidArgument, match="max_parts=0"):
        properties(2, 2, max_parts=0)
    with pytest.raises(InvalidArgument, match=r"domain=\(1.0, 1.0\)"):
        properties(2, 2, domain=(1.0, 1.0))
    with pytest.raises(InvalidArgument, match="m=0"):
        scores(0)


def test_scores_include_ties() -> None:
    # 600 draws: Hypothesis mixes in literals of every loaded module, so the share of all-distinct vectors
    # depends on which test files ran before (4 of 200 after tests/test_rounding_traps.py)
    drawn = examples_of(scores(4), 600, seed=3)
    assert all(s.shape == (4,) and s.dtype == torch.float32 for s in drawn)
    assert sum(1 for s in drawn if len(set(s.tolist())) < 4) > 20
    assert sum(1 for s in drawn if len(set(s.tolist())) == 4) > 5


# ---------------------------------------------------------------- testing

NETWORK = ir.Network("net", (2,), (2,), ("a", "b"), ("x0", "x1"), ir.Box((-1.0, -1.0), (1.0, 1.0), (False,) * 2, (False,) * 2))


def _linear(w: list[list[float]], b: list[float]) -> torch.nn.Sequential:
    lin = torch.nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w))
        lin.bias.copy_(torch.tensor(b))
    return torch.nn.Sequential(lin).eval()


def _prop(lo: float, strict: bool) -> ir.Property:
    box = ir.Box((lo, -1.0), (1.0, 1.0), (strict, False), (False, False))
    return ir.Property("above", "net", ir.Region((ir.RegionPart(box),)), ir.Ordering(((ir.Order(0, 1, True),),)))


def test_assert_holds_fails_with_the_replayed_witness() -> None:
    model = _linear([[1.0, 0.0], [0.0, 0.0]], [0.0, 0.5])  # y0 = x0, y1 = 0.5: y0 > y1 iff x0 > 0.5
    with pytest.raises(AssertionError) as info:
        assert_holds(model, _prop(0.5, False), NETWORK)  # x0 = 0.5 is a tie
    message = str(info.value)
    assert "property above fails" in message
    x = re.search(r"x += \[([^\]]*)\]", message)
    assert x is not None and float(x.group(1).split(",")[0]) == 0.5
    assert "scores = [0.5, 0.5]" in message
    assert_holds(model, _prop(0.5, True), NETWORK)  # (0.5, 1]: holds (the verifier may not prove it: float32 margin)
    verdict = assert_holds(model, _prop(0.75, True), NETWORK)  # away from the boundary the verifier proves it
    assert verdict is not None and verdict.status is Status.HOLDS
    assert find_counterexample(model, _prop(0.5, True), NETWORK) is None
    w = find_counterexample(model, _prop(0.25, True), NETWORK)
    assert w is not None and 0.25 < w.x[0] <= 0.5 and w.y[0] <= w.y[1]


def test_assert_holds_on_robustness_and_require_proof() -> None:
    model = _linear([[1.0, 0.0], [-1.0, 0.0]], [0.0, 0.0])  # label 0 iff x0 > 0
    ball = ir.Robust(ir.Local(), 0.25, ir.Norm.L2, ((0.5, 0.0), (0.2, 0.0)))
    prop = ir.Property("r", "net", ir.Region((ir.RegionPart(NETWORK.domain),)), ball)
    with pytest.raises(AssertionError, match=r"centre 1 = \[0.2, 0.0\]"):
        assert_holds(model, prop, NETWORK)
    fine = ir.Property("r", "net", prop.region, ir.Robust(ir.Local(), 0.25, ir.Norm.L2, ((0.5, 0.0),)))
    assert assert_holds(model, fine, NETWORK, require_proof=True) is not None
    minmax = build_network(2, [4], 2, "minmax", 0)
    with pytest.raises(AssertionError, match="no proof"):  # the verifier reads ReLU networks only
        assert_holds(minmax, ir.Property("r", "net", prop.region, ir.Robust(ir.Local(), 1e-3, ir.Norm.L2, ((0.5, 0.0),))),
                     NETWORK, require_proof=True)


def test_testing_errors_name_the_problem() -> None:
    model = _linear([[1.0, 0.0], [0.0, 0.0]], [0.0, 0.5])
    over = ir.Robust(ir.TopK(1), 0.1, ir.Norm.L2, dataset="test")
    top = ir.Property("t", "net", ir.Region((ir.RegionPart(NETWORK.domain),)), over)
    with pytest.raises(UsageError, match="property t: the falsifiers check orderings and robustness at given points"):
        find_counterexample(model, top, NETWORK)
    with pytest.raises(UsageError, match="examples=0"):
        find_counterexample(model, _prop(0.5, True), NETWORK, examples=0)


@settings(max_examples=3)
@given(st.integers())
def test_nesting_without_data_is_a_clear_error(n: int) -> None:
    with pytest.raises(UsageError, match="pass data="):
        find_counterexample(_linear([[1.0, 0.0], [0.0, 0.0]], [0.0, 0.5]), _prop(0.5, True), NETWORK)


def test_the_readme_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Soundness cross-checks and strategies", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "readme_example.py").write_text(block, encoding="utf-8")  # a real file: Hypothesis reads its source
    loader = importlib.util.spec_from_file_location("readme_example", tmp_path / "readme_example.py")
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    tests = [f for name, f in vars(module).items() if name.startswith("test_") and callable(f)]
    assert len(tests) >= 2
    for f in tests:
        f()
    broken = block.replace("x[0] > 0.5", "x[0] >= 0.5")  # what the README says: the tie at 0.5 fails the first tests
    no_shrinking = "@settings(max_examples=20, phases=[Phase.generate])"
    broken = "from hypothesis import Phase\n" + broken.replace("@settings(max_examples=20)", no_shrinking)
    (tmp_path / "readme_broken.py").write_text(broken, encoding="utf-8")
    loader = importlib.util.spec_from_file_location("readme_broken", tmp_path / "readme_broken.py")
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    for name in ("test_my_model_meets_a_wins", "test_my_model_once_with_the_verifier"):
        with pytest.raises(AssertionError, match=r"scores = \[0.5, 0.5\]"):
            getattr(module, name)()
