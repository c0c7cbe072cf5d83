"""Non-finite numbers and extreme legal values, across every checker (issue 14, points 3 to 6).

- NaN or infinite scores are never a witness, and no verdict rests on them: UNKNOWN with the point.
- NaN or infinite weights are a ModelError naming the tensor, wherever a model comes from.
- Every --json writer writes valid JSON (no NaN / Infinity tokens).
- Huge legal values (an l2 eps of 1e200, vote weights of 1e300) are computed without overflow.
- A region that holds no float32 point holds vacuously, in the same words from every checker.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from hypothesis.errors import InvalidArgument
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import spec
from checkers.cli import main
from checkers.crosscheck.props import PropertyOptions, check_property
from checkers.ensemble import MemberCerts, Vote
from checkers.fgp import FGP
from checkers.finite import dumps
from checkers.lipschitz.certify import certify
from checkers.lipschitz.checkpoint import save_lipschitz
from checkers.lipschitz.network import as_lipschitz, constants
from checkers.models import load_model, save_model
from checkers.onnx_import import load_onnx
from checkers.plnet import from_module
from checkers.semantics import (
    NO_FLOAT32_POINT, VACUOUS, atom_values, compile_ordering, float32_box, holds, in_ball, in_part, violated,
)
from checkers.strategies import float32_inside, inputs_in
from checkers.testing import find_counterexample
from checkers.verdict import Status
from checkers.verify import VerifyOptions, verify_property
from spec import ir
from spec.errors import ModelError

torch.set_num_threads(1)
F32_TINY = float(np.float32(1.4e-45))  # the least positive float32 (a subnormal)
QUICK = VerifyOptions(timeout=10.0)


def strict_json(text: str) -> Any:
    """json.loads that refuses the non-JSON tokens NaN, Infinity and -Infinity."""
    def bad(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=bad)


def overflow_net() -> nn.Sequential:
    """Finite float32 weights whose float32 scores are NaN / -inf past x ~ 1.13 (3e38 x overflows).

    y = (0 h + 1, -1e-38 h + 2), h = relu(3e38 x - 3e38): in the reals y1 - y0 = 1 - 3(x - 1) > 0 until
    x = 4/3, but float32 gives (nan, -inf) from about 1.13 on, where argmax picks the NaN (label 0)."""
    l1, l2 = nn.Linear(1, 1), nn.Linear(1, 2)
    with torch.no_grad():
        l1.weight.fill_(3e38)
        l1.bias.fill_(-3e38)
        l2.weight.copy_(torch.tensor([[0.0], [-1e-38]]))
        l2.bias.copy_(torch.tensor([1.0, 2.0]))
    return nn.Sequential(l1, nn.ReLU(), l2).eval()


def infinite_net() -> nn.Sequential:
    """y = (h, -h), h = relu(3e38 x): +-inf (not NaN) from x ~ 1.13 on."""
    l1, l2 = nn.Linear(1, 1), nn.Linear(1, 2)
    with torch.no_grad():
        l1.weight.fill_(3e38)
        l1.bias.zero_()
        l2.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        l2.bias.zero_()
    return nn.Sequential(l1, nn.ReLU(), l2).eval()


def constant_net(n: int = 2) -> nn.Sequential:
    """y = (1, 0) everywhere: label 0 is robust at any radius."""
    lin = nn.Linear(n, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.copy_(torch.tensor([1.0, 0.0]))
    return nn.Sequential(lin).eval()


def small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2)).eval()


ONE_INPUT = "network n : real[1] -> real[2]\n  domain x[0] in [0, 10]\n"
TWO_INPUTS = "network n : real[2] -> real[2]\n  domain x[*] in [0, 1]\n"


def load(text: str) -> tuple[ir.Spec, ir.Network]:
    loaded = spec.load(text)
    return loaded, loaded.networks[0]


def prop_of(text: str, name: str) -> tuple[ir.Property, ir.Network]:
    loaded, network = load(text)
    return next(p for p in loaded.properties if p.name == name), network


# ---------------------------------------------------------------- point 3: NaN / inf scores have no truth value


@pytest.mark.parametrize("y", [[math.nan, 0.0], [0.0, math.nan], [math.inf, 0.0], [-math.inf, 0.0], [math.nan, math.nan],
                               [math.inf, math.inf]])
@pytest.mark.parametrize("strict", [False, True])
def test_nonfinite_scores_neither_hold_nor_violate(y: list[float], strict: bool) -> None:
    for req in (ir.Ordering(((ir.Order(1, 0, strict),),)),  # y1 > y0 (>=)
                ir.Ordering(((ir.Linear(((0, 1.0),), 1e39, strict),),))):  # y0 < 1e39 (<=)
        rows = compile_ordering(req, 2)
        scores = torch.tensor([y, [0.0, 1.0]], dtype=torch.float32)
        assert holds(rows, scores).tolist() == [False, True]
        assert violated(rows, scores).tolist() == [False, False]
        assert bool(torch.isnan(atom_values(rows, scores)[0]).all())


def test_finite_scores_are_decided_exactly_as_before() -> None:
    rows = compile_ordering(ir.Ordering(((ir.Order(1, 0, False),),)), 2)  # y1 >= y0
    y = torch.tensor([[1.0, 1.0], [1.0, 2.0], [2.0, 1.0], [3e38, -3e38]], dtype=torch.float32)
    assert holds(rows, y).tolist() == [True, True, False, False]
    assert violated(rows, y).tolist() == [False, False, True, True]


def test_nonfinite_points_lie_in_no_region() -> None:
    unbounded = ir.RegionPart(ir.Box((0.0, 0.0), (math.inf, math.inf), (False, False), (False, False)),
                              (ir.HalfSpace(((0, 1.0), (1, 1.0)), 1e300, False),))
    x = torch.tensor([[math.inf, 0.0], [math.nan, 0.0], [1.0, 2.0]], dtype=torch.float32)
    assert in_part(unbounded, x).tolist() == [False, False, True]
    assert not in_ball([math.nan], ((0.0,), 1.0, ir.Norm.L2))


ROBUST_05 = ONE_INPUT + "property r: robust eps 2.5 norm {norm} at [0.5]\nproperty o: require y[1] > y[0]\n"


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_verifier_never_reports_a_nan_witness(norm: str) -> None:
    for name in ("r", "o"):
        prop, network = prop_of(ROBUST_05.format(norm=norm), name)
        verdict = verify_property(overflow_net(), prop, network, QUICK)
        assert verdict.status is Status.UNKNOWN, (name, verdict)
        assert "scores are not finite at x = (" in verdict.reason


def test_verifier_centre_with_nonfinite_scores_is_unknown() -> None:
    prop, network = prop_of(ONE_INPUT + "property r: robust eps 0.1 norm l2 at [5.0]\n", "r")
    verdict = verify_property(overflow_net(), prop, network, QUICK)
    assert verdict.status is Status.UNKNOWN and "not finite at the centre x = (5.0)" in verdict.reason


@pytest.mark.parametrize("norm", list(ir.Norm))
def test_fgp_never_reports_a_nan_witness(norm: ir.Norm) -> None:
    _, network = load(ONE_INPUT)
    fgp = FGP(overflow_net(), 1, domain=network.domain)
    result = fgp.check(torch.tensor([0.5], dtype=torch.float64), 2.5, norm)
    assert result.status is Status.UNKNOWN and "scores are not finite" in result.verdict.reason
    centre = fgp.check(torch.tensor([5.0], dtype=torch.float64), 0.1, norm)
    assert centre.status is Status.UNKNOWN and "at the centre" in centre.verdict.reason


def test_falsifiers_and_crosscheck_never_use_nan_scores() -> None:
    for name in ("r", "o"):
        prop, network = prop_of(ROBUST_05.format(norm="linf"), name)
        assert find_counterexample(overflow_net(), prop, network, examples=200) is None
        report = check_property(overflow_net(), prop, network, PropertyOptions(examples=100, timeout=5.0))
        for found in report.witnesses.values():
            assert all(all(math.isfinite(v) for v in w.y) for w in found.values())
        assert not report.contradictions


def _gemm_onnx(path: Path, weights: list[tuple[np.ndarray, np.ndarray]], alpha: float = 1.0) -> Path:
    nodes, inits, current = [], [], "x"
    for k, (w, b) in enumerate(weights):
        out = "y" if k == len(weights) - 1 else f"h{k}"
        gemm = f"g{k}" if k < len(weights) - 1 else "y"
        nodes.append(helper.make_node("Gemm", [current, f"W{k}", f"B{k}"], [gemm], transB=1, alpha=alpha, name=f"gemm{k}"))
        inits += [numpy_helper.from_array(w, f"W{k}"), numpy_helper.from_array(b, f"B{k}")]
        if k < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [gemm], [out], name=f"relu{k}"))
        current = out
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weights[0][0].shape[1]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weights[-1][0].shape[0]])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)]), str(path))
    return path


def _overflow_onnx(path: Path) -> Path:
    f32 = np.float32
    return _gemm_onnx(path, [(np.array([[3e38]], f32), np.array([-3e38], f32)),
                             (np.array([[0.0], [-1e-38]], f32), np.array([1.0, 2.0], f32))])


def test_cli_vnnlib_answers_unknown_on_nan_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = _overflow_onnx(tmp_path / "net.onnx")
    prop = tmp_path / "p.vnnlib"  # the violation: Y_1 <= Y_0 somewhere with 0 <= X_0 <= 10
    prop.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
                    "(assert (>= X_0 0.0))\n(assert (<= X_0 10.0))\n(assert (<= Y_1 Y_0))\n")
    assert main(["vnnlib", str(net), str(prop), "--timeout", "10"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "unknown"


def test_infinite_scores_are_no_overflow_error(tmp_path: Path) -> None:
    """Exact comparison of an infinite score once raised OverflowError (Fraction(inf)); now: UNKNOWN."""
    for name in ("p", "q"):
        prop, network = prop_of(ONE_INPUT + "property p: require y[0] <= 1e39\nproperty q: require y[0] >= y[1]\n", name)
        verdict = verify_property(infinite_net(), prop, network, VerifyOptions(timeout=3.0))
        assert verdict.status is Status.UNKNOWN and "not finite" in verdict.reason


# ---------------------------------------------------------------- point 4: non-finite weights are a ModelError


def _net_with(value: float, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    net = small_net()
    with torch.no_grad():
        net[0].weight[1, 0] = value
    return net


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_python_modules_with_nonfinite_weights_are_model_errors(value: float) -> None:
    prop, network = prop_of(TWO_INPUTS + "property p: require y[0] > y[1]\n", "p")
    net = _net_with(value)
    for make in (lambda: from_module(net, (2,)), lambda: FGP(net, 2, domain=network.domain),
                 lambda: verify_property(net, prop, network, QUICK),
                 lambda: constants(as_lipschitz(net, (2,))),
                 lambda: certify(as_lipschitz(net, (2,)), torch.zeros(1, 2), 0.1)):
        with pytest.raises(ModelError, match=r"tensor '0\.weight' holds 1 (NaN|infinite) entry, the first at index \[1, 0\]"):
            make()


def test_folded_weights_that_overflow_float64_are_a_model_error() -> None:
    layers = []
    for _ in range(9):  # (3e38)^9 > 1.8e308: the folded product of affine layers is infinite in float64
        lin = nn.Linear(1, 1)
        with torch.no_grad():
            lin.weight.fill_(3e38)
            lin.bias.zero_()
        layers.append(lin)
    with pytest.raises(ModelError, match="overflow float64"):
        from_module(nn.Sequential(*layers), (1,))


@pytest.mark.parametrize(("value", "dtype", "what"), [(math.nan, torch.float32, "NaN"), (math.inf, torch.float32, "infinite"),
                                                      (1e300, torch.float64, "infinite")])
def test_checkpoint_with_nonfinite_weight_is_a_model_error(tmp_path: Path, value: float, dtype: torch.dtype, what: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "net.pt"
    save_model(small_net(), [2], path)
    data = torch.load(path, weights_only=True)
    data["state_dict"]["0.weight"] = data["state_dict"]["0.weight"].to(dtype)
    data["state_dict"]["0.weight"][1, 0] = value
    torch.save(data, path)
    with pytest.raises(ModelError, match=rf"state_dict\['0\.weight'\] holds 1 {what} entry, the first at index \[1, 0\]"):
        load_model(path)
    spec_file = tmp_path / "p.prop"
    spec_file.write_text(TWO_INPUTS + "property p: require y[0] > y[1]\n")
    assert main(["verify", str(spec_file), "--model", str(path), "--timeout", "5"]) == 2
    assert "state_dict['0.weight'] holds" in capsys.readouterr().err


def test_lipschitz_checkpoint_with_nonfinite_weight_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "lip.pt"
    save_lipschitz(as_lipschitz(small_net(), (2,)), path)
    data = torch.load(path, weights_only=True)
    key = next(k for k in data["state_dict"] if k.endswith("weight"))
    data["state_dict"][key][0, 0] = math.nan
    torch.save(data, path)
    with pytest.raises(ModelError, match=rf"state_dict\['{re_escape(key)}'\] holds 1 NaN entry"):
        load_model(path)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_onnx_with_nonfinite_weights_is_a_model_error(tmp_path: Path) -> None:
    f32 = np.float32
    bad = np.array([[1.0, math.nan]], f32)
    path = _gemm_onnx(tmp_path / "nan.onnx", [(bad, np.array([0.0], f32))])
    with pytest.raises(ModelError, match=r"tensor 'W0' holds 1 NaN entry, the first at index \[0, 1\]"):
        load_onnx(path)
    wide = np.array([[1e300, 1.0]], np.float64)  # a float64 operand of a float32 network: refused before it overflows
    graph_path = _gemm_onnx(tmp_path / "wide.onnx", [(wide, np.array([0.0], np.float64))])
    with pytest.raises(ModelError, match=r"node 'gemm0' \(Gemm\): its constant operands must be float32"):
        load_onnx(graph_path)
    scaled = _gemm_onnx(tmp_path / "alpha.onnx", [(np.array([[1e30, 1.0]], f32), np.array([0.0], f32))], alpha=1e30)
    with pytest.raises(ModelError, match=r"node 'gemm0' \(Gemm\): its weight"):
        load_onnx(scaled)


def test_crosscheck_json_is_valid_json_on_nan_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "n.pt"
    save_model(overflow_net(), [1], model)
    spec_file = tmp_path / "p.prop"
    spec_file.write_text(ONE_INPUT + "property o: require y[1] > y[0]\nproperty r: robust eps 2.5 norm linf at [0.5]\n")
    code = main(["crosscheck", str(spec_file), "--model", f"n={model}", "--timeout", "5", "--examples", "50", "--json"])
    reports = strict_json(capsys.readouterr().out)
    assert code == 0 and {r["property"] for r in reports} == {"o", "r"}
    assert all(not r["contradictions"] for r in reports)


def test_dumps_writes_nonfinite_numbers_as_strings() -> None:
    text = dumps({"a": [math.nan, math.inf, -math.inf, 1.5], "b": (2, {"c": math.nan})})
    assert strict_json(text) == {"a": ["nan", "inf", "-inf", 1.5], "b": [2, {"c": "nan"}]}


# ---------------------------------------------------------------- point 5: huge legal values


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_verifier_huge_eps(norm: str) -> None:
    prop, network = prop_of(TWO_INPUTS + f"property r: robust eps 1e200 norm {norm} at [0.5, 0.5]\n", "r")
    assert verify_property(constant_net(), prop, network, QUICK).status is Status.HOLDS


@pytest.mark.parametrize("norm", list(ir.Norm))
def test_fgp_huge_eps(norm: ir.Norm) -> None:
    _, network = load(TWO_INPUTS)
    result = FGP(constant_net(), 2, domain=network.domain).check(torch.tensor([0.5, 0.5], dtype=torch.float64), 1e200, norm)
    assert result.status is Status.HOLDS and result.radius == 1e200


@pytest.mark.parametrize("norm", list(ir.Norm))
def test_fgp_huge_eps_is_the_ball_that_covers_the_domain(norm: ir.Norm) -> None:
    """Past the domain's reach a larger eps changes nothing: 1e200 (whose square overflows) answers as 2 does."""
    _, network = load(TWO_INPUTS)
    fgp = FGP(small_net(), 2, domain=network.domain)
    centre = torch.tensor([0.5, 0.25], dtype=torch.float64)
    huge, covering = fgp.check(centre, 1e200, norm), fgp.check(centre, 2.0, norm)
    assert (huge.status, huge.radius, huge.verdict.witness) == (covering.status, covering.radius, covering.verdict.witness)


