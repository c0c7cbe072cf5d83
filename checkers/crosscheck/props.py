"""The cross-check of one property on one model: every applicable checker, every claim against every witness.

Checkers and what they claim, per target (a region part, or a robustness centre):
- `guard`: the guarded model (`checkers.guard`) meets an ordering of `Order` atoms wherever it
  does not abstain (HOLDS on every target); local robustness at points in linf balls is guarded
  as orderings (`_ball_ordering`: on each ball's box in the domain, the centre's float32 label
  strictly ahead), l2 balls are not (not boxes);
- `gloro`: a certified centre (`checkers.lipschitz.certify`, argmax networks; local, relaxed
  top-k and affinity), and for top-k and affinity the stronger claim of its certified set T
  (`claims`: T strictly ahead of every other label at every float32 point of the ball),
  attacked on its own (`checkers.testing.set_target`: Hypothesis's points, PGD on T's rows);
- `fgp`: HOLDS at a centre, or a VIOLATED witness (ReLU networks);
- `verifier`: HOLDS or a VIOLATED witness (`checkers.verify`, ReLU networks);
- `hypothesis`, `pgd`: witnesses only (`checkers.testing`).
Pairs: the guard's HOLDS against Hypothesis's and PGD's points and fgp's and the verifier's
witnesses, all replayed on the guarded model (`_guard_replay`); each other claimer's against
every other checker's witnesses, replayed on the model.
Every witness, whoever found it, is replayed here (`checkers.testing.replay`: alone, in
float32, in the region and ball exactly) before it counts. A contradiction is a HOLDS claim
on a target for which a replayed witness exists (on the guarded model for the guard), or a
replayed point that breaks a claimed certified set (`claim` names the set).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import torch
from torch import nn

from checkers.guard import Guarded
from checkers.semantics import VACUOUS, decision, in_part, violated
from checkers.testing import Target, hypothesis_points, pgd_points, replay, set_target, target_points, targets
from checkers.verdict import Status, Witness
from spec import ir
from spec.errors import GuardError, ModelError

T = TypeVar("T")

CLAIMERS = ("guard", "gloro", "fgp", "verifier")
REFUTERS = ("hypothesis", "pgd", "fgp", "verifier")


@dataclass(frozen=True)
class PropertyOptions:
    """examples: Hypothesis points per target; pgd_starts, pgd_steps; timeout: seconds for the verifier
    (per property, per centre for robustness); checkers: which to run (default all)."""

    examples: int = 50
    pgd_starts: int = 8
    pgd_steps: int = 20
    timeout: float = 10.0
    seed: int = 0
    checkers: tuple[str, ...] = ("guard", "gloro", "fgp", "verifier", "hypothesis", "pgd")


@dataclass(frozen=True)
class PropertyContradiction:
    """`checker` claimed `target` HOLDS; `found_by`'s replayed witness x (scores y, on `on`) refutes it."""

    property: str
    checker: str
    found_by: str
    target: int
    x: tuple[float, ...]
    y: tuple[float, ...]
    on: str  # "model" or "guarded model"
    claim: str = ""  # a certified set the witness breaks ("" for the property itself)


