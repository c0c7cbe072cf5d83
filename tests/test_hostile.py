"""Hostile and unusual input (issue 14, "then go further"): every outcome is a clear error or a checked answer.

Seeded fuzzers over every kind of file certspec reads and every tensor a guard takes:

- `.prop` files: token-level and semantic mutations (extreme numbers, strict/non-strict swaps,
  duplicated and removed clauses, huge shapes and indices, deep nesting, control characters,
  long identifiers) through `spec.load` and `certspec show/check/fmt/export`; generated
  properties whose meaning is known, compared with the IR point by point and verified on a
  small model (witnesses replayed, HOLDS refuted by sampling where possible);
- VNN-LIB files: token-level mutations (numbers, operators, parentheses, declarations,
  comments ended by odd line-break characters, huge indices) through `load_vnnlib` and
  `certspec show`, compared with an independent reader of the file; `certspec vnnlib` on
  small ONNX networks, sat witnesses replayed with `onnx.reference`;
- ONNX models: valid small graphs built with onnx.helper, then broken (dims, dtypes,
  initializers, cycles, duplicate names, unknown operators, absurd attributes, external data,
  corrupt bytes); a model that loads must agree with `onnx.reference`; `certspec verify`;
- checkpoints: truncated and random bytes, pickles whose `__reduce__` would create a file,
  wrong format dicts, non-tensor entries, huge declared shapes;
- guard scores: NaN, +-inf, FLT_MAX, subnormals, -0.0, ties, every float dtype; each output row
  meets every active requirement exactly (checked here, in rationals) or the guard abstains;
  wrong dtypes and ranks are a UsageError.

Outcome counts (tried / clear errors / answers checked) are written to
`hostile-counts.json` under pytest's base temporary directory and printed by the last test.
The fast part runs in the normal suite; `@pytest.mark.slow` runs more seeds.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import hostile as H
from conftest import SHARED_DATA
import numpy as np
import onnx
import pytest
import torch
from hostile import Findings, Mismatch, attempt, cli, cli_check
from onnx import numpy_helper

import spec
from spec import ir
from spec.errors import VnnlibError
from spec.irjson import spec_data
from spec.vnnlib import dump_vnnlib, load_vnnlib

ROOT = Path(__file__).resolve().parents[1]
SHARED = SHARED_DATA  # the shared VNN-COMP files seed the VNN-LIB corpus when present
HUGE = 20_000  # inputs: above this a loaded spec gets only the checks whose cost does not grow with its size


# ================================================================ .prop files


def _same_meaning(a: ir.Property, b: ir.Property, n: int, m: int, rng: random.Random) -> str | None:
    """Where two properties differ at a sample point (None: no difference found)."""
    numbers = H.ir_numbers((a.region, b.region))
    cands = [H.neighbours(numbers)] * n if n <= 64 else [[0.0, 1.0]] * n
    preds = range(m) if any(p.predicted is not None for p in (*a.region.parts, *b.region.parts)) else [None]
    for x in H.sample_points(rng, cands, 150):
        for pred in preds:
            if H.ir_in_region(a.region, x, pred) != H.ir_in_region(b.region, x, pred):
                return f"region differs at x={x} predicted={pred}"
    if isinstance(a.requirement, ir.Ordering) and isinstance(b.requirement, ir.Ordering):
        ycands = [H.neighbours(H.ir_numbers((a.requirement, b.requirement)))] * m
        for y in H.sample_points(rng, ycands, 150):
            if H.ir_holds(a.requirement, y) != H.ir_holds(b.requirement, y):
                return f"requirement differs at y={y}"
    elif a.requirement != b.requirement:
        return "robust requirements differ"
    return None


def check_loaded_prop(text: str, loaded: ir.Spec, rng: random.Random) -> None:
    """A .prop file that loads: no NaN in the IR, JSON without NaN, fmt and export round trips."""
    if max((n.n_inputs for n in loaded.networks), default=0) > HUGE:
        return  # a huge network (it loaded in time): the checks would only repeat the same slow work
    if H.nan_inside(loaded):
        raise Mismatch("the IR holds a NaN", "")
    try:
        json.dumps(spec_data(loaded), allow_nan=False)
    except ValueError as err:
        raise Mismatch("the IR's JSON data holds NaN or an infinity", str(err)) from None
    pretty = spec.pretty(spec.parse(text, "m.prop"))
    again = spec.load(pretty, "fmt.prop")
    if again != loaded:
        raise Mismatch("fmt output loads to a different IR", pretty[:600])
    for prop in loaded.properties[:4]:
        if not isinstance(prop.requirement, ir.Ordering):
            continue
        net = loaded.network(prop.target)
        try:
            exported = dump_vnnlib(prop, net)
        except VnnlibError:
            continue
        back = load_vnnlib(exported, "export.vnnlib", network=net).properties[0]
        if (back.region, back.requirement) != (prop.region, prop.requirement):
            where = _same_meaning(prop, back, net.n_inputs, net.n_outputs, rng)
            if where:
                raise Mismatch("export then VNN-LIB import changes the property's meaning", f"{prop.name}: {where}")


def _cli_prop_answers(path: Path, loaded_names: list[str] | None,
                      huge: bool = False) -> list[tuple[list[str], Sequence[int], Callable[..., None]]]:
    """The commands to run on a mutated file; on a huge network (`huge`) only those whose output does not grow
    with the inputs (`show` lists, and `show --json` and `export` write, every input's bounds: 400 MB for 10**6)."""
    def show_json(code: int, out: str, err: str) -> None:
        H.strict_json(out)

    def fmt(code: int, out: str, err: str) -> None:
        spec.load(out, "fmt.prop")

    def export(code: int, out: str, err: str) -> None:
        load_vnnlib(out, "exported.vnnlib")

    def nothing(code: int, out: str, err: str) -> None:
        pass

    p = str(path)
    runs: list[tuple[list[str], Sequence[int], Callable[..., None]]] = [(["check", p], [0], nothing), (["fmt", p], [0], fmt)]
    if huge:
        return runs
    runs += [(["show", p], [0], nothing), (["show", p, "--json"], [0], show_json)]
    for name in (loaded_names or [])[:2]:
        runs.append((["export", p, "--property", name], [0], export))
    return runs


def run_prop_mutations(seed: int, count: int, tmp_path: Path, cli_share: float = 0.1) -> Findings:
    findings, cli_findings = Findings("prop mutations (spec.load)"), Findings("prop mutations (CLI)")
    rng = random.Random(seed)
    corpus = H.prop_corpus()
    for k in range(count):
        text, what = H.mutate_prop(rng, rng.choice(corpus))
        example = f"[{what}] {text!r}"
        loaded = attempt(findings, example, lambda t=text: spec.load(t, "m.prop"),
                         lambda s, t=text: check_loaded_prop(t, s, rng))
        if rng.random() < cli_share:
            path = tmp_path / f"m{seed}_{k}.prop"
            path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
            names = [p.name for p in loaded.properties if isinstance(p.requirement, ir.Ordering)] if loaded else None
            huge = loaded is not None and max((n.n_inputs for n in loaded.networks), default=0) > HUGE
            for argv, allowed, answer in _cli_prop_answers(path, names, huge):
                attempt(cli_findings, f"certspec {' '.join(argv[:1] + argv[2:])} on {example}",
                        lambda a=argv: cli(a), cli_check(allowed, answer))
    findings.absorb(cli_findings, "CLI")
    return findings


def test_prop_mutations(tmp_path: Path) -> None:
    run_prop_mutations(0, 300, tmp_path).assert_none()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 103))