class _Fixed:
    def __init__(self, prediction: list[int], certified: list[bool]) -> None:
        self.name, self.module = "f", nn.Identity()
        self.pred, self.cert = torch.tensor(prediction), torch.tensor(certified)

    def certify(self, x: torch.Tensor, eps: float, norm: ir.Norm) -> MemberCerts:
        return MemberCerts(self.pred, self.cert, nn.functional.one_hot(self.pred, 3).float())


@pytest.mark.parametrize("big", [1e300, 1.7976931348623157e308])
def test_vote_with_huge_weights_is_the_vote_with_their_ratios(big: float) -> None:
    a, b, c = _Fixed([0, 1, 0, 2], [True, True, False, True]), _Fixed([0, 0, 1, 2], [True, False, True, True]), \
        _Fixed([1, 0, 1, 1], [False, True, True, True])
    x = torch.zeros(4, 2)
    huge, plain = Vote([a, b, c], 0.1, weights=[big, big / 2, big / 4]), Vote([a, b, c], 0.1, weights=[4, 2, 1])
    assert torch.equal(huge.predict(x), plain.predict(x))
    assert torch.equal(huge.certify(x).certified, plain.certify(x).certified)
    assert torch.isfinite(huge(x)).all()


def test_crosscheck_vote_with_huge_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        save_model(small_net(), [2], tmp_path / f"{name}.pt")
    spec_file = tmp_path / "v.prop"
    spec_file.write_text("network a : real[2] -> real[2]\n  domain x[*] in [0, 1]\nnetwork b : real[2] -> real[2]\n"
                         "  domain x[*] in [0, 1]\nensemble v = vote(a: 1e300, b: 1e300)\n"
                         "property pv: robust eps 0.01 norm l2 at [0.5, 0.5], [0.2, 0.3] for v\n")
    assert main(["crosscheck", str(spec_file), "--steps", "5", "--json"]) == 0
    (row,) = strict_json(capsys.readouterr().out)
    assert row["checker"] == "vote" and row["points"] == 2


