"""The verifier on hand-built networks: half-space regions, robustness at points, UNKNOWN reasons."""

from __future__ import annotations

import torch
from torch import nn

import spec
from checkers.semantics import VACUOUS, compile_ordering, holds, in_part
from checkers.verdict import Status
from checkers.verify import VerifyOptions, verify_property

OPTIONS = VerifyOptions(timeout=20.0)


def identity_net() -> nn.Module:
    """y = (x0, x1): scores are the inputs themselves, so every verdict is known by hand."""
    layer = nn.Linear(2, 2)
    layer.weight = nn.Parameter(torch.eye(2))
    layer.bias = nn.Parameter(torch.zeros(2))
    return nn.Sequential(layer).eval()


def relu_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


HEADER = "network n : real[2] -> real[2]\n  domain x[*] in [0, 1]\n"


def verdict(text: str, module: nn.Module, name: str = "p", timeout: float = 20.0) -> tuple[Status, object]:
    loaded = spec.load(HEADER + text, "t.prop")
    v = verify_property(module, loaded.property(name), loaded.networks[0], VerifyOptions(timeout=timeout))
    return v.status, v


def test_halfspace_region_holds_when_the_halfspace_excludes_the_violations() -> None:
    # y0 > y1 fails exactly where x0 <= x1; the half-space x0 - x1 >= 0.1 keeps only x0 > x1
    status, _ = verdict("property p:\n  when x[0] - x[1] >= 0.1\n  require y[0] > y[1]", identity_net())
    assert status is Status.HOLDS


def test_halfspace_region_violation_has_a_witness_inside_the_halfspace() -> None:
    loaded = spec.load(HEADER + "property p:\n  when x[0] + x[1] <= 0.5\n  require y[0] > y[1]", "t.prop")
    prop = loaded.properties[0]
    v = verify_property(identity_net(), prop, loaded.networks[0], OPTIONS)
    assert v.status is Status.VIOLATED
    assert v.witness is not None
    x = torch.tensor([v.witness.x], dtype=torch.float32)
    assert bool(in_part(prop.region.parts[v.witness.part], x)[0])
    assert not bool(holds(compile_ordering(prop.requirement, 2), identity_net()(x))[0])  # type: ignore[arg-type]


def test_strictness_decides_a_tie() -> None:
    """On the diagonal x0 == x1 the scores tie: y0 >= y1 holds there, y0 > y1 does not.

    Input splitting cannot prove the non-strict one (every box on the diagonal straddles
    the half-spaces), so it may end UNKNOWN or TIMEOUT, but it must never be VIOLATED.
    """
    region = "when x[0] - x[1] >= 0 and x[0] - x[1] <= 0"
    weak = verdict(f"property p:\n  {region}\n  require y[0] >= y[1]", identity_net(), timeout=3.0)[0]
    assert weak is not Status.VIOLATED
    assert verdict(f"property p:\n  {region}\n  require y[0] > y[1]", identity_net())[0] is Status.VIOLATED


def test_local_robustness_at_points() -> None:
    net = "network n : real[2] -> real[2]\n  domain x[*] in [0, 1]\n"
    loaded = spec.load(net + "property far: robust eps 0.1 norm linf at [0.9, 0.1]\n"
                       "property near: robust eps 0.1 norm l2 at [0.52, 0.5]\n", "t.prop")
    far = verify_property(identity_net(), loaded.property("far"), loaded.networks[0], OPTIONS)
    near = verify_property(identity_net(), loaded.property("near"), loaded.networks[0], OPTIONS)
    assert far.status is Status.HOLDS
    assert near.status is Status.VIOLATED
    assert near.witness is not None
    dx = torch.tensor(near.witness.x, dtype=torch.float64) - torch.tensor([0.52, 0.5], dtype=torch.float64)
    assert float((dx**2).sum()) <= 0.1**2  # inside the l2 ball, not just its box


def test_what_the_verifier_does_not_decide_is_unknown_with_a_reason() -> None:
    text = (
        "network m : real[2] -> real[3]\n  domain x[*] in [0, 1]\n"
        "dataset d = somewhere\n"
        "property pred:\n  when predicted in {y[0]}\n  require y[0] above y[1]\n"
        "property topk: robust top 2 eps 0.1 norm l2 at [0.5, 0.5]\n"
        "property data: robust eps 0.1 norm l2 over d\n"
        "network free : real[2] -> real[3]\n"
        "property unbounded:\n  require y[0] above y[1]\n"
    )
    loaded = spec.load(text, "t.prop")
    reasons = {
        p.name: verify_property(relu_net(), p, loaded.network(p.target), OPTIONS) for p in loaded.properties
    }
    assert {v.status for v in reasons.values()} == {Status.UNKNOWN}
    assert "prediction" in reasons["pred"].reason
    assert "top-k" in reasons["topk"].reason
    assert "data set" in reasons["data"].reason
    assert "unbounded" in reasons["unbounded"].reason


def test_z3_leaves_prove_a_halfspace_that_cuts_boxes_diagonally() -> None:
    """x0 - x1 >= 1e-6 keeps y0 > y1 by 1e-6: boxes straddling that face would need a
    width below 1e-6 for the bounds alone (millions of boxes); Z3 settles each straddling
    box exactly, with the float32 error bound (about 4e-7 here) on the scores."""
    text = "property p:\n  when x[0] - x[1] >= 0.000001\n  require y[0] > y[1]"
    status, v = verdict(text, identity_net(), timeout=20.0)
    assert status is Status.HOLDS, v
    assert v.stats["z3_calls"] > 0  # type: ignore[attr-defined]
    loaded = spec.load(HEADER + text, "t.prop")
    bounds_only = VerifyOptions(timeout=3.0, exact_neurons=-1)
    assert verify_property(identity_net(), loaded.property("p"), loaded.networks[0], bounds_only).status is Status.TIMEOUT