def test_prop_mutations_slow(seed: int, tmp_path: Path) -> None:
    run_prop_mutations(seed, 1000, tmp_path).assert_none()


# ---------------------------------------------------------------- properties with a known meaning


def _both(gen: H.PropGen, f: Callable[[], bool]) -> tuple[bool, bool]:
    """The meaning under both readings of a literal in a one-term constraint (as a double, as written)."""
    gen.reading = "double"
    a = f()
    gen.reading = "decimal"
    b = f()
    gen.reading = "double"
    return a, b


def check_meaning(gen: H.PropGen, props: dict[str, Any], in_domain: Callable[..., bool], loaded: ir.Spec,
                  rng: random.Random, points: int) -> None:
    """The IR means what the text says, at float32 points on and next to every face."""
    names = {p.name for p in loaded.properties}
    if names != set(props):
        raise Mismatch("the IR's properties are not the file's", f"{sorted(names)} vs {sorted(props)}")
    for prop in loaded.properties:
        when, req = props[prop.name]
        numbers = gen.domain_numbers + (when.numbers if when else [])
        cands = [H.neighbours(numbers, float64=False)] * gen.n
        preds = range(gen.m) if when and "predicted" in when.text else [0]
        for x in H.sample_points(rng, cands, points):
            for pred in preds:
                mine = _both(gen, lambda x=x, pred=pred, w=when: in_domain(x) and (w is None or w.meaning(x, pred)))
                theirs = H.ir_in_region(prop.region, x, pred)
                if theirs not in mine:
                    raise Mismatch(f"region point {'in' if theirs else 'out of'} the IR but not in the text",
                                   f"{prop.name}: x={x} predicted={pred} text says {mine[0]}; IR {prop.region}")
        ycands = [H.neighbours(req.numbers, float64=False)] * gen.m
        for y in H.sample_points(rng, ycands, points):
            mine = _both(gen, lambda y=y, r=req: r.meaning(y))
            theirs = H.ir_holds(prop.requirement, y)
            if theirs not in mine:
                raise Mismatch(f"requirement {'met' if theirs else 'not met'} in the IR but not in the text",
                               f"{prop.name}: y={y} text says {mine[0]}; IR {prop.requirement}")


def run_prop_meaning(seed: int, count: int, points: int) -> Findings:
    findings = Findings("prop meaning (generated)")
    rng = random.Random(seed)
    for _ in range(count):
        gen = H.PropGen(rng, n=rng.choice([1, 2, 3]), m=rng.choice([2, 3, 4]))
        text, props, in_domain = gen.spec(rng.randint(1, 3))
        attempt(findings, text, lambda t=text: spec.load(t, "gen.prop"),
                lambda s, g=gen, p=props, d=in_domain: check_meaning(g, p, d, s, rng, points))
    return findings


def test_generated_properties_mean_what_they_say() -> None:
    run_prop_meaning(0, 80, 60).assert_none()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 103))
def test_generated_properties_mean_what_they_say_slow(seed: int) -> None:
    run_prop_meaning(seed, 300, 150).assert_none()


# ---------------------------------------------------------------- verify on generated properties


def _model_scores(model: torch.nn.Module, xs: list[list[float]]) -> list[list[float]]:
    with torch.no_grad():
        return model(torch.tensor(xs, dtype=torch.float32)).tolist()


def _expected_status(statuses: list[str]) -> int:
    if "VIOLATED" in statuses:
        return 1
    return 0 if all(s == "HOLDS" for s in statuses) else 3


def check_verdicts(gen: H.PropGen, props: dict[str, Any], in_domain: Callable[..., bool], model: torch.nn.Module,
                   code: int, out: str, rng: random.Random) -> None:
    """Each VIOLATED witness lies in the region as written and violates as written; no sampled point of the
    region refutes a HOLDS; every UNKNOWN says why."""
    results = H.strict_json(out)
    for r in results:
        H.ERRORS[("answers", "certspec verify", r["status"] + " " + re.sub(r"[\d.e+-]+", "N", r["reason"] or "")[:60])] += 1
    if code != _expected_status([r["status"] for r in results]):
        raise Mismatch("verify's exit status does not match its verdicts", out[:300])
    for r in results:
        when, req = props[r["property"]]
        if r["status"] == "VIOLATED":
            w = r["witness"]
            x, y = w["x"], w["y"]
            if any(not isinstance(v, float) or float(np.float32(v)) != v for v in x):
                raise Mismatch("a witness input is not float32", str(x))
            if not all(isinstance(v, float) and math.isfinite(v) for v in y):
                raise Mismatch("a VIOLATED witness has non-finite scores", f"{r['property']}: y={y}")
            pred = H.decision(y, gen.argmin)
            inside = _both(gen, lambda x=x, w=when, pred=pred: in_domain(x) and (w is None or w.meaning(x, pred)))
            if not any(inside):
                raise Mismatch("a VIOLATED witness lies outside the region as written", f"{r['property']}: x={x}")
            if all(_both(gen, lambda r=req, y=y: r.meaning(y))):
                raise Mismatch("a VIOLATED witness meets the requirement as written", f"{r['property']}: y={y}")
            replay = _model_scores(model, [x])[0]
            if not np.allclose(replay, y, rtol=1e-5, atol=1e-6 * max(1.0, max(map(abs, y)))):
                raise Mismatch("a witness's scores are not the model's", f"{r['property']}: {y} vs {replay}")
        elif r["status"] == "HOLDS":
            numbers = gen.domain_numbers + (when.numbers if when else [])
            cands = [[v for v in H.neighbours(numbers, float64=False) if abs(v) < 1e6]] * gen.n
            xs = H.sample_points(rng, cands, 300)
            for x, y in zip(xs, _model_scores(model, xs), strict=True):
                pred = H.decision(y, gen.argmin)
                inside = _both(gen, lambda x=x, w=when, pred=pred: in_domain(x) and (w is None or w.meaning(x, pred)))
                if all(inside) and all(math.isfinite(v) for v in y) and not any(_both(gen, lambda r=req, y=y: r.meaning(y))):
                    raise Mismatch("HOLDS, but a sampled point of the region violates the property",
                                   f"{r['property']}: x={x} y={y}")
        elif not r["reason"]:
            raise Mismatch(f"{r['status']} without a reason", str(r))


