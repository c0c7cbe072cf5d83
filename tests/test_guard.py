"""Guards: the exact tie shift, compile errors, flags, exports, checkpoints, CUDA, the command line."""

from __future__ import annotations

import json
import math
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from onnx.reference import ReferenceEvaluator

import spec
from checkers import semantics
from checkers.cli import main
from checkers.guard import GuardOptions, Reason, compile_guard, compile_layer, load_guard, save_guard
from checkers.guard.ranking import next_below
from checkers.models import save_model
from conftest import EXAMPLES
from nets import random_mlp
from spec import ir
from spec.errors import GuardError, ModelError, UsageError

ACAS = EXAMPLES / "acasxu" / "acasxu.prop"
EVERYWHERE = ir.Region((ir.RegionPart(ir.Box.unbounded(2)),))


def net(m: int = 4, decide: ir.Decide = ir.Decide.ARGMAX) -> ir.Network:
    return ir.Network("n", (2,), (m,), tuple(f"l{i}" for i in range(m)), ("a", "b"), ir.Box.unbounded(2), decide)


def prop(name: str, *disjuncts: tuple[ir.Atom, ...], region: ir.Region = EVERYWHERE) -> ir.Property:
    return ir.Property(name, "n", region, ir.Ordering(tuple(disjuncts)))


# ---------------------------------------------------------------- the tie shift


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_next_below_is_nextafter_on_special_values(dtype: torch.dtype) -> None:
    info = torch.finfo(dtype)
    tiny = info.smallest_normal * info.eps
    specials = [0.0, -0.0, tiny, -tiny, info.smallest_normal, -info.smallest_normal, 1.0, -1.0, 2.0, -2.0, 0.5,
                info.max, 3.0, -3.0, 1.5, info.smallest_normal * 2, 1e-3, -7.25, tiny * 3, -tiny * 5]
    specials += [info.smallest_normal * 2.0**k * (1 + j * info.eps) for k in (1, 7, 23, 25, 26, 27, 60)
                 for j in (0, 1, 2, 3)]
    specials += [-v for v in specials]
    v = torch.tensor(specials, dtype=torch.float64).to(dtype)
    v = v[torch.isfinite(v)]  # 2**-126 * 2**60 is past float16's range
    if dtype in (torch.float16, torch.bfloat16):  # torch.nextafter has no kernel for these: compare in float32 bits
        step = torch.tensor([1], dtype=torch.int16)
        bits = v.view(torch.int16)
        expect = torch.where(v > 0, bits - step, torch.where(v == 0, torch.tensor(-32767, dtype=torch.int16),
                                                               bits + step)).view(dtype)
        expect = torch.where(v == 0, -torch.tensor(tiny, dtype=dtype), expect)
    else:
        expect = torch.nextafter(v, torch.tensor(-math.inf, dtype=dtype))
    assert torch.equal(next_below(v), expect)


@given(st.integers(0, 2**32 - 1))
def test_next_below_is_nextafter_on_any_float32(bits: int) -> None:
    v = torch.tensor([bits], dtype=torch.int64).to(torch.int32).view(torch.float32)
    if torch.isfinite(v).all() and v.item() != -torch.finfo(torch.float32).max:
        assert torch.equal(next_below(v), torch.nextafter(v, torch.tensor(-math.inf)))


@given(st.integers(-(2**63), 2**63 - 1))
def test_next_below_is_nextafter_on_any_float64(bits: int) -> None:
    v = torch.tensor([bits], dtype=torch.int64).view(torch.float64)
    if torch.isfinite(v).all() and v.item() != -torch.finfo(torch.float64).max:
        assert torch.equal(next_below(v), torch.nextafter(v, torch.tensor(-math.inf, dtype=torch.float64)))


def test_tied_scores_become_strict_in_float32_and_float64() -> None:
    """Bug (C) of the public implementation: a tie must not survive a strict requirement."""
    layer = compile_layer([prop("p", (ir.Order(1, 0, True), ir.Order(2, 1, True), ir.Order(3, 2, True)))], net())
    for dtype in (torch.float32, torch.float64):
        y = torch.full((3, 4), 1e8, dtype=dtype)
        y[1] = 0.0
        y[2] = torch.tensor([5.0, 5.0, 5.0, 5.0 - 2 * float(torch.finfo(dtype).eps) * 4])
        result = layer.explain(torch.zeros(3, 2, dtype=dtype), y)
        rows = semantics.compile_ordering(layer.properties[0].requirement, 4)  # type: ignore[arg-type]
        assert semantics.holds(rows, result.scores).all() and not result.abstained.any()
        assert torch.equal(result.scores[:, 3], y[:, 0])  # the top value is kept, the others step down
        assert (result.scores[:, :3] < y[:, :1]).all()