def two_output_relu_net() -> nn.Module:
    """y = M relu(x - 0.5) with y0 - y1 changing sign on the diagonal and at x0, x1 = 0.5."""
    first, second = nn.Linear(2, 2), nn.Linear(2, 2)
    first.weight = nn.Parameter(torch.eye(2))
    first.bias = nn.Parameter(torch.tensor([-0.5, -0.5]))
    second.weight = nn.Parameter(torch.tensor([[1.0, 0.5], [0.5, 1.0]]))
    second.bias = nn.Parameter(torch.zeros(2))
    return nn.Sequential(first, nn.ReLU(), second).eval()


def test_z3_leaves_prove_disjuncts_that_only_hold_together() -> None:
    """`y0 >= y1 or y1 > y0` is true of any scores, but no disjunct holds on a box where
    the scores cross; Z3 sees both disjuncts and one shared float32 error per score."""
    text = "property p:\n  require y[0] >= y[1] or y[1] > y[0]"
    status, v = verdict(text, two_output_relu_net(), timeout=20.0)
    assert status is Status.HOLDS, v
    loaded = spec.load(HEADER + text, "t.prop")
    bounds_only = VerifyOptions(timeout=3.0, exact_neurons=-1)
    assert verify_property(two_output_relu_net(), loaded.property("p"), loaded.networks[0], bounds_only).status in (
        Status.TIMEOUT, Status.UNKNOWN)


def test_a_counterexample_in_exact_arithmetic_only_is_reported_as_such() -> None:
    """y0 = 0.75 x ties y1 = c (the float32 0.9000001549720764) only at x = c / 0.75, which lies strictly
    between the two float32 numbers of the region (its ends), where fl(0.75 x) rounds to either side
    of c: the real network violates "no tie", float32 execution cannot. The verdict is UNKNOWN and
    names the exact point; never VIOLATED without a float32 witness. (The region
    [0.33333332, 0.33333334] this test once used holds no float32 number at all: HOLDS vacuously.)"""
    layer = nn.Linear(1, 2)
    layer.weight = nn.Parameter(torch.tensor([[0.75], [0.0]]))
    layer.bias = nn.Parameter(torch.tensor([0.0, 0.9000001549720764]))
    text = ("network n : real[1] -> real[2]\n  domain x[*] in [0, 2]\n"
            "property p:\n  when x[0] in [1.2000001668930054, 1.200000286102295]\n  require y[0] > y[1] or y[1] > y[0]\n"
            "property q:\n  when x[0] in [0.33333332, 0.33333334]\n  require y[0] > y[1] or y[1] > y[0]\n")
    loaded = spec.load(text, "t.prop")
    module = nn.Sequential(layer).eval()
    v = verify_property(module, loaded.property("p"), loaded.networks[0], OPTIONS)
    assert v.status is Status.UNKNOWN, v
    assert "exact arithmetic" in v.reason
    assert v.stats["exact_witness"] == ["15099497/12582912"]
    empty = verify_property(module, loaded.property("q"), loaded.networks[0], OPTIONS)
    assert empty.status is Status.HOLDS and empty.reason == VACUOUS


def test_many_inputs_branch_on_relu_phases() -> None:
    """A 40-input network (more than relu_split_inputs) is decided by branching on ReLU phases:
    its prediction at the centre is kept on a small box (HOLDS), not on a huge one (VIOLATED)."""
    from nets import random_mlp

    module = random_mlp(7, 40, [16, 16], 3)
    label = int(module(torch.full((1, 40), 0.5)).argmax())
    others = " and ".join(f"y[{label}] > y[{j}]" for j in range(3) if j != label)
    loaded = spec.load("network n : real[40] -> real[3]\n  domain x[*] in [0, 1]\n"
                       f"property small:\n  when x[*] in [0.499, 0.501]\n  require {others}\n"
                       f"property huge:\n  require {others}\n", "t.prop")
    small = verify_property(module, loaded.property("small"), loaded.networks[0], OPTIONS)
    assert small.status is Status.HOLDS, small
    assert "ReLU-phase domains" in small.reason
    assert verify_property(module, loaded.property("huge"), loaded.networks[0], OPTIONS).status is Status.VIOLATED


def test_true_and_false_requirements_are_decided_not_crashed() -> None:
    """An empty conjunction is "true" (HOLDS, nothing to break; PGD used to crash on it); no disjunct at all
    is "false" (VIOLATED at any replayed point of the region); the falsifiers agree."""
    from checkers.testing import find_counterexample
    from spec import ir

    net = ir.Network("n", (1,), (2,), ("a", "b"), ("x",), ir.Box((0.0,), (1.0,), (False,), (False,)))
    model = nn.Sequential(nn.Linear(1, 2)).eval()
    for req, expected in ((ir.Ordering(((),)), Status.HOLDS), (ir.Ordering(()), Status.VIOLATED),
                          (ir.Ordering(((), (ir.Order(0, 1, True),))), Status.HOLDS)):
        prop = ir.Property("p", "n", ir.Region((ir.RegionPart(net.domain),)), req)
        verdict = verify_property(model, prop, net, VerifyOptions(timeout=2))
        assert verdict.status is expected, (req, verdict)
        found = find_counterexample(model, prop, net, examples=10)
        assert (found is None) == (expected is Status.HOLDS), (req, found)
        if found is not None:
            assert 0.0 <= found.x[0] <= 1.0