def run_prop_verify(seed: int, count: int, tmp_path: Path) -> Findings:
    from checkers.models import save_model
    from nets import random_mlp

    findings = Findings("verify on generated properties (CLI)")
    rng = random.Random(seed)
    for k in range(count):
        gen = H.PropGen(rng, n=2, m=3, hostile=0.15, bounded=True)
        text, props, in_domain = gen.spec(rng.randint(1, 3))
        scale = rng.choice([1.0, 1.0, 4.0, 1e-3, 1e3])
        model = random_mlp(rng.randrange(10**6), 2, [rng.choice([4, 8])], 3, scale=scale)
        spec_path, model_path = tmp_path / f"g{k}.prop", tmp_path / f"g{k}.pt"
        spec_path.write_text(text)
        save_model(model, (2,), model_path)
        argv = ["verify", str(spec_path), "--model", str(model_path), "--json", "--timeout", "2"]

        def answer(code: int, out: str, err: str, g: H.PropGen = gen, p: dict[str, Any] = props,
                   d: Callable[..., bool] = in_domain, mdl: torch.nn.Module = model) -> None:
            check_verdicts(g, p, d, mdl, code, out, rng)

        attempt(findings, f"scale {scale}: {text}", lambda a=argv: cli(a), cli_check([0, 1, 3], answer), seconds=30)
    return findings


def test_verify_on_generated_properties(tmp_path: Path) -> None:
    run_prop_verify(0, 15, tmp_path).assert_none()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 103))
def test_verify_on_generated_properties_slow(seed: int, tmp_path: Path) -> None:
    run_prop_verify(seed, 50, tmp_path).assert_none()


# ================================================================ VNN-LIB files


def vnnlib_corpus(rng: random.Random, generated: int = 12) -> list[str]:
    texts = [H.vnnlib_text(rng, rng.choice([1, 2, 3, 5]), rng.choice([2, 3, 5])) for _ in range(generated)]
    for path in sorted((SHARED / "acasxu").glob("prop_*.vnnlib")):
        texts.append(path.read_text())
    mnist = SHARED / "mnistfc" / "prop_0_0.03.vnnlib"
    if mnist.exists():
        texts.append(mnist.read_text())
    return texts


def _vnn_points(oracle: H.VnnOracle, rng: random.Random, count: int) -> list[tuple[list[float], list[float]]]:
    faces = H.vnn_var_numbers(oracle)
    everywhere = H.neighbours([q for qs in faces.values() for q in qs][:40])
    xc = [H.neighbours(faces.get(("X", i), [])) or everywhere for i in range(oracle.n)]
    yc = [H.neighbours(faces.get(("Y", j), []) + faces.get(("Y", -1), [])) + everywhere for j in range(oracle.m)]
    xs = H.sample_points(rng, xc, count)
    ys = H.sample_points(rng, yc, count)
    # ties and near-ties between scores, where orderings are decided
    for y in ys[: count // 3]:
        a, b = rng.randrange(oracle.m), rng.randrange(oracle.m)
        y[a] = y[b] if rng.random() < 0.5 else math.nextafter(y[b], rng.choice([math.inf, -math.inf]))
    return list(zip(xs, ys, strict=True))


def check_vnnlib_meaning(text: str, loaded: ir.Spec, rng: random.Random, points: int) -> None:
    """The IR (region and NOT requirement) is violated exactly where the file's asserts all hold."""
    try:
        oracle = H.VnnOracle(text)
    except H.Refused as why:
        raise Mismatch(f"loaded a file outside VNN-LIB as documented ({why})", "") from None
    except RecursionError:
        return  # too deep for the oracle's own reader: nothing to compare with
    net, prop = loaded.networks[0], loaded.properties[0]
    if (net.n_inputs, net.n_outputs) != (oracle.n, oracle.m):
        raise Mismatch("the network's sizes are not the file's declarations",
                       f"{net.n_inputs}, {net.n_outputs} vs {oracle.n}, {oracle.m}")
    assert isinstance(prop.requirement, ir.Ordering)
    count = points if oracle.n <= 16 else max(8, points // 10)
    for x, y in _vnn_points(oracle, rng, count):
        theirs = H.ir_in_region(prop.region, x) and not H.ir_holds(prop.requirement, y)
        try:
            mine = oracle.violated(x, y)
        except RecursionError:
            return
        if mine != theirs:
            raise Mismatch(f"the IR {'is' if theirs else 'is not'} violated where the file's asserts "
                           f"{'do not all hold' if theirs else 'all hold'}",
                           f"x={x[:8]} y={y}; region {H.ir_in_region(prop.region, x)}, requirement "
                           f"{H.ir_holds(prop.requirement, y)}")


def run_vnnlib_mutations(seed: int, count: int, tmp_path: Path, points: int = 60, cli_share: float = 0.1) -> Findings:
    findings = Findings("VNN-LIB mutations (load_vnnlib)")
    cli_findings = Findings("VNN-LIB mutations (CLI show)")
    rng = random.Random(seed)
    corpus = vnnlib_corpus(rng)
    for k in range(count):
        base = rng.choice(corpus)
        text, what = H.mutate_vnnlib(rng, base) if rng.random() < 0.9 else (base, "none")
        example = f"[{what}] {text!r}"
        attempt(findings, example, lambda t=text: load_vnnlib(t, "m.vnnlib"),
                lambda s, t=text: check_vnnlib_meaning(t, s, rng, points))
        if rng.random() < cli_share:
            path = tmp_path / f"m{seed}_{k}.vnnlib"
            path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
            for argv, answer in ((["show", str(path)], lambda *a: None),
                                 (["show", str(path), "--json"], lambda c, out, e: H.strict_json(out))):
                attempt(cli_findings, f"certspec {' '.join(argv[:1] + argv[2:])} on {example}",
                        lambda a=argv: cli(a), cli_check([0], answer))
    findings.absorb(cli_findings, "CLI")
    return findings


def test_vnnlib_mutations(tmp_path: Path) -> None:
    run_vnnlib_mutations(0, 250, tmp_path).assert_none()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 103))
def test_vnnlib_mutations_slow(seed: int, tmp_path: Path) -> None:
    run_vnnlib_mutations(seed, 1000, tmp_path, points=150).assert_none()


# ---------------------------------------------------------------- certspec vnnlib on small ONNX networks

_PAIR = re.compile(r"\((X|Y)_(\d+) ([^()\s]+)\)")


