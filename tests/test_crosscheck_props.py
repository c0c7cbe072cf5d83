"""Issue 8: every checker against every other on generated (network, property) cases, and float-rounding traps.

The slow suite generates its cases with `checkers.strategies` (Hypothesis), runs the per-property
cross-check (`checkers.crosscheck.props`) on each, and prints how many cases each pair of checkers
(a claimer's HOLDS against a refuter's replayed witness) shared: at least 2,000 per pair, 0 contradictions.
"""

from __future__ import annotations

import collections
import time
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from checkers.crosscheck.props import PropertyOptions, PropertyReport, check_property
from checkers.fgp import FGP
from checkers.guard import compile_guard
from checkers.lipschitz import as_lipschitz, certify
from checkers.strategies import float32_inside, networks, properties
from checkers.testing import examples_of, find_counterexample, hypothesis_points, target_points, targets
from checkers.verdict import Status
from checkers.verify import VerifyOptions, verify_property
from spec import ir

# a claimer's HOLDS against a refuter's replayed witnesses (the guard's on the guarded model: Hypothesis and PGD)
PAIRS = [("guard", "hypothesis"), ("guard", "pgd"),
         *((c, r) for c in ("gloro", "fgp", "verifier") for r in ("hypothesis", "pgd", "fgp", "verifier") if c != r)]
FAST = PropertyOptions(pgd_starts=4, pgd_steps=8, timeout=2.0)


def _count(report: PropertyReport, counts: collections.Counter[tuple[str, str]]) -> None:
    for claimer, refuter in PAIRS:
        if report.applied(claimer) and report.applied(refuter):
            counts[(claimer, refuter)] += 1


def _batch(n: int, m: int, kinds: tuple[str, ...], activation: str, linear: bool, nets: int, per_net: int, seed: int,
           counts: collections.Counter[tuple[str, str]], contradictions: list[tuple[str, str, str]],
           verifier: bool = True) -> None:
    """`nets` generated networks with `per_net` generated properties each, checked by every applicable checker."""
    options = FAST if verifier else replace(FAST, checkers=tuple(c for c in FAST.checkers if c != "verifier"))
    models = examples_of(networks(n, m, activations=(activation,), depth=(1, 2), width=(2, 4)), nets, seed)
    props = examples_of(properties(n, m, kinds=kinds, linear=linear, max_parts=2), nets * per_net, seed + 1)
    for k, model in enumerate(models):
        mine = props[k * per_net : (k + 1) * per_net]
        found = [targets(model, g.prop, g.network) for g in mine]
        flat = [target_points(t) for ts in found for t in ts]
        drawn = hypothesis_points(flat, 2 * len(flat), seed + k)  # one Hypothesis run for every target of this network
        start = 0
        for g, ts in zip(mine, found, strict=True):
            report = check_property(model, g.prop, g.network, options, drawn[start : start + len(ts)])
            start += len(ts)
            _count(report, counts)
            counts[("cases", activation)] += 1
            contradictions += [(c.checker, c.found_by, f"{g.text}\n{c}") for c in report.contradictions]


@pytest.mark.slow
def test_every_pair_of_checkers_agrees_on_2000_cases(capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    start = time.monotonic()
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    contradictions: list[tuple[str, str, str]] = []
    # robustness at points on ReLU networks: GloRo, FGP, the verifier, Hypothesis, PGD
    _batch(2, 3, ("robust",), "relu", False, 29, 36, 1, counts, contradictions)
    _batch(3, 2, ("robust",), "relu", False, 29, 36, 2, counts, contradictions)
    # orderings: the guard against the falsifiers (the verifier on a share of them: it has its 2,000 above)
    _batch(2, 3, ("ordering",), "relu", False, 29, 36, 3, counts, contradictions, verifier=False)
    _batch(2, 2, ("ordering",), "relu", False, 22, 36, 4, counts, contradictions, verifier=False)
    _batch(2, 2, ("ordering",), "relu", False, 10, 30, 7, counts, contradictions)
    # orderings with linear output constraints (no guard) and half-spaces in 3 inputs
    _batch(3, 3, ("ordering",), "relu", True, 10, 20, 5, counts, contradictions)
    # MinMax networks: GloRo against the falsifiers
    _batch(2, 3, ("robust",), "minmax", False, 10, 20, 6, counts, contradictions)
    seconds = time.monotonic() - start
    with capsys.disabled():
        cases = {k[1]: v for k, v in counts.items() if k[0] == "cases"}
        print(f"\ncross-check of generated cases ({seconds:.0f} s): cases {cases}")
        for pair in PAIRS:
            if counts[pair]:
                print(f"  {pair[0]:>8} HOLDS vs {pair[1]:<10} witnesses: {counts[pair]:5d} cases, "
                      f"{sum(1 for c in contradictions if c[:2] == pair)} contradictions")
    assert not contradictions, [c[2] for c in contradictions[:3]]
    for pair in [("gloro", "hypothesis"), ("gloro", "pgd"), ("gloro", "fgp"), ("gloro", "verifier"),
                 ("fgp", "hypothesis"), ("fgp", "pgd"), ("fgp", "verifier"), ("verifier", "hypothesis"),
                 ("verifier", "pgd"), ("verifier", "fgp"), ("guard", "hypothesis"), ("guard", "pgd")]:
        assert counts[pair] >= 2000, (pair, counts[pair])


# ---------------------------------------------------------------- float-rounding traps

def _threshold(p: float) -> nn.Sequential:
    """y0 = x, y1 = p (float32, both exact): the boundary is x = p; label 0 strictly ahead iff x > p (x = p is a tie)."""
    lin = nn.Linear(1, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [0.0]]))
        lin.bias.copy_(torch.tensor([0.0, p]))
    return nn.Sequential(lin).eval()