# ---------------------------------------------------------------- compile errors and bad input


def test_linear_output_constraint_is_a_compile_error_naming_the_property() -> None:
    loaded = spec.load_file(ACAS)
    with pytest.raises(GuardError, match=r"property phi1: `1\.0\*y\[0\] <=? 3\.99.*compares scores with a constant"):
        compile_layer([loaded.property("phi1")], loaded.network("acas"))


def test_robust_and_foreign_properties_are_compile_errors() -> None:
    robust = ir.Property("r", "n", EVERYWHERE, ir.Robust(ir.Local(), 0.1, ir.Norm.L2, points=((0.0, 0.0),)))
    with pytest.raises(GuardError, match="property r: is a robustness property"):
        compile_layer([robust], net())
    other = ir.Property("o", "other", EVERYWHERE, ir.Ordering(((ir.Order(0, 1, True),),)))
    with pytest.raises(GuardError, match="property o: is about 'other', not the guarded network 'n'"):
        compile_layer([other], net())
    with pytest.raises(GuardError, match="engine='fast' must be one of"):
        GuardOptions(engine="fast")
    with pytest.raises(GuardError, match="max_combinations=0 must be in"):
        GuardOptions(max_combinations=0)


def test_wrong_shapes_name_the_shape() -> None:
    layer = compile_layer([prop("p", (ir.Order(0, 1, True),))], net())
    with pytest.raises(UsageError, match=r"inputs of shape \(batch, 2\), got torch.float32 \[3, 5\]"):
        layer(torch.zeros(3, 5), torch.zeros(3, 4))
    with pytest.raises(UsageError, match=r"scores of shape \(3, 4\), got torch.float32 \[3, 7\]"):
        layer(torch.zeros(3, 2), torch.zeros(3, 7))
    with pytest.raises(UsageError, match=r"torch\.int64"):
        layer(torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, 4))


@pytest.mark.parametrize("engine", ["table", "greedy"])
def test_wrong_types_dtypes_and_devices_are_usage_errors(engine: str) -> None:
    """Not tensors, float8, tensors on another device (meta stands in for a GPU): UsageError saying what is
    expected, from the layer and from a guarded model (before the model runs), never a torch error."""
    region = ir.Region((ir.RegionPart(ir.Box((0.0, 0.0), (1.0, 1.0), (False, False), (False, False)),
                                      (ir.HalfSpace(((0, 1.0),), 0.5, False),), (0, 1)),))
    layer = compile_layer([prop("p", (ir.Order(1, 0, True),), region=region)], net(), GuardOptions(engine=engine))
    x, y = torch.zeros(3, 2), torch.tensor([[1.0, 2.0, 0.0, 0.0]] * 3)
    cases: list[tuple[object, object, str]] = [
        ([[0.0, 0.0]] * 3, y, r"inputs as a torch\.Tensor of shape \(batch, 2\), got list"),
        (np.zeros((3, 2)), y, r"inputs as a torch\.Tensor of shape \(batch, 2\), got ndarray"),
        (x, y.numpy(), r"scores as a torch\.Tensor of shape \(batch, 4\), got ndarray"),
        (x.to(torch.float8_e4m3fn), y, r"inputs of dtype torch\.float32, .* got torch\.float8_e4m3fn"),
        (x, y.to(torch.float8_e5m2), r"scores of dtype torch\.float32, .* got torch\.float8_e5m2"),
        (x.to("meta"), y.to("meta"), r"the inputs are on meta, the guard on cpu: move them with x\.to\('cpu'\)"),
        (x, y.to("meta"), r"the scores are on meta, the guard on cpu: move them with y\.to\('cpu'\)"),
    ]
    for xs, ys, message in cases:
        for call in (layer, layer.explain, layer.active):
            with pytest.raises(UsageError, match=message):
                call(xs, ys)
    for ys, message in ((y.numpy(), "got ndarray"), (y[0], r"shape \(batch, 4\), got torch\.float32 \[4\]"),
                        (y.to("meta"), "the scores are on meta")):
        with pytest.raises(UsageError, match=message):
            layer.satisfied(ys)  # type: ignore[arg-type]
    guarded = compile_guard(layer.properties, torch.nn.Linear(2, 4), net())
    for bad, message in ((x.to("meta"), "the inputs are on meta"), (x.double()[:, :1], r"got torch\.float64 \[3, 1\]"),
                         (x.to(torch.float8_e4m3fn), "got torch.float8_e4m3fn"), ([[0.0, 0.0]], "got list")):
        with pytest.raises(UsageError, match=message):
            guarded(bad)
        with pytest.raises(UsageError, match=message):
            guarded.predict(bad)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):  # every float dtype the shift is exact in
        out = layer(x.to(dtype), y.to(dtype))
        assert out.dtype == dtype and out.shape == (3, 5)


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize("decide", list(ir.Decide))
def test_abstains_with_a_bottom_score_only_when_unsatisfiable(decide: ir.Decide) -> None:
    box = ir.Box((0.0, -math.inf), (math.inf, math.inf), (False, False), (False, False))
    down = prop("down", (ir.Order(1, 0, True),), region=ir.Region((ir.RegionPart(box),)))
    props = [prop("up", (ir.Order(0, 1, True),)), down]
    layer = compile_layer(props, net(decide=decide))
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    y = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]])
    result = layer.explain(x, y)
    assert result.reason.tolist() == [Reason.UNSATISFIABLE, Reason.RERANKED]  # atoms compare raw scores
    assert result.abstained.tolist() == [True, False]
    out = layer(x, y)
    assert out.shape == (2, 5)
    best = out.argmax(dim=1) if decide is ir.Decide.ARGMAX else out.argmin(dim=1)
    assert best[0] == 4 and best[1] != 4  # the bottom score is the decision exactly when abstaining
    assert torch.equal(out[0, :4], y[0])  # the model's own scores, untouched