def check_vnnlib_answer(text: str, model: onnx.ModelProto, onnx_path: Path, out: str, rng: random.Random) -> None:
    """sat: the witness meets every assert as written, with finite scores the network really computes;
    unsat: no sampled point of the region violates (on both onnx.reference and the imported module)."""
    from checkers.models import load_model

    lines = out.split("\n")
    answer = lines[0].strip()
    if answer not in ("sat", "unsat", "unknown", "timeout"):
        raise Mismatch(f"certspec vnnlib answered {answer[:30]!r}", out[:300])
    oracle = H.VnnOracle(text)
    H.ERRORS[("answers", "certspec vnnlib", answer)] += 1
    if answer == "sat":
        values: dict[str, dict[int, float]] = {"X": {}, "Y": {}}
        for kind, idx, v in _PAIR.findall(out):
            values[kind][int(idx)] = float(v)
        x = [values["X"].get(i, math.nan) for i in range(oracle.n)]
        y = [values["Y"].get(j, math.nan) for j in range(oracle.m)]
        if not all(math.isfinite(v) for v in x + y):
            raise Mismatch("a sat witness holds a non-finite (or missing) value", out[:400])
        if not oracle.violated(x, y):
            raise Mismatch("a sat witness does not meet the file's asserts", f"x={x} y={y}")
        ref = H.onnx_reference(model, np.array([x], dtype=np.float32))[0]
        if not np.allclose(ref, y, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max()))):
            raise Mismatch("a sat witness's scores are not the network's (onnx.reference)", f"{y} vs {ref.tolist()}")
    elif answer == "unsat":
        inside = [x for x, _ in _vnn_points(oracle, rng, 400) if oracle.x_holds(x)]
        if not inside:
            return
        ref = H.onnx_reference(model, np.array(inside, dtype=np.float32))
        with torch.no_grad():
            ours = load_model(onnx_path)(torch.tensor(inside, dtype=torch.float32)).double().numpy()
        for x, y1, y2 in zip(inside, ref.tolist(), ours.tolist(), strict=True):
            if oracle.violated(x, y1) and oracle.violated(x, y2):
                raise Mismatch("unsat, but a sampled point of the region violates", f"x={x} y={y1}")


def run_vnnlib_cli(seed: int, count: int, tmp_path: Path) -> Findings:
    findings = Findings("certspec vnnlib on ONNX")
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    for k in range(count):
        n, m = rng.choice([1, 2, 3]), rng.choice([2, 3])
        text = H.vnnlib_text(rng, n, m)
        if rng.random() < 0.5:
            text, _ = H.mutate_vnnlib(rng, text)
        scale = rng.choice([1.0, 1.0, 10.0, 1e-3, 1e18])
        model = H.onnx_mlp(nrng, n, rng.choice([3, 8]), m, scale=scale)
        if rng.random() < 0.15:  # a non-finite weight (issue 14, points 3 and 4)
            t = model.graph.initializer[rng.randrange(4)]
            a = numpy_helper.to_array(t).copy()
            a.flat[0] = rng.choice([math.nan, math.inf, -math.inf, H.FLT_MAX])
            t.CopyFrom(numpy_helper.from_array(a, t.name))
        onnx_path, vnn_path = tmp_path / f"n{k}.onnx", tmp_path / f"p{k}.vnnlib"
        onnx.save(model, str(onnx_path))
        vnn_path.write_text(text)
        argv = ["vnnlib", str(onnx_path), str(vnn_path), "--timeout", "3"]

        def answer(code: int, out: str, err: str, t: str = text, mdl: onnx.ModelProto = model, p: Path = onnx_path) -> None:
            check_vnnlib_answer(t, mdl, p, out, rng)

        attempt(findings, f"scale {scale}: {text!r}", lambda a=argv: cli(a), cli_check([0], answer), seconds=30)
    return findings


def test_vnnlib_command_on_onnx(tmp_path: Path) -> None:
    run_vnnlib_cli(0, 20, tmp_path).assert_none()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 103))
def test_vnnlib_command_on_onnx_slow(seed: int, tmp_path: Path) -> None:
    run_vnnlib_cli(seed, 50, tmp_path).assert_none()


# ================================================================ ONNX models


class ForbiddenRead(Exception):
    """The importer opened a file other than the model (external data must never be read)."""


def _load_watched(path: Path, folder: Path) -> Any:
    from checkers.models import open_model

    forbidden = {"/etc/passwd", "/dev/zero", "/proc/self/environ", str(folder / "sentinel.bin")}
    with H.watch_opens() as seen:
        try:
            return open_model(path)
        finally:
            bad = [p for p in seen if os.path.abspath(p) in forbidden
                   or (os.path.abspath(p).startswith(str(folder)) and os.path.abspath(p) != str(path))]
            if bad:
                raise ForbiddenRead(f"opened {bad[:3]} while loading {path.name}")


def _proto_of(mutated: Any) -> onnx.ModelProto:
    return mutated if isinstance(mutated, onnx.ModelProto) else onnx.load_model_from_string(mutated)


def onnx_invalid(proto: onnx.ModelProto) -> str | None:
    """Why onnx.checker (full check, with shape inference) rejects the model, or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx.checker.check_model(proto, full_check=True)
    except Exception as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    return None


def check_onnx_loaded(mutated: Any, model: Any, rng: np.random.Generator) -> None:
    """A model that loads computes what onnx.reference computes. Where onnx.reference cannot run it, the
    model must at least be valid (onnx.checker): an invalid model with no reference meaning must be refused."""
    proto = _proto_of(mutated)
    default = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if any(node.op_type == "BatchNormalization" for node in proto.graph.node) and min(default, default=0) < 14:
        # onnx.reference's BatchNormalization before opset 14 does not compute the inference formula
        H.ERRORS[("unconfirmed", "onnx.reference", "BatchNormalization before opset 14")] += 1
        return
    n = model.n_inputs
    x = np.concatenate([np.zeros((1, n), np.float32), rng.standard_normal((3, n)).astype(np.float32)])
    with torch.no_grad():
        ours = model.module(torch.from_numpy(x)).double().numpy()
    try:
        ref = H.onnx_reference(proto, x)
    except Exception as err:
        invalid = onnx_invalid(proto)
        if invalid:
            raise Mismatch("loaded a model that onnx.checker rejects and onnx.reference cannot run",
                           f"checker: {invalid}; reference: {type(err).__name__}: {str(err)[:200]}") from None
        H.ERRORS[("unconfirmed", "onnx.reference fails on a valid model", f"{type(err).__name__}: {err}"[:80])] += 1
        return
    problem = None
    if ours.shape != ref.shape:
        problem = f"output size {ours.shape} vs {ref.shape}"
    elif not np.array_equal(np.isnan(ours), np.isnan(ref)):
        problem = f"NaN pattern: {ours[0][:5]} vs {ref[0][:5]}"
    else:
        finite = np.isfinite(ref) & np.isfinite(ours)
        scale = max(1.0, float(np.abs(ref[finite]).max(initial=0)))
        if not np.array_equal(np.isfinite(ref), np.isfinite(ours)) or not np.allclose(
                ours[finite], ref[finite], rtol=1e-4, atol=1e-4 * scale):
            problem = f"{ours[1][:5]} vs {ref[1][:5]}"
    if problem:
        invalid = onnx_invalid(proto)
        what = " (a model onnx.checker rejects)" if invalid else ""
        raise Mismatch(f"the imported model disagrees with onnx.reference{what}", f"{problem}; checker: {invalid}")


TINY_VERIFY = """network n : real[{shape}] -> real[{m}]
  domain x[*] in [-1, 1]
