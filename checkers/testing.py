"""A pytest-friendly API: look for counterexamples to a property, and assert that it holds.

    >>> from checkers.testing import assert_holds, find_counterexample
    >>> assert_holds(model, prop, network)             # AssertionError with the replayed witness
    >>> witness = find_counterexample(model, prop)     # a checkers.verdict.Witness, or None

Falsifiers: Hypothesis over `checkers.strategies.inputs_in` (corners, faces, float32
neighbours) and PGD (`checkers.attack.pgd`) on the violation margin. Every candidate is
replayed alone on the model in float32 and checked exactly (`checkers.semantics`, and
rationals for the ball); only then is it a witness. Properties: `Ordering` requirements
(a `predicted in` condition is read off the model's own scores) and robustness at given
points: local (the label at the centre must stay strictly ahead in the ball and domain: a
tie is a change), relaxed top-k and affinity (`robust_rows`: a witness is one point that
breaks every top-j set, j <= k, of the centre at once, or where the prediction leaves the
affinity set of the centre's label; sound, and for top-k incomplete). `set_target` gives a
certified set's pointwise claim (GloRo's T_k), which the cross-check attacks. Inside a
Hypothesis test, pass `data=data` (an `st.data()` draw): the points are then drawn by the
outer test, which shrinks them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

import hypothesis
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from torch import nn

from checkers.attack import pgd
from checkers.semantics import (
    Rows, ball_box, compile_ordering, decision, finite, float32_box, in_ball, in_part, nonfinite_reason, violated,
    violation_margin,
)
from checkers.strategies import inputs_in
from checkers.verdict import Status, Verdict, Witness
from spec import ir
from spec.errors import UsageError

T = TypeVar("T")

__all__ = ["Target", "assert_holds", "examples_of", "find_counterexample", "format_witness", "replay", "robust_rows",
           "set_target", "targets"]


@dataclass(frozen=True)
class Target:
    """One thing to falsify: `part` (a box with half-spaces) and `rows` must hold on it.

    `index` is the region part, or for robustness the centre; `ball` (centre, eps, norm)
    further limits the points; `label` is the label at the centre. `box` is the part's
    float32 box (`checkers.semantics.float32_box`; None: the target holds no float32 point, it
    holds vacuously and no point is drawn for it). `undefined` is the reason the target has no
    truth value (NaN or infinite scores at a robustness centre: no label), else ""; such a
    target has no witness either."""

    index: int
    part: ir.RegionPart
    rows: Rows
    ball: tuple[tuple[float, ...], float, ir.Norm] | None = None
    label: int | None = None
    box: ir.Box | None = None
    undefined: str = ""

    @property
    def empty(self) -> bool:
        """The target holds no float32 point (so it holds vacuously)."""
        return self.box is None


def _scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        y: torch.Tensor = model(x.to(torch.float32))
    return y


def _above(a: int, b: int, decide: ir.Decide) -> ir.Order:
    """a strictly ahead of b under the decide rule (argmax: y[a] > y[b]; argmin: y[a] < y[b])."""
    return ir.Order(a, b, True) if decide is ir.Decide.ARGMAX else ir.Order(b, a, True)


def _set_ahead(labels: tuple[int, ...], m: int, decide: ir.Decide) -> tuple[ir.Order, ...]:
    """Every label of `labels` strictly ahead of every label outside it (a conjunction)."""
    return tuple(_above(a, b, decide) for a in labels for b in range(m) if b not in labels)


def _ranking(y: torch.Tensor, decide: ir.Decide) -> list[int]:
    """The labels best first: the `decision` label, then the rest (ties: the lower index first)."""
    first = int(decision(y, decide)[0])
    v = y[0].tolist()
    return [first, *sorted((j for j in range(len(v)) if j != first),
                           key=lambda j: (-v[j] if decide is ir.Decide.ARGMAX else v[j], j))]


def robust_rows(kind: ir.RobustKind, y: torch.Tensor, decide: ir.Decide = ir.Decide.ARGMAX) -> Rows:
    """What must hold at every point x' of the ball, for scores y (1, m) at the centre (pointwise).

    - Local: the label at the centre strictly ahead of every other label.
    - TopK(k): for SOME j <= k, T_j (the top-j labels at the centre) strictly ahead of every label
      outside T_j (a DNF over j). A point that breaks it breaks every T_j, j <= k, at once: relaxed
      top-k needs one T_j stable in the whole ball, so that point refutes the property (sound). The
      property can also fail with no such point (T_1 broken here, T_2 there): those are not found.
    - Affinity(sets): with S the affinity set of the centre's label ({label} when it is in none),
      some label of S strictly ahead of every label outside S (the prediction stays in S; a tie
      with a label outside S is a change). A DNF over the labels of S.
    At a centre with tied scores the ranking breaks ties by index; a tie across the boundary of
    T_j means no top-j set exists there, and the centre itself breaks T_j (a tie is a change).
    """
    m = int(y.shape[1])
    rank = _ranking(y, decide)
    if isinstance(kind, ir.TopK):
        disjuncts = tuple(_set_ahead(tuple(rank[:j]), m, decide) for j in range(1, min(kind.k, m) + 1))
        return compile_ordering(ir.Ordering(disjuncts), m)
    if isinstance(kind, ir.Affinity):
        label = rank[0]
        group = next((s for s in kind.sets if label in s), (label,))
        outside = [b for b in range(m) if b not in group]
        return compile_ordering(ir.Ordering(tuple(tuple(_above(a, b, decide) for b in outside) for a in group)), m)
    return compile_ordering(ir.Ordering((_set_ahead((rank[0],), m, decide),)), m)


def targets(model: nn.Module, prop: ir.Property, network: ir.Network | None = None) -> list[Target]:
    """The property as targets. Raises UsageError for what the falsifiers cannot check.

    Orderings: one target per region part. Robustness at given points (local, relaxed top-k,
    affinity): one target per centre, on the ball's box intersected with the domain (the ball
    itself is checked exactly on replay), its rows `robust_rows` of the centre's float32 scores.
    """
    req = prop.requirement
    decide = network.decide if network is not None else ir.Decide.ARGMAX
    if isinstance(req, ir.Ordering):
        m = network.n_outputs if network is not None else int(_scores(model, _zeros(prop)).shape[1])
        rows = compile_ordering(req, m)
        return [Target(k, part, rows, box=float32_box(part)) for k, part in enumerate(prop.region.parts)]
    if req.dataset is not None:
        raise UsageError(f"property {prop.name}: the falsifiers check orderings and robustness at given points, "
                         f"not {ir.requirement_str(req)!r}")
    out = []
    for k, centre in enumerate(req.points):
        x0 = torch.tensor([centre], dtype=torch.float32)
        y = _scores(model, x0)
        label = int(decision(y, decide)[0])
        box = ball_box(centre, req.eps)  # the ball's float32 points (centre +- eps rounds in float64)
        if network is not None:
            box = box.intersect(network.domain)
        undefined = "" if bool(finite(y)[0]) else nonfinite_reason(x0[0], y[0], "the centre x")
        rows = robust_rows(req.kind, y, decide) if not undefined else compile_ordering(ir.Ordering(((),)), int(y.shape[1]))
        out.append(Target(k, ir.RegionPart(box), rows, (centre, req.eps, req.norm), label, float32_box(box), undefined))
    return out


def set_target(target: Target, labels: tuple[int, ...], m: int, decide: ir.Decide = ir.Decide.ARGMAX) -> Target:
    """The target's ball with rows "every label of `labels` strictly ahead of every other label".

    The pointwise form of a certified set (GloRo's T_k, `checkers.lipschitz.certify`): a replayed
    witness of it is a float32 point of the ball where the set is not the strict top-|labels| set.
    """
    return replace(target, rows=compile_ordering(ir.Ordering((_set_ahead(tuple(labels), m, decide),)), m))


def _zeros(prop: ir.Property) -> torch.Tensor:
    return torch.zeros(1, len(prop.region.parts[0].box.lower))


def replay(model: nn.Module, target: Target, x: torch.Tensor, decide: ir.Decide = ir.Decide.ARGMAX,
           limit: int = 8) -> Witness | None:
    """The first candidate of x (K, n) that, replayed alone in float32, lies in the target and violates it.

    Replayed alone: the candidates that violate the target in the batch (`limit` of them), then the two
    nearest to a violation (a batch may sum in another order than one point alone, and round differently)."""
    x = x.detach().to(torch.float32)
    if x.shape[0] == 0 or target.empty:
        return None
    y = _scores(model, x)
    inside = in_part(replace(target.part, predicted=None), x)
    if target.part.predicted is not None:
        inside &= torch.isin(decision(y, decide), torch.tensor(target.part.predicted))
    bad = inside & violated(target.rows, y)  # finite scores only: NaN or inf is never a witness
    # a batch may sum in another order than one point alone (BLAS): points within a rounding error of a
    # violation in the batch are replayed alone too, the nearest first
    close = torch.zeros(0, dtype=torch.long)
    if target.rows.disjuncts and all(target.rows.disjuncts):  # (an empty conjunction always holds)
        margin = violation_margin(target.rows, y)
        near = inside & ~bad & finite(y) & (margin >= -1e-6 * (y.abs().amax(dim=1).to(torch.float64) + 1.0))
        close = near.nonzero().flatten()
        close = close[margin[close].argsort(descending=True)]
    for i in bad.nonzero().flatten().tolist()[:limit] + close.tolist()[:2]:
        point = x[i].tolist()
        if target.ball is not None and not in_ball(point, target.ball):
            continue
        alone = _scores(model, x[i : i + 1])
        if target.part.predicted is not None and int(decision(alone, decide)[0]) not in target.part.predicted:
            continue
        if bool(violated(target.rows, alone)[0]):
            return Witness(tuple(point), tuple(alone[0].tolist()), target.index)
    return None


def target_points(target: Target) -> st.SearchStrategy[tuple[float, ...]]:
    """Hypothesis points for a target: `inputs_in` its box, and for an l2 ball also points pushed onto the sphere.

    A target with no float32 point (`Target.empty`) draws nothing: `st.nothing()`."""
    if target.empty:
        return st.nothing()
    points = inputs_in(replace(target.part, predicted=None))
    if target.ball is None or target.ball[2] is ir.Norm.LINF:
        return points
    centre, eps, _ = target.ball
    c = torch.tensor(centre, dtype=torch.float64)

    def onto_sphere(p: tuple[float, ...]) -> tuple[float, ...]:
        d = torch.tensor(p, dtype=torch.float64) - c
        n = float(d.norm())
        return tuple((c + d * (eps / n)).to(torch.float32).tolist()) if n > 0 else p

    return st.one_of(points, points.map(onto_sphere))


def hypothesis_points(strategies: list[st.SearchStrategy[tuple[float, ...]]], examples: int, seed: int = 0,
                      data: st.DataObject | None = None) -> list[list[tuple[float, ...]]]:
    """Points for each strategy: `examples` draws in all, by `data` or by a run of our own.

    An empty strategy (`st.nothing()`: a target with no float32 point) gets no points."""
    out: list[list[tuple[float, ...]]] = [[] for _ in strategies]
    live = [k for k, s in enumerate(strategies) if not s.is_empty]
    if not live:
        return out
    index = st.integers(0, len(strategies) - 1) if len(live) == len(strategies) else st.sampled_from(live)
    picks = index.flatmap(lambda k: st.tuples(st.just(k), strategies[k]))
    if data is not None:
        for _ in range(examples):
            k, p = data.draw(picks)
            out[k].append(p)
        return out
    if currently_in_test_context():
        raise UsageError("called inside a Hypothesis test: pass data=... (a st.data() draw) so that the outer test "
                         "draws the points (Hypothesis does not nest @given)")

    @hypothesis.seed(seed)
    @settings(max_examples=examples, database=None, deadline=None, derandomize=False, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(picks)
    def collect(pick: tuple[int, tuple[float, ...]]) -> None:
        out[pick[0]].append(pick[1])

    collect()
    return out


def points_together(strategies: list[st.SearchStrategy[tuple[float, ...]]], examples: int,
                    seed: int = 0) -> list[list[tuple[float, ...]]]:
    """`examples` points for every strategy, one run of Hypothesis drawing one point of each per example (batched).

    An empty strategy (`st.nothing()`: a target with no float32 point) gets no points."""
    out: list[list[tuple[float, ...]]] = [[] for _ in strategies]
    live = [k for k, s in enumerate(strategies) if not s.is_empty]
    if not live:
        return out
    for drawn in examples_of(st.tuples(*(strategies[k] for k in live)), examples, seed):
        for k, p in zip(live, drawn, strict=True):
            out[k].append(p)
    return out


def examples_of(strategy: st.SearchStrategy[T], count: int, seed: int = 0) -> list[T]:
    """`count` examples of a strategy, from a run of Hypothesis seeded by `seed` (not shrunk, no database).

    Hypothesis may stop early when the strategy has fewer distinct examples; the list is then shorter.
    """
    if currently_in_test_context():
        raise UsageError("examples_of is for building batches outside a Hypothesis test")
    out: list[T] = []

    @hypothesis.seed(seed)
    @settings(max_examples=count, database=None, deadline=None, derandomize=False, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: T) -> None:
        out.append(example)

    collect()
    return out


def pgd_points(model: nn.Module, target: Target, *, starts: int = 8, steps: int = 20, seed: int = 0) -> torch.Tensor:
    """PGD candidates (K, n) for the target (its box; an l2 ball's points are pulled into the ball)."""
    n = len(target.part.box.lower)
    if target.box is None:  # no float32 point: nothing to attack
        return torch.zeros(0, n)
    lo = torch.tensor(target.box.lower, dtype=torch.float64)
    hi = torch.tensor(target.box.upper, dtype=torch.float64)
    always = any(not conj for conj in target.rows.disjuncts)  # an empty conjunction: the rows always hold
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()) or not target.rows.disjuncts or always:
        return torch.zeros(0, n)
    gen = torch.Generator().manual_seed(seed)
    x = pgd(model, target.rows, lo, hi, starts=starts, steps=steps, generator=gen)
    if target.ball is not None and target.ball[2] is ir.Norm.L2:
        c = torch.tensor(target.ball[0], dtype=torch.float64)
        d = x.to(torch.float64) - c
        scale = (target.ball[1] / d.norm(dim=1).clamp(min=1e-300)).clamp(max=1.0)
        x = torch.cat([x, (c + d * scale[:, None]).to(torch.float32)])
    return x


def find_counterexample(model: nn.Module, prop: ir.Property, network: ir.Network | None = None, *,
                        examples: int | None = None, pgd_steps: int | None = None, seed: int = 0,
                        data: st.DataObject | None = None) -> Witness | None:
    """A replayed float32 counterexample to `prop` on `model` ((B, n) -> (B, m)), or None.

    Args:
        network: the declared network (its decide rule and domain); default argmax, no domain.
        examples: Hypothesis points in all (default 200 in a run of our own, 10 per example of an outer
            test, which runs many examples anyway); pgd_steps: PGD steps (0: no PGD; default 30 in a run of
            our own, 0 with `data`: the drawn points are then the whole search, so the outer test shrinks them).
        data: inside a Hypothesis test, its `st.data()` object (the outer test draws the points).
    Raises UsageError for a property the falsifiers cannot check (robustness over a data set).
    Top-k and affinity: see `robust_rows` (a top-k witness breaks every T_j, j <= k, at one point).
    """
    if examples is None:
        examples = 200 if data is None else 10
    if pgd_steps is None:
        pgd_steps = 30 if data is None else 0
    if not isinstance(examples, int) or examples < 1:
        raise UsageError(f"examples={examples!r} must be a positive integer")
    decide = network.decide if network is not None else ir.Decide.ARGMAX
    model = model.eval()
    found = targets(model, prop, network)
    drawn = hypothesis_points([target_points(t) for t in found], examples, seed, data)
    for t, points in zip(found, drawn, strict=True):
        n = len(t.part.box.lower)
        w = replay(model, t, torch.tensor(points, dtype=torch.float32).reshape(len(points), n), decide)
        if w is not None:
            return w
    if pgd_steps > 0:
        for t in found:
            w = replay(model, t, pgd_points(model, t, steps=pgd_steps, seed=seed), decide)
            if w is not None:
                return w
    return None


def format_witness(prop: ir.Property, w: Witness, network: ir.Network | None = None, how: str = "") -> str:
    """A message that shows the witness: x, the float32 scores, the prediction and what fails."""
    decide = network.decide if network is not None else ir.Decide.ARGMAX
    y = torch.tensor([w.y])
    label = int(decision(y, decide)[0])
    req = prop.requirement
    where = f"centre {w.part} = {list(req.points[w.part])}" if isinstance(req, ir.Robust) else f"region part {w.part}"
    return (f"property {prop.name} fails{f' ({how})' if how else ''}: a float32 counterexample, replayed alone\n"
            f"  x      = {list(w.x)}  (in {where})\n  scores = {list(w.y)}\n  prediction = {label}\n"
            f"  requirement: {ir.requirement_str(req)}")


def assert_holds(model: nn.Module, prop: ir.Property, network: ir.Network | None = None, *, verify: bool = True,
                 require_proof: bool = False, timeout: float = 10.0, examples: int | None = None,
                 pgd_steps: int | None = None,
                 seed: int = 0, data: st.DataObject | None = None) -> Verdict | None:
    """Fail (AssertionError showing the replayed witness) when a falsifier or the exact verifier refutes `prop`.

    The exact verifier (`checkers.verify`) runs when `verify` and it applies (a ReLU network,
    a declared `network`, an ordering or local robustness at points). Returns its verdict
    (None when it did not run). With `require_proof`, anything but HOLDS fails too.
    """
    w = find_counterexample(model, prop, network, examples=examples, pgd_steps=pgd_steps, seed=seed, data=data)
    if w is not None:
        raise AssertionError(format_witness(prop, w, network, "found by the falsifiers"))
    verdict = None
    if verify and network is not None:
        from checkers.verify import VerifyOptions, verify_property
        from spec.errors import ModelError

        try:
            verdict = verify_property(model, prop, network, VerifyOptions(timeout=timeout, seed=seed))
        except ModelError as err:
            if require_proof:
                raise AssertionError(f"property {prop.name}: no proof: {err.message}") from None
            return None
        if verdict.status is Status.VIOLATED:
            assert verdict.witness is not None
            raise AssertionError(format_witness(prop, verdict.witness, network, "found by the exact verifier"))
    if require_proof and (verdict is None or verdict.status is not Status.HOLDS):
        why = "no network given" if verdict is None else f"{verdict.status.value}: {verdict.reason}"
        raise AssertionError(f"property {prop.name}: not proven ({why})")
    return verdict
