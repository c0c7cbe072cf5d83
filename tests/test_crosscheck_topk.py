"""Issue 8: GloRo's relaxed top-k and affinity certificates against Hypothesis and PGD witnesses.

A top-k or affinity certificate at a centre claims the property there, and more: its certified set
T (`Certificates.top[:k]`) is the strict top-|T| set at every float32 point of the ball. The
cross-check (`checkers.crosscheck.props`) attacks both: the property's pointwise target
(`checkers.testing.robust_rows`) and T's own (`checkers.testing.set_target`). The slow suite runs
at least 2,000 generated (network, property) cases per pair, half of them at the certified radius
itself (the tightest claim GloRo makes); the fast tests show that a wrong claim is refuted.
"""

from __future__ import annotations

import collections
import importlib
import time
from dataclasses import replace
from fractions import Fraction

import pytest
import torch
from torch import nn

from checkers.crosscheck.props import PropertyOptions, PropertyReport, check_property
from checkers.lipschitz import LipschitzNet, as_lipschitz, certify
from checkers.strategies import networks, properties
from checkers.testing import (
    examples_of,
    find_counterexample,
    points_together,
    robust_rows,
    set_target,
    target_points,
    targets,
)
from checkers.verdict import Witness
from spec import ir

OPTIONS = PropertyOptions(pgd_starts=4, pgd_steps=8, timeout=2.0, checkers=("gloro", "hypothesis", "pgd", "verifier"))
certify_module = importlib.import_module("checkers.lipschitz.certify")  # the package re-exports the function
NETWORK = ir.Network("net", (2,), (3,), ("a", "b", "c"), ("x0", "x1"),
                     ir.Box((-1.0, -1.0), (1.0, 1.0), (False, False), (False, False)))


def _ranked(y: list[float]) -> list[int]:
    return sorted(range(len(y)), key=lambda j: (-y[j], j))


def _ahead(y: list[float], labels: set[int]) -> bool:
    """Every label of `labels` strictly above every other (exact: float32 scores as rationals)."""
    return all(Fraction(y[a]) > Fraction(y[b]) for a in labels for b in range(len(y)) if b not in labels)


def _truly_refutes(prop: ir.Property, k: int, centre_scores: list[float], w: Witness) -> bool:
    """An oracle apart from `checkers.semantics`: w lies in ball k and domain, and breaks the property there."""
    req = prop.requirement
    assert isinstance(req, ir.Robust)
    centre = req.points[k]
    d = [Fraction(a) - Fraction(c) for a, c in zip(w.x, centre, strict=True)]
    inside = (all(abs(v) <= Fraction(req.eps) for v in d) if req.norm is ir.Norm.LINF
              else sum(v * v for v in d) <= Fraction(req.eps) ** 2)
    inside &= all(-1 <= v <= 1 for v in w.x)
    rank, y = _ranked(centre_scores), list(w.y)
    if isinstance(req.kind, ir.TopK):  # one point breaking every T_j, j <= k
        return inside and not any(_ahead(y, set(rank[:j])) for j in range(1, req.kind.k + 1))
    assert isinstance(req.kind, ir.Affinity)
    group = next((set(s) for s in req.kind.sets if rank[0] in s), {rank[0]})
    best = max(Fraction(v) for v in y)
    return inside and any(Fraction(y[i]) == best for i in range(len(y)) if i not in group)


def _at_radius(net: LipschitzNet, prop: ir.Property) -> ir.Property:
    """The property at just under GloRo's certified radius at its first centre (the tightest claim)."""
    req = prop.requirement
    assert isinstance(req, ir.Robust)
    cert = certify(net, torch.tensor(req.points[:1], dtype=torch.float32), req.eps, req.norm, kind=req.kind)
    r = float(cert.radius[0]) * (1 - 1e-6)
    return prop if r <= 0 else replace(prop, requirement=replace(req, eps=r))