property p: require y[0] above y[1]
property q: require y[0] <= 1000
"""


def check_tiny_verdicts(reference: Any, module: torch.nn.Module, n: int, out: str, code: int,
                        rng: np.random.Generator) -> None:
    """`reference`: the ONNX model (run with onnx.reference) or a function of a float32 batch."""
    results = H.strict_json(out)
    if code != _expected_status([r["status"] for r in results]):
        raise Mismatch("verify's exit status does not match its verdicts", out[:300])

    def violates(name: str, y: Sequence[float]) -> bool:
        return not (y[0] > y[1]) if name == "p" else not (y[0] <= 1000)

    def ref_fn(xs: np.ndarray) -> np.ndarray:
        return reference(xs) if callable(reference) else H.onnx_reference(_proto_of(reference), xs)

    for r in results:
        H.ERRORS[("answers", "verify on a model", r["status"])] += 1
        if r["status"] == "VIOLATED":
            x, y = r["witness"]["x"], r["witness"]["y"]
            if not all(-1 <= v <= 1 and float(np.float32(v)) == v for v in x):
                raise Mismatch("a witness lies outside [-1, 1]^n (or is not float32)", str(x[:8]))
            if not all(math.isfinite(v) for v in y) or not violates(r["property"], y):
                raise Mismatch("a VIOLATED witness does not violate with finite scores", f"{r['property']}: y={y}")
            ref = ref_fn(np.array([x], np.float32))[0]
            if not np.allclose(ref, y, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max()))):
                raise Mismatch("a witness's scores are not the network's (onnx.reference)", f"{y} vs {ref.tolist()}")
        elif r["status"] == "HOLDS":
            xs = rng.uniform(-1, 1, (200, n)).astype(np.float32)
            xs[:8] = np.sign(xs[:8])  # corners
            ref = ref_fn(xs)
            with torch.no_grad():
                ours = module(torch.from_numpy(xs)).double().numpy()
            for a, b in zip(ref.tolist(), ours.tolist(), strict=True):
                if violates(r["property"], a) and violates(r["property"], b) and all(map(math.isfinite, a)):
                    raise Mismatch("HOLDS, but a sampled point violates", f"{r['property']}: y={a}")


def verify_tiny(findings: Findings, example: str, loaded: Any, model: Path, prop: Path, reference: Any,
                rng: np.random.Generator) -> None:
    """`certspec verify` of TINY_VERIFY on a model that loaded, its verdicts checked against `reference`."""
    with torch.no_grad():
        m = int(loaded.module(torch.zeros(1, loaded.n_inputs)).shape[1])
    if m < 2:
        return
    prop.write_text(TINY_VERIFY.format(shape=", ".join(map(str, loaded.input_shape)), m=m))
    argv = ["verify", str(prop), "--model", str(model), "--json", "--timeout", "3"]

    def answer(code: int, out: str, err: str) -> None:
        check_tiny_verdicts(reference, loaded.module, loaded.n_inputs, out, code, rng)

    attempt(findings, f"certspec verify on {example}", lambda: cli(argv), cli_check([0, 1, 3], answer), seconds=30)


def onnx_bases(seed: int) -> list[tuple[str, onnx.ModelProto]]:
    nrng = np.random.default_rng(seed)
    return [("mlp", H.onnx_mlp(nrng, 2, 6, 3)), ("mlp-batch", H.onnx_mlp(nrng, 3, 4, 2, batch="N")),
            ("conv", H.onnx_convnet(nrng)), ("misc", H.onnx_misc(nrng))]


def run_onnx_mutations(seed: int, count: int, tmp_path: Path, verify_share: float = 0.3) -> Findings:
    findings = Findings("ONNX mutations (load_model)")
    verify_findings = Findings("ONNX mutations (certspec verify)")
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    bases = onnx_bases(seed)
    for k in range(count):
        name, base = rng.choice(bases)
        folder = tmp_path / f"c{k}"
        folder.mkdir()
        mutated, what = H.mutate_onnx(rng, base, folder)
        path = folder / "model.onnx"
        path.write_bytes(mutated if isinstance(mutated, bytes) else mutated.SerializeToString())
        example = f"{name}: {what}"
        tag = what.split(":")[0]
        loaded = attempt(findings, example, lambda p=path, f=folder: _load_watched(p, f),
                         lambda mdl, mu=mutated: check_onnx_loaded(mu, mdl, nrng), tag=tag)
        if loaded is not None and rng.random() <= verify_share:
            verify_tiny(verify_findings, example, loaded, path, folder / "tiny.prop", mutated, nrng)
    findings.absorb(verify_findings, "verify")
    return findings


def test_onnx_mutations(tmp_path: Path) -> None:
    run_onnx_mutations(0, 150, tmp_path).assert_none()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 103))
def test_onnx_mutations_slow(seed: int, tmp_path: Path) -> None:
    run_onnx_mutations(seed, 500, tmp_path).assert_none()


def test_onnx_bases_load_and_match_the_reference(tmp_path: Path) -> None:
    """The unmutated graphs the ONNX fuzzer starts from load and agree with onnx.reference."""
    findings = Findings("ONNX bases")
    for name, base in onnx_bases(0):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(base.SerializeToString())
        assert attempt(findings, name, lambda p=path: _load_watched(p, tmp_path),
                       lambda mdl, b=base: check_onnx_loaded(b, mdl, np.random.default_rng(1))) is not None, name
    findings.assert_none()


# ================================================================ checkpoints


class CodeRan(Exception):
    """The sentinel file exists: unpickling a checkpoint ran code."""


def _conv2d(h: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    batch, _, height, width = h.shape
    cout, _, k, _ = w.shape
    hp = np.pad(h, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (height + 2 * pad - k) // stride + 1, (width + 2 * pad - k) // stride + 1
    out = np.zeros((batch, cout, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = hp[:, :, i * stride: i * stride + k, j * stride: j * stride + k]
            out[:, :, i, j] = np.einsum("bckl,ockl->bo", patch, w) + b
    return out


def plain_forward(data: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, float]:
    """The checkpoint format of checkers.models, computed here with numpy (float32 weights, float64 sums),
    and the largest magnitude of any layer's output (beyond float32's range the module's float32 sums differ)."""
    state = {k: v.detach().to(torch.float32).double().numpy() for k, v in data["state_dict"].items()}
    h = x.astype(np.float64).reshape(x.shape[0], *data["input_shape"])
    largest = 0.0
    for k, layer in enumerate(data["layers"]):
        kind = layer[0]
        if kind == "linear":
            h = h @ state[f"{k}.weight"].T + state[f"{k}.bias"]
        elif kind == "relu":
            h = np.maximum(h, 0)
        elif kind == "flatten":
            h = h.reshape(h.shape[0], -1)
        else:
            h = _conv2d(h, state[f"{k}.weight"], state[f"{k}.bias"], layer[4], layer[5])
        largest = max(largest, float(np.abs(h).max(initial=0.0)))
    return h.reshape(h.shape[0], -1), largest


def _weights_finite(module: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point())