# ---------------------------------------------------------------- point 6: regions with no float32 point


EMPTY_REGIONS = {
    "open_subnormal": "x[0] in (0, 5e-324)",
    "below_float32": "x[0] >= 5e-324 and x[0] <= 1e-310",
    "between_float32": "x[0] in [1e-45, 1e-45]",
}


@pytest.mark.parametrize(("lo", "hi", "ls", "us", "expected"), [
    (0.0, 5e-324, True, True, None),
    (5e-324, 1e-310, False, False, None),
    (1e-45, 1e-45, False, False, None),
    (0.0, 5e-324, False, False, (0.0, 0.0)),
    (0.0, 1e-45, True, False, None),
    (0.0, 2e-45, True, False, (F32_TINY, F32_TINY)),
    (0.0, F32_TINY, True, True, None),
    (0.1, 0.1, False, False, None),
    (-1e39, 1e39, False, False, (-3.4028234663852886e38, 3.4028234663852886e38)),
    (1e39, math.inf, False, False, None),
    (-math.inf, 0.5, False, True, (-math.inf, float(np.nextafter(np.float32(0.5), np.float32(0))))),
])
def test_float32_box(lo: float, hi: float, ls: bool, us: bool, expected: tuple[float, float] | None) -> None:
    box = float32_box(ir.Box((lo,), (hi,), (ls,), (us,)))
    assert (None if box is None else (box.lower[0], box.upper[0])) == expected
    if expected is not None:  # the same coordinate test, in the strategies' API
        assert float32_inside(lo, hi, ls, us) == expected