def _batch(n: int, m: int, activation: str, nets: int, per_net: int, seed: int,
           counts: collections.Counter[str], contradictions: list[str]) -> None:
    models = examples_of(networks(n, m, activations=(activation,), depth=(1, 2), width=(2, 4)), nets, seed)
    gens = examples_of(properties(n, m, kinds=("topk", "affinity"), max_parts=1), nets * per_net, seed + 1)
    for i, model in enumerate(models):
        net = as_lipschitz(model, (n,))
        mine = [(g, g.prop if j % 2 else _at_radius(net, g.prop))
                for j, g in enumerate(gens[i * per_net : (i + 1) * per_net])]
        found = [targets(model, prop, g.network) for g, prop in mine]
        flat = [target_points(t) for ts in found for t in ts]
        drawn = points_together(flat, 3, seed + i)  # one Hypothesis run: 3 points per target (batched draws)
        start = 0
        for (g, prop), ts in zip(mine, found, strict=True):
            report = check_property(model, prop, g.network, OPTIONS, drawn[start : start + len(ts)])
            start += len(ts)
            _tally(model, prop, report, counts)
            contradictions += [f"{g.text}(eps {prop.requirement.eps!r})\n{c}" for c in report.contradictions]  # type: ignore[union-attr]


def _tally(model: nn.Module, prop: ir.Property, report: PropertyReport, counts: collections.Counter[str]) -> None:
    req = prop.requirement
    assert isinstance(req, ir.Robust)
    kind = "topk" if isinstance(req.kind, ir.TopK) else "affinity"
    counts[f"cases {kind}"] += 1
    for refuter in ("hypothesis", "pgd"):
        if report.applied("gloro") and report.applied(refuter):
            counts[f"gloro-{refuter}"] += 1
    counts["centres"] += report.targets
    counts["certified"] += len(report.holds.get("gloro", []))
    counts["sets of 2+ labels"] += sum(len(s) > 1 for s in report.claims.get("gloro", {}).values())
    for name, n in report.claims_attacked.items():  # sets that say more than the property target, attacked
        counts[f"sets attacked by {name}"] += n
    for name in ("hypothesis", "pgd"):
        for k, w in report.witnesses.get(name, {}).items():  # every property witness, checked by an oracle of its own
            with torch.no_grad():
                centre = model(torch.tensor([req.points[k]], dtype=torch.float32))[0].tolist()
            assert _truly_refutes(prop, k, centre, w), (prop, w)
            counts[f"{name} witnesses"] += 1


@pytest.mark.slow
def test_gloro_top_k_and_affinity_claims_survive_2000_cases(capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    start = time.monotonic()
    counts: collections.Counter[str] = collections.Counter()
    contradictions: list[str] = []
    _batch(2, 3, "relu", 20, 25, 11, counts, contradictions)
    _batch(3, 4, "relu", 20, 25, 12, counts, contradictions)
    _batch(2, 5, "relu", 20, 25, 13, counts, contradictions)
    _batch(2, 4, "minmax", 20, 25, 14, counts, contradictions)
    seconds = time.monotonic() - start
    with capsys.disabled():
        print(f"\nGloRo top-k / affinity cross-check ({seconds:.0f} s): {dict(sorted(counts.items()))}, "
              f"{len(contradictions)} contradictions")
    assert not contradictions, contradictions[:3]
    assert counts["gloro-hypothesis"] >= 2000 and counts["gloro-pgd"] >= 2000, counts


# ---------------------------------------------------------------- fast: the semantics, and a wrong claim refuted

def _linear(weight: list[list[float]], bias: list[float]) -> nn.Sequential:
    lin = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weight))
        lin.bias.copy_(torch.tensor(bias))
    return nn.Sequential(lin).eval()


# y0 = 1, y1 = 0.9 + x0, y2 = -1: at the centre 0 the top-1 set {0} breaks at x0 > 0.1, the top-2 set {0, 1} never
SLIDE = _linear([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]], [1.0, 0.9, -1.0])
# y0 = 1, y1 = 0.9, y2 = 2 x0: {0} and {0, 1} both break at x0 = 0.5 (one point)
RISE = _linear([[0.0, 0.0], [0.0, 0.0], [2.0, 0.0]], [1.0, 0.9, 0.0])