def check_checkpoint_loaded(mutated: Any, model: Any, rng: np.random.Generator) -> None:
    """A checkpoint that loads has finite weights (issue 14, point 4), and (plain format) computes what its
    dict describes."""
    if not _weights_finite(model.module):
        raise Mismatch("loaded a checkpoint with non-finite weights", "")
    n = model.n_inputs
    x = rng.standard_normal((3, n)).astype(np.float32)
    with torch.no_grad():
        ours = model.module(torch.from_numpy(x)).double().numpy()
    data = torch.load(io.BytesIO(mutated), weights_only=True) if isinstance(mutated, bytes) else mutated
    if isinstance(data, dict) and "format" not in data:
        ref, largest = plain_forward(data, x)
        if largest > 1e37:  # a float32 sum overflows: the module's inf or NaN is what float32 gives
            return
        if ref.shape != ours.shape or not np.allclose(ours, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max()))):
            raise Mismatch("the loaded checkpoint does not compute what its layers describe", f"{ours[0]} vs {ref[0]}")
    elif ours.ndim != 2 or ours.shape[0] != 3:
        raise Mismatch("a Lipschitz checkpoint does not map (batch, n) to (batch, m)", str(ours.shape))


def _load_checkpoint(path: Path, sentinel: Path, loader: Callable[[Path], Any]) -> Any:
    try:
        return loader(path)
    finally:
        if sentinel.exists():
            sentinel.unlink()
            raise CodeRan(f"loading {path.name} created {sentinel.name}: code in the checkpoint ran")


def checkpoint_bases(seed: int) -> list[tuple[str, dict[str, Any]]]:
    from checkers.models import save_model
    from nets import random_mlp

    with tempfile.TemporaryDirectory() as tmp:
        save_model(random_mlp(seed, 2, [4], 3), (2,), Path(tmp) / "m.pt")
        plain = torch.load(Path(tmp) / "m.pt", weights_only=True)
    conv = {"input_shape": [1, 4, 4], "layers": [["conv2d", 1, 2, 3, 1, 1], ["relu"], ["flatten"], ["linear", 32, 3]],
            "state_dict": {"0.weight": torch.randn(2, 1, 3, 3), "0.bias": torch.randn(2), "3.weight": torch.randn(3, 32),
                           "3.bias": torch.randn(3)}}
    bases = [("plain", plain), ("conv", conv)]
    lipschitz = ROOT / "examples" / "cascade" / "a.pt"
    if lipschitz.exists():
        bases.append(("lipschitz", torch.load(lipschitz, weights_only=True)))
    return bases


def run_checkpoint_mutations(seed: int, count: int, tmp_path: Path, verify_share: float = 0.3) -> Findings:
    from checkers.models import open_model

    findings = Findings("checkpoint mutations (load_model)")
    verify_findings = Findings("checkpoint mutations (certspec verify)")
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    bases = checkpoint_bases(seed)
    sentinel = tmp_path / "SENTINEL"
    for k in range(count):
        name, base = rng.choice(bases)
        raw, what = H.mutate_checkpoint(rng, base, str(sentinel))
        path = tmp_path / f"m{k}{rng.choice(['.pt', '.pth'])}"
        path.write_bytes(raw)
        example = f"{name}: {what}"
        loaded = attempt(findings, example, lambda p=path: _load_checkpoint(p, sentinel, open_model),
                         lambda mdl, r=raw: check_checkpoint_loaded(r, mdl, nrng), tag=what.split(":")[0])
        if loaded is not None and rng.random() <= verify_share:
            def forward(xs: np.ndarray, mdl: Any = loaded) -> np.ndarray:
                with torch.no_grad():
                    return mdl.module(torch.from_numpy(xs)).double().numpy()

            verify_tiny(verify_findings, example, loaded, path, tmp_path / f"t{k}.prop", forward, nrng)
    findings.absorb(verify_findings, "verify")
    return findings


def test_checkpoint_mutations(tmp_path: Path) -> None:
    run_checkpoint_mutations(0, 100, tmp_path).assert_none()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 103))
def test_checkpoint_mutations_slow(seed: int, tmp_path: Path) -> None:
    run_checkpoint_mutations(seed, 300, tmp_path).assert_none()


def test_pickled_code_never_runs(tmp_path: Path) -> None:
    """Every loader of checkpoints, on every way of hiding a __reduce__ payload: a clear error, no file created."""
    from checkers.guard import load_guard
    from checkers.models import open_model

    findings = Findings("checkpoint payloads")
    sentinel = tmp_path / "SENTINEL"
    rng = random.Random(0)
    bases = checkpoint_bases(0)
    loaders: list[tuple[str, Callable[[Path], Any]]] = [("open_model", open_model), ("load_guard", load_guard)]
    for where in range(4):
        for name, base in bases:
            for evil in (H.Payload(str(sentinel)), H.ShellPayload(str(sentinel))):
                raw = [H.pickle_bytes(evil), H.torch_bytes(evil), H.torch_bytes({**base, "layers": [evil]}),
                       H.torch_bytes({**base, "state_dict": {"0.weight": evil}})][where]
                path = tmp_path / f"evil{where}.pt"
                path.write_bytes(raw)
                for lname, loader in loaders:
                    attempt(findings, f"{lname} on {name}, payload {where} {type(evil).__name__}",
                            lambda p=path, lo=loader: _load_checkpoint(p, sentinel, lo),
                            lambda r: (_ for _ in ()).throw(Mismatch("a checkpoint holding a pickled object loaded")))
    del rng
    findings.assert_none()


# ================================================================ guards and their scores


def random_guard_props(rng: random.Random, n: int, m: int) -> list[ir.Property]:
    """Safe-ordering properties over Order atoms, with boxes (strict sides, infinite sides), half-spaces and
    `predicted in` conditions."""
    props = []
    for k in range(rng.randint(1, 3)):
        parts = []
        for _ in range(rng.randint(1, 2)):
            lower, upper, ls, us = [], [], [], []
            for _ in range(n):
                a, b = sorted(rng.choice([-math.inf, -1.0, -0.5, 0.0, 0.1, 0.5, 1e-45, 1.0, math.inf]) for _ in range(2))
                lower.append(a if a != math.inf else -math.inf)
                upper.append(b if b != -math.inf else math.inf)
                ls.append(rng.random() < 0.3 and math.isfinite(lower[-1]))
                us.append(rng.random() < 0.3 and math.isfinite(upper[-1]))
                if lower[-1] == upper[-1]:
                    ls[-1] = us[-1] = False
            box = ir.Box(tuple(lower), tuple(upper), tuple(ls), tuple(us))
            halfspaces = ()
            if rng.random() < 0.3 and n >= 2:
                halfspaces = (ir.HalfSpace(((0, rng.choice([1.0, 0.1, -3.0])), (1, rng.choice([1.0, 0.2]))),
                                           rng.choice([0.0, 0.30000000000000004, 1e-30]), rng.random() < 0.5),)
            predicted = tuple(sorted(rng.sample(range(m), rng.randint(1, m - 1)))) if rng.random() < 0.2 else None
            parts.append(ir.RegionPart(box, halfspaces, predicted))
        disjuncts = []
        for _ in range(rng.randint(1, 3)):
            atoms = []
            for _ in range(rng.randint(1, 3)):
                hi, lo = rng.sample(range(m), 2)
                atoms.append(ir.Order(hi, lo, rng.random() < 0.7))
            disjuncts.append(tuple(atoms))
        props.append(ir.Property(f"g{k}", "n", ir.Region(tuple(parts)), ir.Ordering(tuple(disjuncts))))
    return props