def test_float32_box_sees_a_half_space_that_misses_the_float32_box() -> None:
    box = ir.Box((0.0, 0.0), (1e-45, 1.0), (False, False), (False, False))  # x0 has the one float32 value 0
    assert float32_box(ir.RegionPart(box, (ir.HalfSpace(((0, -1.0), (1, 1.0)), -1e-300, False),))) is None
    assert float32_box(ir.RegionPart(box, (ir.HalfSpace(((0, -1.0), (1, 1.0)), 0.0, True),))) is None
    assert float32_box(ir.RegionPart(box, (ir.HalfSpace(((0, -1.0), (1, 1.0)), 0.0, False),))) is not None


@pytest.mark.parametrize("region", list(EMPTY_REGIONS))
def test_every_checker_says_no_float32_point_the_same_way(region: str) -> None:
    prop, network = prop_of(TWO_INPUTS + f"property p: when {EMPTY_REGIONS[region]} require y[0] > y[1]\n", "p")
    verdict = verify_property(small_net(), prop, network, QUICK)
    assert verdict.status is Status.HOLDS and verdict.reason == VACUOUS
    with pytest.raises(InvalidArgument, match=NO_FLOAT32_POINT):
        inputs_in(prop.region)
    assert find_counterexample(small_net(), prop, network, examples=20) is None
    report = check_property(small_net(), prop, network, PropertyOptions(examples=20, timeout=5.0))
    assert report.holds["verifier"] == [0] and not report.contradictions
    assert any(VACUOUS in note for note in report.notes)