def _lowest_float32_at_least(bound: Fraction) -> float:
    """The least float32 value >= bound, exactly (rationals)."""
    v = float32_inside(float(bound), float(bound))[0]
    while Fraction(v) < bound:
        v = float(np.nextafter(np.float32(v), np.float32(np.inf)))
    while Fraction(below := float(np.nextafter(np.float32(v), np.float32(-np.inf)))) >= bound:
        v = below
    return v


NEAR = st.one_of(st.just(0.0), st.floats(-1e-7, 1e-7), st.sampled_from([1e-7, -1e-7, 5.9604645e-08, -5.9604645e-08]))


@settings(max_examples=150, deadline=None)
@given(p=st.floats(-0.5, 0.5, width=32), eps=st.sampled_from([0.125, 0.1, 0.3]), delta=NEAR, data=st.data())
def test_no_checker_certifies_a_ball_that_reaches_the_boundary_within_1e7(p: float, eps: float, delta: float,
                                                                         data: st.DataObject) -> None:
    """The centre is eps + delta from the boundary: robust iff the lowest float32 point of the ball is strictly above p."""
    model = _threshold(p)
    centre = p + eps + delta
    network = ir.Network("net", (1,), (2,), ("a", "b"), ("x",), ir.Box((-2.0,), (2.0,), (False,), (False,)))
    x = torch.tensor([[centre]], dtype=torch.float32)
    centre32 = float(x[0, 0])
    # the model is monotone in x and exact in float32: the ball's lowest float32 point decides
    truly = centre32 > p and _lowest_float32_at_least(Fraction(centre32) - Fraction(eps)) > p
    cert = certify(as_lipschitz(model, (1,)), x, eps, ir.Norm.L2)
    fgp = FGP(model, 1, domain=network.domain).check(x[0].double(), eps, ir.Norm.LINF)
    ball = ir.Robust(ir.Local(), eps, ir.Norm.LINF, ((centre32,),))
    prop = ir.Property("r", "net", ir.Region((ir.RegionPart(network.domain),)), ball)
    verdict = verify_property(model, prop, network, VerifyOptions(timeout=5))
    if not truly:
        assert not bool(cert.certified[0]), (p, centre32, eps)
        assert fgp.verdict.status is not Status.HOLDS, (p, centre32, eps)
        assert verdict.status is not Status.HOLDS, (p, centre32, eps)
    else:  # a VIOLATED verdict carries a replayed witness, which cannot exist here
        assert verdict.status is not Status.VIOLATED, verdict
    w = find_counterexample(model, prop, network, examples=30, data=data)
    assert (w is None) == truly, (p, centre32, eps, w)


@settings(max_examples=150, deadline=None)
@given(p=st.floats(-0.5, 0.5, width=32), delta=NEAR, strict=st.booleans(), data=st.data())
def test_a_region_face_within_1e7_of_the_boundary(p: float, delta: float, strict: bool, data: st.DataObject) -> None:
    """`when x in (p + delta, 1] require y0 > y1` (or `[`): holds iff the least float32 point of the region is above p."""
    model = _threshold(p)
    network = ir.Network("net", (1,), (2,), ("a", "b"), ("x",), ir.Box((-2.0,), (2.0,), (False,), (False,)))
    a = p + delta
    box = ir.Box((a,), (1.0,), (strict,), (False,))
    prop = ir.Property("face", "net", ir.Region((ir.RegionPart(box),)), ir.Ordering(((ir.Order(0, 1, True),),)))
    least = _lowest_float32_at_least(Fraction(a))
    if strict and least == a:
        least = float(np.nextafter(np.float32(least), np.float32(np.inf)))
    truly = least > p
    verdict = verify_property(model, prop, network, VerifyOptions(timeout=5))
    assert verdict.status is not (Status.VIOLATED if truly else Status.HOLDS), (p, a, strict, verdict)
    w = find_counterexample(model, prop, network, examples=30, pgd_steps=0, data=data)  # Hypothesis alone must hit the face
    assert (w is None) == truly, (p, a, strict, w)
    if w is not None:
        assert least <= w.x[0] <= p
    guarded = compile_guard([prop], model, network)
    with torch.no_grad():
        out = guarded.explain(torch.tensor([[least]], dtype=torch.float32))
    assert bool(out.abstained[0]) or float(out.scores[0, 0]) > float(out.scores[0, 1])