def special_scores(rng: random.Random, m: int, rows: int) -> list[list[float]]:
    out = []
    specials = [math.nan, math.inf, -math.inf, H.FLT_MAX, -H.FLT_MAX, 1e-45, -1e-45, -0.0, 0.0, 1e38, 65504.0,
                2.0**-149, 1.7976931348623157e308, 1.0, 1.0000001, 0.99999994]
    for _ in range(rows):
        kind = rng.randrange(6)
        if kind == 0:
            row = [rng.gauss(0, 1) for _ in range(m)]
        elif kind == 1:
            row = [rng.choice(specials) for _ in range(m)]
        elif kind == 2:  # every score tied
            row = [rng.choice(specials)] * m
        elif kind == 3:  # ties and one-ulp gaps
            v = rng.choice([0.0, 1.0, H.FLT_MAX, -H.FLT_MAX, 1e-45, 3.0])
            with np.errstate(over="ignore"):
                row = [v if rng.random() < 0.5 else float(np.nextafter(np.float32(v), np.float32(rng.choice([-1, 1]) * np.inf)))
                       for _ in range(m)]
        elif kind == 4:
            row = [rng.choice([rng.gauss(0, 1), rng.choice(specials)]) for _ in range(m)]
        else:
            row = [float(rng.randint(-2, 2)) for _ in range(m)]
        out.append(row)
    return out


def special_inputs(rng: random.Random, props: list[ir.Property], n: int, rows: int) -> list[list[float]]:
    cands = [[*H.neighbours(H.ir_numbers([p.region for p in props])), math.inf, -math.inf, -0.0, 1e-45]] * n
    return H.sample_points(rng, cands, rows)


def _bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all() and (torch.signbit(a) == torch.signbit(b)).all())