def test_degenerate_domain_between_float32_values() -> None:
    prop, network = prop_of("network n : real[2] -> real[2]\n  domain x[0] in [1e-45, 1e-45], x[1] in [0, 1]\n"
                            "property p: require y[0] > y[1]\n", "p")
    verdict = verify_property(small_net(), prop, network, QUICK)
    assert verdict.status is Status.HOLDS and verdict.reason == VACUOUS
    report = check_property(small_net(), prop, network, PropertyOptions(examples=20, timeout=5.0))
    assert not report.contradictions and any(VACUOUS in note for note in report.notes)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_ball_without_float32_point(norm: str) -> None:
    """0.1 is no float32 value, and no float32 value lies within 1e-20 of it."""
    prop, network = prop_of(TWO_INPUTS + f"property r: robust eps 1e-20 norm {norm} at [0.1, 0.1]\n", "r")
    verdict = verify_property(small_net(), prop, network, QUICK)
    assert verdict.status is Status.HOLDS and verdict.reason == VACUOUS
    result = FGP(small_net(), 2, domain=network.domain).check(torch.tensor([0.1, 0.1], dtype=torch.float64), 1e-20,
                                                              ir.Norm(norm))
    assert result.status is Status.HOLDS and result.verdict.reason == VACUOUS
    report = check_property(small_net(), prop, network, PropertyOptions(examples=20, timeout=5.0))
    assert all(report.holds[name] == [0] for name in ("verifier", "fgp", "gloro"))
    assert any(VACUOUS in note for note in report.notes)