@dataclass
class PropertyReport:
    """What each checker did on one property: `ran[name]` is "ran" or why it does not apply."""

    property: str
    targets: int
    ran: dict[str, str] = field(default_factory=dict)
    holds: dict[str, list[int]] = field(default_factory=dict)
    witnesses: dict[str, dict[int, Witness]] = field(default_factory=dict)
    guard_witnesses: dict[str, dict[int, Witness]] = field(default_factory=dict)
    contradictions: list[PropertyContradiction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    claims: dict[str, dict[int, tuple[int, ...]]] = field(default_factory=dict)  # certified sets per target
    claim_witnesses: dict[str, dict[int, Witness]] = field(default_factory=dict)  # replayed points breaking them
    claims_attacked: dict[str, int] = field(default_factory=dict)  # per refuter, sets it attacked (beyond the target)

    def applied(self, name: str) -> bool:
        return self.ran.get(name) == "ran"


def _guard_replay(guarded: Guarded, model: nn.Module, t: Target, x: torch.Tensor, decide: ir.Decide) -> Witness | None:
    """A point of x (K, n) in the target where the guard does not abstain and its scores violate the target
    (finite scores: NaN or inf is never a witness)."""
    x = x.detach().to(torch.float32)
    if x.shape[0] == 0 or t.empty:
        return None
    for i in range(0, x.shape[0]):
        with torch.no_grad():
            y = model(x[i : i + 1])
            result = guarded.explain(x[i : i + 1])
        inside = in_part(t.part, x[i : i + 1], decision(y, decide))
        if bool(inside[0]) and not bool(result.abstained[0]) and bool(violated(t.rows, result.scores)[0]):
            return Witness(tuple(x[i].tolist()), tuple(result.scores[0].tolist()), t.index)
    return None


def _guard_candidates(guarded: Guarded, model: nn.Module, t: Target, x: torch.Tensor, decide: ir.Decide) -> torch.Tensor:
    """The candidates worth replaying one by one: in the part, not abstained, violated (batched screen)."""
    if x.shape[0] == 0:
        return x
    with torch.no_grad():
        y = model(x)
        result = guarded.explain(x)
    keep = in_part(t.part, x, decision(y, decide)) & ~result.abstained & violated(t.rows, result.scores)
    return x[keep][:8]


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


def _cached(model: nn.Module, key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """A checker's view of a model, built once per model and key (GloRo's constants, FGP's folded network).

    The key includes each parameter's storage and version counter, so a weight changed in place
    (an optimiser step, `copy_`) builds a new view: a stale constant would be unsound."""
    key = (*key, tuple((t.data_ptr(), t._version) for t in (*model.parameters(), *model.buffers())))
    per = _CACHE.setdefault(model, {})
    if key not in per:
        per[key] = make()
    return per[key]  # type: ignore[no-any-return]


def _claim_gloro(model: nn.Module, prop: ir.Property, network: ir.Network, report: PropertyReport,
                 found: list[Target]) -> None:
    from checkers.lipschitz.certify import certify
    from checkers.lipschitz.network import as_lipschitz

    req = prop.requirement
    if not isinstance(req, ir.Robust) or req.dataset is not None:
        report.ran["gloro"] = "not a local robustness property at points (nor top-k or affinity)"
        return
    if network.decide is not ir.Decide.ARGMAX:
        report.ran["gloro"] = "GloRo certifies argmax predictions"
        return
    try:
        net = _cached(model, ("gloro", network.input_shape), lambda: as_lipschitz(model, network.input_shape))
    except ModelError as err:
        report.ran["gloro"] = err.message
        return
    try:
        cert = certify(net, torch.tensor(req.points, dtype=torch.float32), req.eps, req.norm, kind=req.kind)
    except ModelError as err:  # no finite Lipschitz bound (non-finite weights)
        report.ran["gloro"] = err.message
        return
    report.ran["gloro"] = "ran"
    certified = cert.certified.nonzero().flatten().tolist()
    # a ball with no float32 point in the domain holds vacuously, as every checker says (GloRo sees no domain)
    report.holds["gloro"] = sorted({*certified, *(t.index for t in found if t.empty)})
    if not isinstance(req.kind, ir.Local):  # the certified set T_k (k = 1: the label), strictly ahead in the ball
        report.claims["gloro"] = {k: tuple(cert.top[k, : int(cert.k[k])].tolist()) for k in certified}


def _refute_claims(model: nn.Module, found: list[Target], candidates: dict[str, list[torch.Tensor]],
                   report: PropertyReport, network: ir.Network, options: PropertyOptions) -> None:
    """Attack each claimed certified set: the refuters' points replayed on `set_target` (and PGD on its rows),
    and, in an linf ball, the exact verifier on the set's ordering over the ball's box.

    Claims are recorded for top-k and affinity certificates (a local one is its target already)."""
    by_index = {t.index: t for t in found}
    m = network.n_outputs
    for checker, sets in report.claims.items():
        for k, labels in sets.items():
            t = set_target(by_index[k], labels, m, network.decide)
            if not t.rows.atoms:
                continue  # a set of every label: nothing to break
            if t.rows.disjuncts == by_index[k].rows.disjuncts and t.rows.atoms == by_index[k].rows.atoms:
                continue  # the claim is the property's target itself (top 1, a singleton affinity set)
            for name, per_target in candidates.items():
                report.claims_attacked[name] = report.claims_attacked.get(name, 0) + 1
                x = per_target[k]
                if name == "pgd":
                    x = torch.cat([x, pgd_points(model, t, starts=options.pgd_starts, steps=options.pgd_steps,
                                                 seed=options.seed)])
                w = replay(model, t, x, network.decide)
                if w is not None:
                    report.claim_witnesses.setdefault(name, {})[k] = w
                    report.contradictions.append(PropertyContradiction(
                        report.property, checker, name, k, w.x, w.y, "model", f"set {sorted(labels)} strictly ahead"))
            if "verifier" in options.checkers and t.ball is not None and t.ball[2] is ir.Norm.LINF:
                _verify_claim(model, t, labels, checker, report, network, options)


def _verify_claim(model: nn.Module, t: Target, labels: tuple[int, ...], checker: str, report: PropertyReport,
                  network: ir.Network, options: PropertyOptions) -> None:
    """An linf claim is an ordering on the ball's box: the exact verifier's witness, replayed, refutes it."""
    from checkers.verify import VerifyOptions, verify_property

    claim = ir.Property(f"{report.property}@{t.index}", network.name, ir.Region((t.part,)), ir.Ordering((t.rows.atoms,)))
    opts = VerifyOptions(timeout=options.timeout, seed=options.seed, attack_starts=4, attack_steps=5)
    try:
        verdict = verify_property(model, claim, network, opts)
    except ModelError:
        return  # not a network the verifier reads (its reason is in report.ran["verifier"])
    report.claims_attacked["verifier"] = report.claims_attacked.get("verifier", 0) + 1
    if verdict.witness is not None:
        w = replay(model, t, torch.tensor([verdict.witness.x], dtype=torch.float32), network.decide)
        if w is not None:
            report.claim_witnesses.setdefault("verifier", {})[t.index] = w
            report.contradictions.append(PropertyContradiction(
                report.property, checker, "verifier", t.index, w.x, w.y, "model", f"set {sorted(labels)} strictly ahead"))


def _claim_fgp(model: nn.Module, prop: ir.Property, network: ir.Network, report: PropertyReport,
               options: PropertyOptions) -> None:
    from checkers.fgp import FGP, FGPOptions

    req = prop.requirement
    if not isinstance(req, ir.Robust) or not isinstance(req.kind, ir.Local) or req.dataset is not None:
        report.ran["fgp"] = "not a local robustness property at points"
        return
    try:
        fgp = _cached(model, ("fgp", network.domain, network.decide, options.timeout), lambda: FGP(
            model, network.n_inputs, domain=network.domain, decide=network.decide, options=FGPOptions(timeout=options.timeout)))
    except ModelError as err:
        report.ran["fgp"] = err.message
        return
    report.ran["fgp"] = "ran"
    report.holds["fgp"], report.witnesses["fgp"] = [], {}
    for k, centre in enumerate(req.points):
        result = fgp.check(torch.tensor(centre, dtype=torch.float64), req.eps, req.norm)
        if result.verdict.status is Status.HOLDS:
            report.holds["fgp"].append(k)
        elif result.verdict.witness is not None:
            report.witnesses["fgp"][k] = replace(result.verdict.witness, part=k)


def _claim_verifier(model: nn.Module, prop: ir.Property, network: ir.Network, report: PropertyReport,
                    options: PropertyOptions) -> None:
    from checkers.verify import VerifyOptions, verify_property

    req = prop.requirement
    opts = VerifyOptions(timeout=options.timeout, seed=options.seed, attack_starts=4, attack_steps=5)
    subs: list[tuple[list[int], ir.Property]]
    if isinstance(req, ir.Robust):
        subs = [([k], replace(prop, requirement=replace(req, points=(c,)))) for k, c in enumerate(req.points)]
    else:
        subs = [(list(range(len(prop.region.parts))), prop)]
    report.holds["verifier"], report.witnesses["verifier"] = [], {}
    try:
        for indices, sub in subs:
            verdict = verify_property(model, sub, network, opts)
            if verdict.status is Status.HOLDS:
                report.holds["verifier"] += indices
            elif verdict.witness is not None:
                k = indices[0] if isinstance(req, ir.Robust) else verdict.witness.part
                report.witnesses["verifier"][k] = replace(verdict.witness, part=k)
    except ModelError as err:
        report.ran["verifier"] = err.message
        return
    report.ran["verifier"] = "ran"


def _ball_ordering(prop: ir.Property, t: Target, network: ir.Network) -> ir.Property:
    """Local robustness at centre `t.index` in an linf ball as a safe ordering: on the target's box (the
    ball's box intersected with the domain), its label (the float32 decision at the centre, as
    `targets` found it) strictly ahead of every other label (argmin: strictly below)."""
    assert t.label is not None
    label, m = t.label, network.n_outputs
    ahead = tuple(ir.Order(label, j, True) if network.decide is ir.Decide.ARGMAX else ir.Order(j, label, True)
                  for j in range(m) if j != label)
    return ir.Property(f"{prop.name}@{t.index}", prop.target, ir.Region((t.part,)), ir.Ordering((ahead,)))


def _guarded(model: nn.Module, prop: ir.Property, network: ir.Network, found: list[Target],
             report: PropertyReport) -> Guarded | None:
    """The guarded model for `prop` (HOLDS on every target), or None with the reason in `report.ran`.

    An ordering is guarded as it is; local robustness in linf balls as one ordering per centre
    (`_ball_ordering`), all of them in one guard (it abstains where balls of different labels meet)."""
    from checkers.guard import compile_guard

    req = prop.requirement
    if isinstance(req, ir.Ordering):
        guarding = [prop]
    elif not isinstance(req.kind, ir.Local) or req.dataset is not None:
        report.ran["guard"] = "guards enforce orderings, and local robustness at points in linf balls"
        return None
    elif req.norm is not ir.Norm.LINF:
        report.ran["guard"] = "guard: l2 balls are not boxes"
        return None
    else:
        guarding = [_ball_ordering(prop, t, network) for t in found]
    try:
        guarded = compile_guard(guarding, model, network)
    except GuardError as err:
        report.ran["guard"] = err.message
        return None
    report.ran["guard"] = "ran"
    report.holds["guard"] = [t.index for t in found]
    return guarded


def _guard_replay_claimers(guarded: Guarded, model: nn.Module, found: list[Target], report: PropertyReport,
                           decide: ir.Decide) -> None:
    """The witnesses fgp and the verifier found on the model, replayed on the guarded model."""
    by_index = {t.index: t for t in found}
    for name in ("fgp", "verifier"):
        if not report.applied(name):
            continue
        report.guard_witnesses[name] = {}
        for k, w in report.witnesses.get(name, {}).items():
            gw = _guard_replay(guarded, model, by_index[k], torch.tensor([w.x], dtype=torch.float32), decide)
            if gw is not None:
                report.guard_witnesses[name][k] = gw


def check_property(model: nn.Module, prop: ir.Property, network: ir.Network,
                   options: PropertyOptions = PropertyOptions(), drawn: list[list[tuple[float, ...]]] | None = None,
                   ) -> PropertyReport:
    """Run every applicable checker in `options.checkers` on `prop` and collect the contradictions.

    `drawn`: Hypothesis points per target drawn by the caller (batched runs); default: our own run.
    """
    model = model.eval()
    found = targets(model, prop, network)
    report = PropertyReport(prop.name, len(found))
    run = options.checkers
    guarded = _guarded(model, prop, network, found, report) if "guard" in run else None
    for t in found:
        if t.empty:
            report.notes.append(f"target {t.index}: {VACUOUS} (no point is drawn there)")
        elif t.undefined:
            report.notes.append(f"target {t.index}: {t.undefined} (no witness can exist there)")
    if "gloro" in run:
        _claim_gloro(model, prop, network, report, found)
    if "fgp" in run:
        _claim_fgp(model, prop, network, report, options)
    if "verifier" in run:
        _claim_verifier(model, prop, network, report, options)
    candidates: dict[str, list[torch.Tensor]] = {}
    if "hypothesis" in run:
        if drawn is None:
            drawn = hypothesis_points([target_points(t) for t in found], options.examples * len(found), options.seed)
        candidates["hypothesis"] = [torch.tensor(p, dtype=torch.float32).reshape(len(p), network.n_inputs) for p in drawn]
        report.ran["hypothesis"] = "ran"
    if "pgd" in run:
        candidates["pgd"] = [pgd_points(model, t, starts=options.pgd_starts, steps=options.pgd_steps, seed=options.seed)
                             for t in found]
        report.ran["pgd"] = "ran"
    for name, per_target in candidates.items():
        report.witnesses[name] = {}
        report.guard_witnesses[name] = {}
        for t, x in zip(found, per_target, strict=True):
            w = replay(model, t, x, network.decide)
            if w is not None:
                report.witnesses[name][t.index] = w
            if guarded is not None:
                gw = _guard_replay(guarded, model, t, _guard_candidates(guarded, model, t, x, network.decide), network.decide)
                if gw is not None:
                    report.guard_witnesses[name][t.index] = gw
    if guarded is not None:
        _guard_replay_claimers(guarded, model, found, report, network.decide)
    _verify_witnesses(model, found, report, network.decide)
    _refute_claims(model, found, candidates, report, network, options)
    _contradictions(prop, report)
    return report


def _verify_witnesses(model: nn.Module, found: list[Target], report: PropertyReport, decide: ir.Decide) -> None:
    """Replay the witnesses the checkers found themselves (fgp, verifier); drop any that do not replay."""
    by_index = {t.index: t for t in found}
    for name in ("fgp", "verifier"):
        for k, w in list(report.witnesses.get(name, {}).items()):
            again = replay(model, by_index[k], torch.tensor([w.x], dtype=torch.float32), decide)
            if again is None:
                del report.witnesses[name][k]
                report.notes.append(f"{name}: its witness at target {k} did not replay (dropped)")
            else:
                report.witnesses[name][k] = again


def _contradictions(prop: ir.Property, report: PropertyReport) -> None:
    for checker, claimed in report.holds.items():
        pool = report.guard_witnesses if checker == "guard" else report.witnesses
        for found_by, witnesses in pool.items():
            for k in claimed:
                w = witnesses.get(k)
                if w is not None:
                    on = "guarded model" if checker == "guard" else "model"
                    report.contradictions.append(PropertyContradiction(prop.name, checker, found_by, k, w.x, w.y, on))