def _unequal(a: torch.Tensor, b: torch.Tensor) -> str:
    """How two score rows differ: '' when bit for bit equal."""
    if _bits_equal(a, b):
        return ""
    same_values = bool(((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
    if (same_values and bool((torch.isnan(a) | (a != 0)).all())) or (same_values and not bool(torch.isnan(a).any())):
        return " (only the sign bit of a NaN or a zero changed)"
    return " "


def _below_the_bottom(y: torch.Tensor, argmin: bool) -> torch.Tensor:
    """What an abstaining guard returns for the model's scores y: NaN to the far infinity, the bottom's
    infinity to the largest finite value, everything else bit for bit."""
    top = torch.finfo(y.dtype).max
    far, near = (torch.inf, -torch.inf) if argmin else (-torch.inf, torch.inf)
    out = y.clone()
    out[torch.isnan(y)] = far
    out[y == near] = -top if argmin else top
    return out


def check_guard(props: list[ir.Property], net: ir.Network, x: torch.Tensor, y: torch.Tensor, result: Any,
                out: torch.Tensor) -> None:
    """Row by row: an answer meets every active requirement exactly, or the guard abstains with the bottom score
    as the only decision and the model's own scores (NaN and the bottom's infinity moved below it)."""
    from guard_oracle import Oracle

    b, m = y.shape
    argmin = net.decide is ir.Decide.ARGMIN
    if tuple(out.shape) != (b, m + 1) or out.dtype != y.dtype:
        raise Mismatch("the guard's output has the wrong shape or dtype", f"{list(out.shape)} {out.dtype}")
    if not _bits_equal(out, result.output()):
        raise Mismatch("forward and explain disagree", "")
    xs, ys, outs = x.double().tolist(), y.double().tolist(), out.double().tolist()
    for row in range(b):
        xr, yr, orow = xs[row], ys[row], outs[row]
        pred = H.decision(yr, argmin)
        active = [p for p in props if H.ir_in_region(p.region, xr, pred)] if not any(map(math.isnan, xr)) else None
        abstained = bool(result.abstained[row])
        decided = H.decision(orow, argmin)
        where = f"x={xr} y={yr} out={orow} dtype={y.dtype} reason={int(result.reason[row])}"
        if abstained:
            differ = _unequal(out[row, :m], _below_the_bottom(y[row], argmin))
            if differ:
                raise Mismatch("abstained, but the scores are not the model's own (NaN and the bottom's infinity moved)"
                               + differ.rstrip(), where)
            if decided != m:
                raise Mismatch("abstained, but the bottom score is not the decision", where)
            if active is not None and int(result.reason[row]) == 2 and m <= 5:  # UNSATISFIABLE: check it
                oracle = Oracle([p.requirement for p in active], m, net.decide)
                if oracle.satisfiable:
                    raise Mismatch("abstained as unsatisfiable, but a ranking meets every active property", where)
            continue
        if decided == m:
            raise Mismatch("answered, but the bottom score is the decision", where)
        if active is None:
            continue
        for p in active:
            if not H.ir_holds(p.requirement, orow[:m]):
                raise Mismatch("a guarded output violates an active property", f"{p.name} {p.requirement}: {where}")
        differ = _unequal(out[row, :m], y[row])
        if all(H.ir_holds(p.requirement, yr) for p in active) and differ:
            raise Mismatch("scores that already met every active property were changed" + differ.rstrip(), where)
        if all(map(math.isfinite, yr)) and not all(map(math.isfinite, orow[:m])):
            raise Mismatch("finite scores were guarded to non-finite ones", where)


DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def run_guard_scores(seed: int, count: int) -> Findings:
    from checkers.guard import GuardOptions, compile_layer

    findings = Findings("guard scores")
    rng = random.Random(seed)
    for _ in range(count):
        n, m = 2, rng.choice([2, 3, 4, 5])
        net = ir.Network("n", (n,), (m,), tuple(f"l{i}" for i in range(m)), ("a", "b"), ir.Box.unbounded(n),
                         rng.choice(list(ir.Decide)))
        props = random_guard_props(rng, n, m)
        options = GuardOptions(max_combinations=rng.choice([1, 4, 256]), engine=rng.choice(["auto", "table", "greedy"]))
        example = f"{net.decide} options={options} props={props}"
        layer = attempt(findings, "compile: " + example, lambda p=props, nt=net, o=options: compile_layer(p, nt, o),
                        lambda layer: None)
        if layer is None:
            continue
        for _ in range(3):
            rows = rng.choice([1, 7, 40])
            dtype_x, dtype_y = rng.choice(DTYPES), rng.choice(DTYPES)
            x = torch.tensor(special_inputs(rng, props, n, rows), dtype=torch.float64).to(dtype_x)
            y = torch.tensor(special_scores(rng, m, rows), dtype=torch.float64).to(dtype_y)

            def run(lay: Any = layer, x: torch.Tensor = x, y: torch.Tensor = y) -> Any:
                return lay.explain(x, y), lay(x, y)

            attempt(findings, f"{example} x={x.tolist()} y={y.tolist()} dtypes {dtype_x} {dtype_y}", run,
                    lambda r, p=props, nt=net, x=x, y=y: check_guard(p, nt, x, y, r[0], r[1]))
    return findings


def test_guard_scores() -> None:
    run_guard_scores(0, 50).assert_none()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 103))
def test_guard_scores_slow(seed: int) -> None:
    run_guard_scores(seed, 250).assert_none()


def bad_guard_inputs(n: int, m: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    x, y = torch.zeros(3, n), torch.zeros(3, m)
    out = []
    for dtype in (torch.int64, torch.int32, torch.bool, torch.uint8, torch.complex64):
        out.append((f"scores of dtype {dtype}", x, y.to(dtype)))
        out.append((f"inputs of dtype {dtype}", x.to(dtype), y))
    out += [("scores of rank 1", x, y[0]), ("scores of rank 3", x, y[None]), ("scores of rank 0", x, y[0, 0]),
            ("inputs of rank 1", x[0], y), ("inputs of rank 3", x[None], y), ("a batch mismatch", x[:2], y),
            ("one score too many", x, torch.zeros(3, m + 1)), ("one input too many", torch.zeros(3, n + 1), y),
            ("no scores", x, torch.zeros(3, 0)), ("inputs as a list", x.tolist(), y), ("scores as numpy", x, y.numpy()),
            ("scores as None", x, None)]
    return out


def run_guard_bad_inputs() -> Findings:
    from checkers.guard import compile_layer

    findings = Findings("guard inputs of the wrong kind")
    rng = random.Random(0)
    for m in (2, 4):
        net = ir.Network("n", (2,), (m,), tuple(f"l{i}" for i in range(m)), ("a", "b"), ir.Box.unbounded(2))
        layer = compile_layer(random_guard_props(rng, 2, m), net)
        for what, x, y in bad_guard_inputs(2, m):
            def refuse(result: Any, what: str = what) -> None:
                raise Mismatch(f"the guard answered on {what} instead of a UsageError", "")

            attempt(findings, what, lambda x=x, y=y, lay=layer: lay(x, y), refuse)
        # valid but unusual: an empty batch, mixed dtypes, a transposed view, scores that require grad
        props = list(layer.properties)
        y = torch.randn(m, 5).t()
        for what, xx, yy in [("an empty batch", torch.zeros(0, 2), torch.zeros(0, m)),
                             ("float64 inputs, float16 scores", torch.rand(5, 2, dtype=torch.float64), y.half()),
                             ("a transposed view", torch.rand(5, 2), y),
                             ("scores that require grad", torch.rand(5, 2), y.clone().requires_grad_(True))]:
            attempt(findings, what, lambda xx=xx, yy=yy, lay=layer: (lay.explain(xx, yy.detach()), lay(xx, yy)),
                    lambda r, xx=xx, yy=yy, p=props, nt=net: check_guard(p, nt, xx, yy.detach(), r[0], r[1].detach()))
    return findings


def test_guard_inputs_of_the_wrong_kind() -> None:
    run_guard_bad_inputs().assert_none()


# ================================================================ a real process, and a small file that inflates


@pytest.mark.slow
def test_hostile_files_through_a_real_process(tmp_path: Path) -> None:
    """`python -m checkers.cli` itself (not in process): exit status 2, one clear error, no traceback."""
    import subprocess

    findings = Findings("CLI in a subprocess")
    escape = tmp_path / "escape.prop"
    escape.write_text("network n\x1b[2J : real[2] -> real[2]\nproperty p\x1b]0;pwned\x07: require y[0] > y[5]\n")
    deep = tmp_path / "deep.vnnlib"
    deep.write_text("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert " + "(and " * 5000 + "(<= X_0 1)"
                    + ")" * 5000 + ")\n")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    ok = tmp_path / "ok.prop"
    ok.write_text("network n : real[2] -> real[2]\n  domain x[*] in [0, 1]\nproperty p: require y[0] > y[1]\n")
    runs = [["show", str(escape)], ["show", str(deep)], ["verify", str(ok), "--model", str(junk)],
            ["vnnlib", str(junk), str(deep)]]
    for argv in runs:
        def run(argv: list[str] = argv) -> tuple[int, str, str]:
            done = subprocess.run([sys.executable, "-m", "checkers.cli", *argv], capture_output=True, text=True,
                                  timeout=120, check=False, errors="replace")
            return done.returncode, done.stdout, done.stderr

        attempt(findings, " ".join(argv), run, cli_check([0], lambda *a: None), seconds=120)
    findings.assert_none()


@pytest.mark.slow
def test_a_small_deflated_checkpoint_is_refused_before_it_inflates(tmp_path: Path) -> None:
    """256 MB of zeros deflate to a few hundred kB: the format must be refused without inflating them
    (issue 14, point 11), here under an address-space limit of 128 MB above the current size."""
    from checkers.models import open_model

    raw = H.torch_bytes({"input_shape": [2], "layers": [["linear", 2, 2]], "state_dict": {"0.weight": torch.zeros(1 << 26),
                                                                                          "0.bias": torch.zeros(2)}})
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    del raw
    assert path.stat().st_size < 2 << 20
    findings = Findings("deflated checkpoint")

    def load() -> Any:
        with H.limited_memory(128 << 20):
            return open_model(path)

    def no_answer(model: Any) -> None:
        raise Mismatch("a checkpoint of the wrong shape loaded", "")

    attempt(findings, "bomb.pt", load, no_answer)
    for (category, _, message), _ in H.ERRORS.items():
        if category == "deflated checkpoint" and re.search(r"allocat|memory", message, re.IGNORECASE):
            findings.add("ran out of memory inflating a small checkpoint", "bomb.pt", message)
    findings.assert_none()


# ================================================================ the counts (last)


def test_zz_counts(tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    table = H.counts_table()
    path = tmp_path_factory.getbasetemp() / "hostile-counts.json"
    path.write_text(json.dumps(table, indent=1))
    with capsys.disabled():
        print(f"\nhostile-input counts ({path}):")
        for name, row in table.items():
            print(f"  {name:40s} tried {row['tried']:6d}  errors {row['errors']:6d}  checked {row['checked']:6d}"
                  f"  failed {row['failed']:5d}")
        if H.SLOWEST:
            print("  slowest cases:")
            for seconds, category, example in H.SLOWEST[:8]:
                print(f"    {seconds:6.2f} s  {category}: {example[:110]!r}")
        if H.ERRORS and "-v" in sys.argv:
            print("  most common clear errors:")
            for (category, kind, message), n in H.ERRORS.most_common(40):
                print(f"    {n:5d}  {category[:22]:22s} {kind}: {message}")
    assert table["total"]["tried"] >= table["total"]["errors"] + table["total"]["checked"]