def test_cap_is_not_claimed_unsatisfiable() -> None:
    p = prop("p", (ir.Order(0, 1, True),), (ir.Order(2, 3, True),))
    q = prop("q", (ir.Order(1, 0, True),), (ir.Order(3, 2, True),))  # the first combination is a cycle
    y, x = torch.tensor([[0.0, 1.0, 2.0, 3.0]]), torch.zeros(1, 2)
    capped = compile_layer([p, q], net(), GuardOptions(max_combinations=1, engine="greedy"))
    assert capped.explain(x, y).reason.tolist() == [Reason.CAP]
    assert compile_layer([p, q], net(), GuardOptions(engine="greedy")).explain(x, y).reason.tolist() == [Reason.RERANKED]
    assert compile_layer([p, q], net(), GuardOptions(engine="table")).explain(x, y).reason.tolist() == [Reason.RERANKED]
    tie = prop("tie", (ir.Order(0, 1, False), ir.Order(1, 0, False)))  # y0 = y1: satisfiable, with a tie
    apart = prop("apart", (ir.Order(0, 1, True),), (ir.Order(1, 0, True),))
    for engine in ("greedy", "table"):
        tied = compile_layer([tie], net(), GuardOptions(engine=engine)).explain(x, y)
        assert tied.reason.tolist() == [Reason.RERANKED] and tied.scores[0, 0] == tied.scores[0, 1]
        both = compile_layer([tie, apart], net(), GuardOptions(engine=engine))
        assert both.explain(x, y).reason.tolist() == [Reason.UNSATISFIABLE]
    cyclic = prop("cyclic", (ir.Order(0, 1, True), ir.Order(1, 0, False)))  # kept: active means unsatisfiable
    assert compile_layer([cyclic], net()).explain(x, y).reason.tolist() == [Reason.UNSATISFIABLE]


def test_non_finite_scores_abstain_only_when_they_must_be_reranked() -> None:
    layer = compile_layer([prop("p", (ir.Order(0, 1, True),))], net())
    y = torch.tensor([[math.inf, 0.0, 1.0, 2.0], [math.nan, 0.0, 1.0, 2.0], [0.0, 1.0, math.inf, 2.0]])
    result = layer.explain(torch.zeros(3, 2), y)
    assert result.reason.tolist() == [Reason.UNCHANGED, Reason.NONFINITE, Reason.NONFINITE]