def _robust(kind: ir.RobustKind, eps: float = 0.5, norm: ir.Norm = ir.Norm.LINF) -> ir.Property:
    return ir.Property("r", "net", ir.Region((ir.RegionPart(NETWORK.domain),)), ir.Robust(kind, eps, norm, ((0.0, 0.0),)))


def test_top_k_and_affinity_targets_are_pointwise_orderings() -> None:
    y = torch.tensor([[1.0, 0.9, -1.0]])
    top2 = robust_rows(ir.TopK(2), y)
    assert [[top2.atoms[r] for r in conj] for conj in top2.disjuncts] == [
        [ir.Order(0, 1, True), ir.Order(0, 2, True)], [ir.Order(0, 2, True), ir.Order(1, 2, True)]]
    within = robust_rows(ir.Affinity(((0, 1), (2,))), y)  # some label of {0, 1} strictly above y2
    assert [[within.atoms[r] for r in conj] for conj in within.disjuncts] == [[ir.Order(0, 2, True)], [ir.Order(1, 2, True)]]
    alone = robust_rows(ir.Affinity(((1, 2),)), y)  # label 0 is in no set: it must stay itself
    assert [[alone.atoms[r] for r in conj] for conj in alone.disjuncts] == [[ir.Order(0, 1, True), ir.Order(0, 2, True)]]
    t = targets(SLIDE, _robust(ir.TopK(2)), NETWORK)[0]
    assert set_target(t, (0, 1), 3).rows.atoms == (ir.Order(0, 2, True), ir.Order(1, 2, True))


@pytest.mark.parametrize("kind", [ir.TopK(2), ir.Affinity(((0, 1), (2,)))])
def test_a_property_that_holds_has_no_witness_and_one_that_fails_has_a_true_one(kind: ir.RobustKind) -> None:
    # SLIDE: T_1 breaks but T_2 = {0, 1} (inside one affinity set) holds in the whole ball
    assert find_counterexample(SLIDE, _robust(kind), NETWORK) is None
    w = find_counterexample(SLIDE, _robust(ir.TopK(1)), NETWORK)
    assert w is not None and Fraction(w.y[1]) >= Fraction(w.y[0])
    # RISE: one point (x0 near 0.5) breaks {0} and {0, 1} at once; y2 reaches the top
    w = find_counterexample(RISE, _robust(kind), NETWORK)
    assert w is not None and _truly_refutes(_robust(kind), 0, [1.0, 0.9, 0.0], w)


@pytest.mark.parametrize("kind", [ir.TopK(2), ir.Affinity(((0, 1), (2,)))])
def test_honest_gloro_claims_hold_and_a_claim_at_a_smaller_eps_is_refuted(
        kind: ir.RobustKind, monkeypatch: pytest.MonkeyPatch) -> None:
    prop = _robust(kind)
    options = OPTIONS  # the verifier checks linf claims too
    honest = check_property(SLIDE, prop, NETWORK, options)
    assert honest.holds["gloro"] == [0] and honest.claims["gloro"] == {0: (0, 1)}
    assert not honest.contradictions
    real = certify_module.certify

    def at_an_eighth(net: object, x: torch.Tensor, eps: float, *args: object, **kw: object) -> object:
        return real(net, x, eps / 8, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(certify_module, "certify", at_an_eighth)
    # SLIDE: {0} is certified at eps / 8 and claimed at eps; the property holds (by {0, 1}), the claim does not
    report = check_property(SLIDE, prop, NETWORK, options)
    assert report.claims["gloro"] == {0: (0,)}
    assert not report.witnesses["hypothesis"] and not report.witnesses["pgd"]
    found = {(c.checker, c.found_by, c.claim) for c in report.contradictions}
    assert found == {("gloro", refuter, "set [0] strictly ahead") for refuter in ("hypothesis", "pgd", "verifier")}
    for c in report.contradictions:
        assert Fraction(c.y[1]) >= Fraction(c.y[0]) and abs(c.x[0]) <= 0.5
    # RISE: the property itself fails; the wrong certificate is refuted at the property level too
    report = check_property(RISE, prop, NETWORK, options)
    assert {(c.found_by, c.claim) for c in report.contradictions} >= {("hypothesis", ""), ("pgd", "")}
