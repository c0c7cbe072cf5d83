"""The complete verifier for piecewise-linear networks: falsify first, then branch and bound.

For each region part: random points and PGD look for a counterexample; then the input
box is split (input-splitting branch and bound) until, on every sub-box, some disjunct
of the requirement is proven by the CROWN bounds of `checkers.bounds` with the float32
margin of `checkers.floaterror` added, or a candidate (box centres and the corners the
bounds point at) is confirmed as a violation by `checkers.semantics`.

On small networks (at most `exact_neurons` hidden neurons) a box still open after
`exact_depth` splits (and again after each further `exact_depth`) goes to Z3
(`checkers.z3check`, exact over the reals) with the float32 error bounds of the box as a
`Drift` on the scores: "unsat" settles the box, which is how half-spaces that cut a box diagonally and
disjunctions that only hold jointly get proven. A "sat" point is rounded to float32
and replayed; if the float32 model does not violate there but the real network does
(exact rational evaluation), it is a counterexample in exact arithmetic only: the
verdict is then UNKNOWN, with the point in the reason and in `stats["exact_witness"]`,
never HOLDS and never VIOLATED.

With more than `relu_split_inputs` inputs (an image), splitting the input box is
hopeless; the branch and bound then splits ReLU phases instead (`checkers.relusplit`:
beta-CROWN bounds, the same float32 margin).

Verdicts: HOLDS (proven for the float32 model on every float32 input of the region),
VIOLATED (a replayed float32 witness), TIMEOUT (the time limit), UNKNOWN (a reason:
an unsupported requirement or region, an unbounded region, boxes that could not be
split further without a decision, or a counterexample in exact arithmetic only).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

from checkers.attack import inner_float32, pgd, random_points
from checkers.bounds import HiddenBounds, crown_hidden_bounds, input_sensitivity, spec_upper_bounds
from checkers.floaterror import output_error, row_error
from checkers.plnet import PLNet, from_module
from checkers.relusplit import relu_split
from checkers.semantics import (
    VACUOUS, Rows, ball_box, compile_ordering, finite, float32_box, in_ball, in_part, nonfinite_reason, violated,
)
from checkers.verdict import Status, Verdict, Witness
from checkers.z3check import Drift, real_holds, real_scores, z3_decide
from spec import ir

Progress = Callable[[float], None]
# lower, upper, bounds inherited from the parents, splits from the root (B,)
_Boxes = tuple[torch.Tensor, torch.Tensor, HiddenBounds | None, torch.Tensor]


def _slice(bounds: HiddenBounds, which: slice | torch.Tensor) -> HiddenBounds:
    return HiddenBounds(tuple(b[which] for b in bounds.lower), tuple(b[which] for b in bounds.upper))


@dataclass(frozen=True)
class VerifyOptions:
    """timeout: seconds per property; batch: boxes bounded at once; min_width: a box is
    not split below this width (it is then left undecided); float_width: a box proven for
    the real-valued network but not within the float32 margin is not split once the side
    it would split is below this fraction of the region's (splitting further cannot
    shrink the margin below the rounding error). exact_neurons, exact_depth, exact_ms:
    the Z3 leaves (see the module docstring); exact_ms is the Z3 time for a box the bounds
    gave up on (a tenth of it for one they may still settle). relu_split_inputs: a region
    with more inputs than this is decided by branching on ReLU phases
    (`checkers.relusplit`) instead of splitting the input box."""

    timeout: float = 60.0
    batch: int = 512
    attack_starts: int = 32
    attack_steps: int = 30
    seed: int = 0
    min_width: float = 1e-9
    float_width: float = 1e-3
    exact_neurons: int = 64
    exact_depth: int = 8
    exact_ms: int = 2000
    relu_split_inputs: int = 32


@dataclass
class _Part:
    index: int
    part: ir.RegionPart
    lower: torch.Tensor
    upper: torch.Tensor
    ball: tuple[tuple[float, ...], float, ir.Norm] | None = None  # a ball (centre, radius, norm) witnesses lie in


class _Search:
    def __init__(self, module: nn.Module, net: PLNet, req: ir.Ordering, options: VerifyOptions, deadline: float) -> None:
        self.module, self.net, self.req, self.options, self.deadline = module, net, req, options, deadline
        self.rows: Rows = compile_ordering(req, net.n_outputs)
        self.generator = torch.Generator().manual_seed(options.seed)
        self.strict = torch.tensor(self.rows.strict, dtype=torch.bool)
        self.boxes = 0
        self.exact_calls = 0
        self.exact = sum(w.shape[0] for w in net.weights[:-1]) <= options.exact_neurons
        self.exact_witness: list[Fraction] | None = None  # a real counterexample float32 does not reproduce
        self.nonfinite: tuple[list[float], list[float]] | None = None  # (x, y): a point of the part with NaN/inf scores

    def witness(self, target: _Part, x: torch.Tensor) -> Witness | None:
        """The first candidate (K, n) float32 that lies in the part and violates the requirement.

        A candidate in the part whose scores are not finite is no witness (a comparison with NaN or
        inf has no truth value); the first one is kept in `self.nonfinite` for the UNKNOWN reason."""
        x = x.to(torch.float32)
        with torch.no_grad():
            y = self.module(x)
        inside = in_part(target.part, x)
        if target.ball is not None and target.ball[2] is ir.Norm.L2:  # a screen; the ball is checked exactly below
            centre = torch.tensor(target.ball[0], dtype=torch.float64)
            # norms, not squares: eps**2 overflows above about 1.3e154
            inside &= (x.to(torch.float64) - centre).norm(dim=1) <= target.ball[1] * (1 + 1e-12)
        if self.nonfinite is None:
            self._note_nonfinite(target, x, inside & ~finite(y))
        bad = inside & violated(self.rows, y)
        if target.ball is not None:
            bad &= torch.tensor([bool(b) and in_ball(x[i].tolist(), target.ball) for i, b in enumerate(bad.tolist())],
                                dtype=torch.bool)
        for i in bad.nonzero().flatten().tolist()[:8]:
            # replay alone: float32 scores may differ in the last bits between batch sizes
            with torch.no_grad():
                alone = self.module(x[i : i + 1])
            if bool(violated(self.rows, alone)[0]):
                return Witness(tuple(x[i].tolist()), tuple(alone[0].tolist()), target.index)
        return None

    def _note_nonfinite(self, target: _Part, x: torch.Tensor, candidates: torch.Tensor) -> None:
        """Keep the first candidate of the part (and ball) whose scores, replayed alone, are not finite."""
        for i in candidates.nonzero().flatten().tolist()[:4]:
            if target.ball is not None and not in_ball(x[i].tolist(), target.ball):
                continue
            with torch.no_grad():
                alone = self.module(x[i : i + 1])
            if not bool(finite(alone)[0]):
                self.nonfinite = (x[i].tolist(), alone[0].tolist())
                return

    def undecided(self, verdict: Verdict) -> Verdict:
        """No HOLDS once some float32 point of the region gave non-finite scores: UNKNOWN with that point.

        (The float32 error bound is infinite where a value may overflow, so HOLDS is not reached there; this
        keeps it so whatever the bound.) A VIOLATED verdict (a finite witness elsewhere) stands."""
        if self.nonfinite is None or verdict.status is Status.VIOLATED:
            return verdict
        x, y = self.nonfinite
        return Verdict(Status.UNKNOWN, reason=nonfinite_reason(x, y), stats=verdict.stats)

    def falsify(self, target: _Part) -> Witness | None:
        opts = self.options
        found = self.witness(target, random_points(target.lower, target.upper, 256, self.generator))
        if found is None and self.rows.disjuncts:
            starts, steps = opts.attack_starts, opts.attack_steps
            found = self.witness(target, pgd(self.module, self.rows, target.lower, target.upper, starts=starts,
                                             steps=steps, generator=self.generator))
        return found

    def _proven(self, ub: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
        value = ub + margin
        atom_ok = torch.where(self.strict, value < 0, value <= 0)
        proven = torch.zeros(ub.shape[0], dtype=torch.bool)
        for conj in self.rows.disjuncts:
            proven |= atom_ok[:, list(conj)].all(dim=1)
        return proven

    def _outside(self, target: _Part, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """Boxes that miss some half-space of the part entirely (the property is vacuous there)."""
        out = torch.zeros(lo.shape[0], dtype=torch.bool)
        for h in target.part.halfspaces:
            idx = [i for i, _ in h.coeffs]
            c = torch.tensor([c for _, c in h.coeffs], dtype=torch.float64)
            least = torch.where(c > 0, lo[:, idx], hi[:, idx]) @ c
            # clear the bound by more than the float64 rounding of `least` (then strictness is moot)
            scale = torch.maximum(lo[:, idx].abs(), hi[:, idx].abs()) @ c.abs() + abs(h.bound)
            out |= least > h.bound + 1e-12 * scale
        return out

    def prove(self, target: _Part, progress: Progress | None) -> Verdict:
        if self.net.n_inputs > self.options.relu_split_inputs and len(self.net.weights) > 1:
            return self._prove_by_relu_split(target)
        root_lo, root_hi = target.lower[None], target.upper[None]
        total = float((root_hi - root_lo).clamp(min=0).prod()) or 1.0
        stack: list[_Boxes] = [(root_lo, root_hi, None, torch.zeros(1, dtype=torch.long))]
        done, undecided, float_only = 0.0, 0, 0
        root_width = (root_hi - root_lo)[0].clamp(min=1e-300)
        exact = self.exact and (target.ball is None or target.ball[2] is ir.Norm.LINF)  # Z3 sees the box, not an l2 ball
        while stack:
            if time.monotonic() > self.deadline:
                return Verdict(Status.TIMEOUT, reason=f"time limit reached with {len(stack)} batches of boxes open")
            lo, hi, inherited, depth = self._take(stack)
            self.boxes += lo.shape[0]
            hidden = crown_hidden_bounds(self.net, lo, hi, inherited)
            ub, lam = spec_upper_bounds(self.net, lo, hi, self.rows.matrix, self.rows.consts, hidden)
            margin = row_error(self.net, self.rows.matrix, lo, hi, hidden)
            settled = self._proven(ub, margin) | self._outside(target, lo, hi)
            real_only = self._proven(ub, torch.zeros_like(margin))
            open_ = ~settled
            done += float((hi[settled] - lo[settled]).prod(dim=1).sum()) / total
            if progress is not None:
                progress(min(done, 1.0))
            lo, hi, lam, depth, margin = lo[open_], hi[open_], lam[open_], depth[open_], margin[open_]
            kept = _slice(hidden, open_)
            if lo.shape[0] == 0:
                continue
            found = self.witness(target, self._candidates(lo, hi, lam))
            if found is not None:
                return Verdict(Status.VIOLATED, found, "a candidate from branch and bound replayed in float32")
            width = hi - lo
            # the smear: the inputs that can move the rows most over the box (the linear bound's own
            # coefficients are a worse guide: they keep choosing sides that are already narrow)
            score = input_sensitivity(self.net, self.rows.matrix, lo, kept) * width
            dims = score.argmax(dim=1)
            split_width = width.gather(1, dims[:, None])[:, 0]
            # proven over the reals, and already narrow where it would be split next
            float_bound = real_only[open_] & (split_width <= self.options.float_width * root_width[dims])
            splittable = (split_width > self.options.min_width) & ~float_bound
            resolved = torch.zeros_like(splittable)
            if exact:  # Z3 every `exact_depth` splits, and for boxes the bounds give up on
                step = self.options.exact_depth
                ask = ((depth > 0) & (depth % step == 0)) | ~splittable
                for i in ask.nonzero().flatten().tolist():
                    # a box the bounds may still settle gets a tenth of the Z3 time of one they gave up on
                    ms = self.options.exact_ms // (10 if splittable[i] else 1)
                    outcome, found = self._exact_leaf(target, lo[i], hi[i], _slice(kept, slice(i, i + 1)), margin[i], ms)
                    if found is not None:
                        return Verdict(Status.VIOLATED, found, "a Z3 counterexample replayed in float32")
                    resolved[i] = outcome != "open"
                    float_only += outcome == "float"
                    done += float((hi[i] - lo[i]).prod()) / total if outcome == "proven" else 0.0
                splittable &= ~resolved
                float_bound &= ~resolved
            float_only += int(float_bound.sum())
            undecided += int((~splittable & ~float_bound & ~resolved).sum())
            lo, hi, dims, depth = lo[splittable], hi[splittable], dims[splittable], depth[splittable]
            if lo.shape[0]:
                mid = (lo.gather(1, dims[:, None]) + hi.gather(1, dims[:, None])) / 2
                left_hi, right_lo = hi.clone(), lo.clone()
                left_hi.scatter_(1, dims[:, None], mid)
                right_lo.scatter_(1, dims[:, None], mid)
                twice = HiddenBounds(
                    tuple(torch.cat([b[splittable]] * 2) for b in kept.lower),
                    tuple(torch.cat([b[splittable]] * 2) for b in kept.upper),
                )
                stack.append((torch.cat([lo, right_lo]), torch.cat([left_hi, hi]), twice, torch.cat([depth, depth]) + 1))
        if self.exact_witness is not None:
            point = ", ".join(str(v) for v in self.exact_witness)
            return Verdict(Status.UNKNOWN, reason=f"the real-valued network violates the requirement at x = ({point}) "
                           "(exact arithmetic, found by Z3), but float32 execution does not reproduce it",
                           stats={"exact_witness": [str(v) for v in self.exact_witness]})
        if float_only:
            return Verdict(Status.UNKNOWN, reason=f"holds for the real-valued network, but on {float_only} boxes the "
                           "margin is within the float32 rounding bound, so float32 execution is not proven")
        if undecided:
            return Verdict(Status.UNKNOWN, reason=f"{undecided} boxes narrower than {self.options.min_width} stayed undecided")
        return Verdict(Status.HOLDS, reason="every box proven by linear bounds or Z3, with the float32 error margin")

    def _prove_by_relu_split(self, target: _Part) -> Verdict:
        """Branch on ReLU phases over the part's box (half-spaces and an l2 ball are bounded by the box)."""
        root = crown_hidden_bounds(self.net, target.lower[None], target.upper[None])
        inner_lo, inner_hi = inner_float32(target.lower, target.upper)

        def check(points: torch.Tensor) -> Witness | None:
            return self.witness(target, torch.maximum(torch.minimum(points.to(torch.float32), inner_hi), inner_lo))

        outcome, domains, found = relu_split(self.net, self.rows, target.lower, target.upper, root, self.deadline, check)
        self.boxes += domains
        if found is not None:
            return Verdict(Status.VIOLATED, found, "a candidate from the ReLU-phase branch and bound replayed in float32")
        if outcome == "holds":
            return Verdict(Status.HOLDS, reason=f"all {domains} ReLU-phase domains proven by beta-CROWN bounds, with "
                           "the float32 error margin")
        if outcome == "timeout":
            return Verdict(Status.TIMEOUT, reason=f"time limit reached after {domains} ReLU-phase domains")
        if outcome == "float":
            return Verdict(Status.UNKNOWN, reason="holds for the real-valued network, but on a domain with every neuron "
                           "fixed the margin is within the float32 rounding bound")
        return Verdict(Status.UNKNOWN, reason="a ReLU-phase domain with every neuron fixed stayed unproven")

    def _exact_leaf(
        self, target: _Part, lo: torch.Tensor, hi: torch.Tensor, hidden: HiddenBounds, margin: torch.Tensor, ms: int,
    ) -> tuple[str, Witness | None]:
        """Z3 on one box: ("proven" | "float" | "exact" | "open", a float32 witness or None).

        "float": Z3 found a point where the requirement holds, but not by the float32 error bound;
        "exact": a real counterexample that float32 does not reproduce (kept for the verdict).
        """
        left_ms = int((self.deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            return "open", None
        self.exact_calls += 1
        box = ir.Box(tuple(lo.tolist()), tuple(hi.tolist()), (False,) * lo.numel(), (False,) * lo.numel())
        part = ir.RegionPart(target.part.box.intersect(box), target.part.halfspaces)
        drift = Drift(tuple(output_error(self.net, lo[None], hi[None], hidden)[0].tolist()),
                      {atom: float(m) for atom, m in zip(self.rows.atoms, margin.tolist(), strict=True)})
        if not all(map(math.isfinite, [*drift.output, *drift.atoms.values(), *lo.tolist(), *hi.tolist()])):
            return "open", None  # an overflowing error bound (or box) has no exact value for Z3
        result, x = z3_decide(self.net, part, self.req, timeout_ms=min(ms, left_ms), hidden=hidden, drift=drift)
        if result == "unsat":
            return "proven", None
        if result != "sat" or x is None:
            return "open", None
        found = self._replay(target, x)
        if found is not None or not real_holds(self.req, real_scores(self.net, x)):
            return self._exact_point(x, found)
        # only the rounding bound breaks it there: is there a real counterexample at all?
        left_ms = int((self.deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            return "open", None
        result, x = z3_decide(self.net, part, self.req, timeout_ms=min(ms, left_ms), hidden=hidden)
        if result == "unsat":
            return "float", None
        if result != "sat" or x is None:
            return "open", None
        return self._exact_point(x, self._replay(target, x))

    def _replay(self, target: _Part, x: list[Fraction]) -> Witness | None:
        """A float32 witness at the exact point or at one of its float32 neighbours, if any."""
        point = torch.tensor([float(v) for v in x], dtype=torch.float64)
        above, below = inner_float32(point, point)  # the float32 neighbours of the exact point
        return self.witness(target, torch.stack([point.to(torch.float32), above, below]))

    def _exact_point(self, x: list[Fraction], found: Witness | None) -> tuple[str, Witness | None]:
        if found is None and self.exact_witness is None:
            self.exact_witness = x
        return "exact", found

    def _take(self, stack: list[_Boxes]) -> _Boxes:
        lo, hi, inherited, depth = stack.pop()
        # at most `batch` boxes, and at most about 2^24 numbers in the (B, n, n) forward bounds
        size = max(1, min(self.options.batch, 2**24 // lo.shape[1] ** 2))
        if lo.shape[0] > size:
            rest = None if inherited is None else _slice(inherited, slice(size, None))
            stack.append((lo[size:], hi[size:], rest, depth[size:]))
            lo, hi, depth = lo[:size], hi[:size], depth[:size]
            inherited = None if inherited is None else _slice(inherited, slice(0, size))
        return lo, hi, inherited, depth

    @staticmethod
    def _candidates(lo: torch.Tensor, hi: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        """Box centres, and for each row the corner where its linear upper bound is largest."""
        centre, radius = (lo + hi) / 2, (hi - lo) / 2
        corners = centre[:, None, :] + lam.sign() * radius[:, None, :]
        points = torch.cat([centre, corners.reshape(-1, lo.shape[1])])
        inner_lo, inner_hi = inner_float32(points.min(dim=0).values, points.max(dim=0).values)
        return torch.maximum(torch.minimum(points.to(torch.float32), inner_hi), inner_lo)


def _targets(prop: ir.Property) -> list[_Part] | str:
    """The region parts to search, each on its float32 box (`float32_box`); a part with no float32 point
    is left out (it holds vacuously), so an empty list means the whole region has none."""
    targets = []
    for k, part in enumerate(prop.region.parts):
        if part.predicted is not None:
            return "the verifier does not decide regions with a condition on the prediction yet"
        if not all(map(math.isfinite, (*part.box.lower, *part.box.upper))):
            return "the region is unbounded: declare a domain"
        box = float32_box(part)
        if box is None:
            continue
        lo = torch.tensor(box.lower, dtype=torch.float64)
        hi = torch.tensor(box.upper, dtype=torch.float64)
        targets.append(_Part(k, part, lo, hi))
    return targets


def _combine(verdicts: list[Verdict]) -> Verdict:
    for status in (Status.VIOLATED, Status.TIMEOUT, Status.UNKNOWN):
        for v in verdicts:
            if v.status is status:
                return v
    return verdicts[0] if verdicts else Verdict(Status.HOLDS, reason="the region is empty")


def verify_ordering(
    module: nn.Module, net: PLNet, prop: ir.Property, options: VerifyOptions = VerifyOptions(),
    progress: Progress | None = None, targets: list[_Part] | None = None,
) -> Verdict:
    """Decide an Ordering property on a model (float32 torch module) and its PLNet."""
    start = time.monotonic()
    assert isinstance(prop.requirement, ir.Ordering)
    if any(len(conj) == 0 for conj in prop.requirement.disjuncts):  # "true": nothing can break it
        return Verdict(Status.HOLDS, reason="a disjunct with no atoms (true) holds everywhere",
                       stats={"seconds": time.monotonic() - start})
    found = _targets(prop) if targets is None else targets
    if isinstance(found, str):
        return Verdict(Status.UNKNOWN, reason=found)
    if not found:
        return Verdict(Status.HOLDS, reason=VACUOUS, stats={"seconds": time.monotonic() - start})
    search = _Search(module, net, prop.requirement, options, start + options.timeout)
    for target in found:
        witness = search.falsify(target)
        if witness is not None:
            return Verdict(Status.VIOLATED, witness, "found by the falsifier, replayed in float32",
                           {"seconds": time.monotonic() - start})
    verdicts = [search.prove(t, progress) for t in found]
    verdict = search.undecided(_combine(verdicts))
    verdict.stats.update(seconds=time.monotonic() - start, boxes=search.boxes, z3_calls=search.exact_calls)
    return verdict


def _local_robustness(
    module: nn.Module, net: PLNet, prop: ir.Property, network: ir.Network, options: VerifyOptions,
    progress: Progress | None,
) -> Verdict:
    """Local robustness at given points: each ball, clipped to the domain, must keep the label.

    The label is the model's float32 prediction at the point; "keeps the label" means it
    stays strictly ahead of every other label (a tie is a change). An l2 ball is bounded
    by its enclosing box, and a witness must lie in the ball itself.
    """
    req = prop.requirement
    assert isinstance(req, ir.Robust)
    verdicts: list[Verdict] = []
    start = time.monotonic()
    for centre_values in req.points:
        # every float32 point of the ball (float32 inputs are what HOLDS covers), rounded exactly, not in float64
        box = float32_box(ball_box(tuple(centre_values), req.eps).intersect(network.domain))
        if box is None:  # the ball (in the domain) holds no float32 point
            verdicts.append(Verdict(Status.HOLDS, reason=VACUOUS))
            continue
        centre = torch.tensor(centre_values, dtype=torch.float64)
        with torch.no_grad():
            scores = module(centre.to(torch.float32)[None])[0]
        if not bool(torch.isfinite(scores).all()):  # no label: robustness of it has no truth value
            return Verdict(Status.UNKNOWN, reason=nonfinite_reason(centre.to(torch.float32), scores, "the centre x"),
                           stats={"seconds": time.monotonic() - start})
        label = int(scores.argmax() if network.decide is ir.Decide.ARGMAX else scores.argmin())
        others = [j for j in range(net.n_outputs) if j != label]
        pairs = [(label, j) if network.decide is ir.Decide.ARGMAX else (j, label) for j in others]
        ordering = ir.Ordering((tuple(ir.Order(a, b, True) for a, b in pairs),))
        part = ir.RegionPart(box)
        ball = (tuple(centre_values), req.eps, req.norm)
        target = _Part(len(verdicts), part, torch.tensor(box.lower, dtype=torch.float64),
                       torch.tensor(box.upper, dtype=torch.float64), ball)
        remaining = options.timeout - (time.monotonic() - start)
        sub = ir.Property(prop.name, prop.target, ir.Region((part,)), ordering)
        verdict = verify_ordering(module, net, sub, VerifyOptions(**{**options.__dict__, "timeout": remaining}),
                                  progress, [target])
        if verdict.status is not Status.HOLDS:
            return verdict
        verdicts.append(verdict)
    if verdicts and all(v.reason == VACUOUS for v in verdicts):
        return Verdict(Status.HOLDS, reason=VACUOUS)
    return Verdict(Status.HOLDS, reason=f"robust at all {len(verdicts)} points")


def verify_property(
    module: nn.Module, prop: ir.Property, network: ir.Network, options: VerifyOptions = VerifyOptions(),
    progress: Progress | None = None,
) -> Verdict:
    """Decide a property on a model that maps flat (batch, n) inputs to (batch, m) scores.

    Ordering properties and local robustness at given points are decided; anything else
    is UNKNOWN with the reason. Raises ModelError for a layer the verifier cannot bound.
    """
    net = from_module(module, (network.n_inputs,))
    if (net.n_inputs, net.n_outputs) != (network.n_inputs, network.n_outputs):
        from spec.errors import ModelError

        raise ModelError(
            f"the model maps {net.n_inputs} inputs to {net.n_outputs} scores, but network {network.name} "
            f"is declared real[{network.n_inputs}] -> real[{network.n_outputs}]"
        )
    req = prop.requirement
    if isinstance(req, ir.Ordering):
        return verify_ordering(module, net, prop, options, progress)
    if not isinstance(req.kind, ir.Local):
        return Verdict(Status.UNKNOWN, reason="the exact verifier decides local robustness; top-k and affinity "
                                              "robustness are for the certifiers")
    if req.dataset is not None:
        return Verdict(Status.UNKNOWN, reason=f"robustness over the data set {req.dataset!r} needs its points")
    return _local_robustness(module, net, prop, network, options, progress)