@pytest.mark.parametrize("decide", list(ir.Decide))
def test_an_abstention_is_the_only_decision_even_over_nan_and_infinite_scores(decide: ir.Decide) -> None:
    # torch.argmax takes a NaN as the largest value, and +inf would tie the +inf bottom score
    argmin = decide is ir.Decide.ARGMIN
    layer = compile_layer([prop("p", (ir.Order(3, 0, True),))], net(decide=decide))
    near = -math.inf if argmin else math.inf
    y = torch.tensor([[math.nan, 0.0, 1.0, 2.0], [near, 1.0, 2.0, near], [1.0, -near, near, math.nan]])
    result = layer.explain(torch.zeros(3, 2), y)
    assert result.abstained.tolist() == [True, True, True]
    out = layer(torch.zeros(3, 2), y)
    best = out.argmin(dim=1) if argmin else out.argmax(dim=1)
    assert best.tolist() == [4, 4, 4]
    assert not out.isnan().any()
    top = -torch.finfo(torch.float32).max if argmin else torch.finfo(torch.float32).max
    assert out[1, :4].tolist() == [top, 1.0, 2.0, top]  # the rest are the model's own scores
    assert out[2, :4].tolist() == [1.0, -near, top, -near]


def test_halfspace_boundary_is_exact_for_strict_and_non_strict() -> None:
    for strict in (False, True):
        half = ir.HalfSpace(((0, 0.1), (1, 0.2)), 0.30000000000000004, strict)  # 0.1 + 0.2 in float64
        region = ir.Region((ir.RegionPart(ir.Box.unbounded(2), (half,)),))
        layer = compile_layer([prop("p", (ir.Order(0, 1, True),), region=region)], net())
        x = torch.tensor([[1.0, 1.0], [1.0, 1.0000001]], dtype=torch.float64)
        expected = semantics.in_part(region.parts[0], x)
        assert layer.active(x, torch.zeros(2, 4, dtype=torch.float64))[:, 0].tolist() == expected.tolist()


# ---------------------------------------------------------------- exports and checkpoints


def acas_guard(number: str = "1_9", props: tuple[int, ...] = (3, 4, 7)) -> tuple[torch.nn.Module, torch.Tensor]:
    loaded = spec.load_file(ACAS)
    model = random_mlp(7, 5, [16, 16], 5, scale=3.0)
    with torch.no_grad():
        model[-1].bias[4] -= 1.75  # SR often the advisory (lowest): phi7 needs the guard
    guarded = compile_guard([loaded.property(f"phi{i}") for i in props], model, loaded.network("acas"))
    box = loaded.property("phi3").region.parts[0].box
    gen = torch.Generator().manual_seed(0)
    lo, hi = torch.tensor(box.lower), torch.tensor(box.upper)
    inside = (lo + (hi - lo) * torch.rand(40, 5, generator=gen, dtype=torch.float64)).float()
    anywhere = torch.rand(40, 5, generator=gen) - 0.5
    return guarded, torch.cat([inside, anywhere])


def test_guarded_acas_model_exports_with_torch_export() -> None:
    guarded, x = acas_guard()
    reasons = guarded.explain(x).reason
    assert (reasons == Reason.RERANKED).any() and (reasons == Reason.UNCHANGED).any()
    exported = torch.export.export(guarded, (x[:8],), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    assert torch.equal(exported.module()(x), guarded(x))
    batch = torch.export.Dim("batch")
    y = torch.randn(80, 5)  # random scores: many re-rankings
    layer = torch.export.export(guarded.guard, (x[:8], y[:8]), dynamic_shapes={"x": {0: batch}, "y": {0: batch}})
    assert (guarded.guard.explain(x, y).reason == Reason.RERANKED).sum() > 20
    assert torch.equal(layer.module()(x, y), guarded.guard(x, y))


def test_guard_layer_exports_to_onnx_and_runs_bit_for_bit(tmp_path: Path) -> None:
    guarded, x = acas_guard()
    layer = guarded.guard
    y = guarded.model(x).detach()
    path = tmp_path / "guard.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns that it is deprecated
        torch.onnx.export(layer, (x[:8], y[:8]), path, dynamo=False, input_names=["x", "y"], output_names=["out"],
                          dynamic_axes={"x": {0: "b"}, "y": {0: "b"}, "out": {0: "b"}})
    run = ReferenceEvaluator(str(path))
    for scores in (y, torch.randn(80, 5)):  # random scores: many re-rankings
        got = run.run(None, {"x": x.numpy(), "y": scores.numpy()})[0]
        np.testing.assert_array_equal(got, layer(x, scores).numpy())
    full = tmp_path / "guarded.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(guarded, (x[:8],), full, dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "b"}})
    assert run.run(None, {"x": x.numpy(), "y": y.numpy()})[0].shape == (80, 6)
    assert ReferenceEvaluator(str(full)).run(None, {"x": x.numpy()})[0].shape == (80, 6)


def test_checkpoint_reloads_with_weights_only(tmp_path: Path) -> None:
    guarded, x = acas_guard()
    path = tmp_path / "guarded.pt"
    save_guard(guarded, path)
    data = torch.load(path, weights_only=True)
    assert data["format"] == "certspec-guard" and [p["name"] for p in data["properties"]] == ["phi3", "phi4", "phi7"]
    again = load_guard(path)
    assert torch.equal(again(x), guarded(x))
    assert again.guard.names == guarded.guard.names


def test_bad_checkpoints_are_model_errors(tmp_path: Path) -> None:
    guarded, _ = acas_guard()
    path = tmp_path / "g.pt"
    save_guard(guarded, path)
    data = torch.load(path, weights_only=True)
    data["properties"][0]["region"]["parts"][0]["box"]["lower"] = ["x"] * 5
    torch.save(data, path)
    with pytest.raises(ModelError, match=r"g\.pt: expected a number, got 'x'"):
        load_guard(path)
    path.write_bytes(pickle.dumps(object()))
    with pytest.raises(ModelError, match="not a readable guard checkpoint"):
        load_guard(path)
    torch.save({"format": "other"}, path)
    with pytest.raises(ModelError, match="not a certspec guard checkpoint"):
        load_guard(path)
    with pytest.raises(ModelError, match="no such file"):
        load_guard(tmp_path / "missing.pt")


def test_a_model_that_cannot_be_saved_is_a_model_error(tmp_path: Path) -> None:
    layer = compile_layer([prop("p", (ir.Order(0, 1, True),))], net())
    with pytest.raises(ModelError, match="cannot be saved"):
        save_guard(compile_guard(layer.properties, torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh()), net()),
                   tmp_path / "g.pt")
    model = random_mlp(1, 2, [8], 4)
    save_model(model, (2,), tmp_path / "m.pt")
    save_guard(compile_guard(layer.properties, model, net()), tmp_path / "g.pt")
    x = torch.randn(9, 2)
    assert torch.equal(load_guard(tmp_path / "g.pt")(x), compile_guard(layer.properties, model, net())(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_gives_the_cpu_result() -> None:  # pragma: no cover - runs where a GPU is present
    guarded, x = acas_guard()
    y = torch.randn(80, 5)
    expected = guarded.guard(x, y)
    assert torch.equal(guarded.guard.to("cuda")(x.cuda(), y.cuda()).cpu(), expected)


# ---------------------------------------------------------------- the command line


def test_cli_guard_writes_a_loadable_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "acas.pt"
    save_model(random_mlp(3, 5, [16], 5), (5,), model)
    out = tmp_path / "guarded.pt"
    args = ["guard", str(ACAS), "--model", f"acas={model}", "-o", str(out), "--json"]
    assert main([*args, *(f"--property=phi{i}" for i in range(2, 11))]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["guarded"] == [f"phi{i}" for i in range(2, 11)]
    guarded = load_guard(out)
    assert guarded(torch.zeros(2, 5)).shape == (2, 6)


def test_cli_guard_rejects_an_unenforceable_property_with_its_location(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "acas.pt"
    save_model(random_mlp(3, 5, [16], 5), (5,), model)
    assert main(["guard", str(ACAS), "--model", f"acas={model}", "-o", str(tmp_path / "g.pt")]) == 2
    err = capsys.readouterr().err
    assert "acasxu.prop:30:11: property phi1:" in err and "require COC < 1500\n          ^~~~~~~~~~" in err
    assert "Traceback" not in err and not (tmp_path / "g.pt").exists()
    assert main(["guard", str(ACAS), "--model", f"N2_1={model}", "-o", str(tmp_path / "g.pt")]) == 2
    assert "has no network 'N2_1'" in capsys.readouterr().err
