"""The FGP certifier's Python API: decide local robustness of a ReLU network at points.

    >>> fgp = FGP(module, 64, domain=network.domain)      # a torch ReLU model, flat inputs
    >>> result = fgp.check(x0, 0.3, ir.Norm.L2)            # FGPResult
    >>> result.status, result.radius                       # Status.HOLDS / VIOLATED / UNKNOWN / TIMEOUT

Statuses (checkers.verdict.Status): HOLDS = ROBUST (the float32 model's prediction at x0
stays strictly ahead at every float32 input of the ball and domain: a tie is not robust),
VIOLATED = NOT_ROBUST (with a float32 witness in the ball and domain whose float32
prediction, replayed alone on the module, differs), UNKNOWN (a boundary within eps and no
witness found, the region budget, or NaN / infinite scores at the centre or at a point tried in
the ball: no verdict rests on them), TIMEOUT (the per-point time limit). A ball that holds no
float32 point of the domain is ROBUST vacuously (`checkers.semantics.VACUOUS`). See
`checkers.fgp.search` for the algorithm and its soundness argument.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from checkers.fgp.geometry import Geometry
from checkers.fgp.search import FGPOptions, FGPResult, Search, search_point
from checkers.fgp.witness import Replay, candidates, pgd
from checkers.plnet import from_module
from checkers.finite import check_finite
from checkers.semantics import VACUOUS, ball_box, decision, finite, float32_box, nonfinite_reason
from checkers.verdict import Status, Verdict
from spec import ir
from spec.errors import ModelError, UsageError


@dataclass(frozen=True)
class FGPBatch:
    """Results for B points: prediction (B,) long, robust (B,) bool (HOLDS), radius (B,) float64,
    and each point's FGPResult (status, witness, reason, seconds, regions)."""

    results: tuple[FGPResult, ...]
    prediction: torch.Tensor
    robust: torch.Tensor
    radius: torch.Tensor


def _check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps) or eps < 0:
        raise UsageError(f"eps={eps!r} must be a finite number >= 0")
    return float(eps)


def _reach(x0: torch.Tensor, box: ir.Box, norm: ir.Norm) -> float:
    """An upper bound on the distance (in `norm`) from x0 to the farthest point of the box (inf if unbounded)."""
    lo = torch.tensor(box.lower, dtype=torch.float64)
    hi = torch.tensor(box.upper, dtype=torch.float64)
    far = torch.maximum((x0 - lo).abs(), (hi - x0).abs())
    if not bool(torch.isfinite(far).all()):
        return math.inf
    n = far.numel()
    value = float(far.max()) if norm is ir.Norm.LINF else float(far.norm())
    return math.nextafter(value * (1 + (n + 4) * 2.0**-52), math.inf)  # covers the float64 rounding above


class FGP:
    """FGP for one model. Raises ModelError for a layer that is not affine or ReLU.

    Args:
        module: a float32 torch model mapping (batch, n) to (batch, m) scores (copied, not changed).
        n_inputs: n.
        domain: the input domain (a witness must lie in it); default: unbounded.
        decide: argmax (default) or argmin networks.
        options: time limit, batch, lower-bound mode (FGPOptions).
        device: where the search and the model run ("cpu", "cuda").
    """

    def __init__(self, module: nn.Module, n_inputs: int, *, domain: ir.Box | None = None,
                 decide: ir.Decide = ir.Decide.ARGMAX, options: FGPOptions | None = None,
                 device: str | torch.device = "cpu") -> None:
        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise UsageError(f"n_inputs={n_inputs!r} must be a positive integer")
        check_finite(module)  # ModelError naming a NaN or infinite tensor (before the ReLU-network check)
        try:
            net = from_module(module.cpu(), (n_inputs,))
        except ModelError as err:
            raise ModelError(f"FGP needs a ReLU network: {err.message}") from None
        options = options if options is not None else FGPOptions()
        if options.timeout <= 0 or options.batch < 1:
            raise UsageError(f"FGPOptions(timeout={options.timeout!r}, batch={options.batch!r}): both must be positive")
        self.device = torch.device(device)
        self.net, self.options, self.decide = net, options, decide
        self.module = copy.deepcopy(module).to(self.device).eval()
        self.geo = Geometry(net, decide, self.device)
        inf = (math.inf,) * n_inputs
        self.domain = domain if domain is not None else ir.Box(tuple(-v for v in inf), inf, (False,) * n_inputs,
                                                              (False,) * n_inputs)
        if len(self.domain.lower) != n_inputs:
            raise UsageError(f"the domain has {len(self.domain.lower)} inputs, the network {n_inputs}")
        self.domain_lo = torch.tensor(self.domain.lower, dtype=torch.float64)
        self.domain_hi = torch.tensor(self.domain.upper, dtype=torch.float64)

    def _centre(self, x0: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x0).detach().to("cpu", torch.float64)
        if x.shape != (self.net.n_inputs,):
            raise UsageError(f"a point of shape {list(x.shape)}: the network takes ({self.net.n_inputs},)")
        if not bool(torch.isfinite(x).all()):
            raise UsageError("the point has a non-finite coordinate")
        outside = ((x < self.domain_lo) | (x > self.domain_hi)).nonzero().flatten().tolist()
        if outside:
            i = outside[0]
            raise UsageError(f"the point lies outside the domain: x[{i}]={float(x[i])!r} is not in "
                             f"[{self.domain.lower[i]!r}, {self.domain.upper[i]!r}]")
        return x

    def check(self, x0: torch.Tensor, eps: float, norm: ir.Norm = ir.Norm.L2) -> FGPResult:
        """Decide local robustness at x0 (n,) for the ball of radius eps in `norm` (see the module docstring)."""
        eps = _check_eps(eps)
        if not isinstance(norm, ir.Norm):
            raise UsageError(f"norm={norm!r} must be ir.Norm.L2 or ir.Norm.LINF")
        x = self._centre(x0)
        start = time.monotonic()
        with torch.no_grad():
            y0 = self.module(x.to(torch.float32)[None].to(self.device)).cpu()
        label = int(decision(y0, self.decide)[0])
        box = float32_box(ball_box(tuple(x.tolist()), eps).intersect(self.domain))
        if box is None:
            return self._result(Verdict(Status.HOLDS, reason=VACUOUS), label, eps, 0, start)
        if not bool(finite(y0)[0]):  # no label at the centre: robustness of it has no truth value
            return self._result(Verdict(Status.UNKNOWN, reason=nonfinite_reason(x.to(torch.float32), y0[0], "the centre x")),
                                label, 0.0, 0, start)
        # the ball's float32 points in the domain are those of the smaller ball that reaches the box's farthest
        # corner: search that one (a huge eps, 1e200, would only inflate every float64 tolerance)
        reach = _reach(x, box, norm)
        search_eps = min(eps, reach)
        deadline = start + self.options.timeout
        search, status, reason = search_point(self.geo, self.net, x, search_eps, norm, label,
                                              (self.domain_lo, self.domain_hi), self.options, deadline)
        radius = eps if status is Status.HOLDS else min(search.certified_radius(status), eps)
        verdict = Verdict(status, reason=reason)
        if status is not Status.HOLDS and (search.p.failing or status is Status.TIMEOUT):
            verdict = self._falsify(search, x, search_eps, norm, label, y0[0], verdict)
        return self._result(verdict, label, radius, search.regions, start)

    @staticmethod
    def _result(verdict: Verdict, label: int, radius: float, regions: int, start: float) -> FGPResult:
        seconds = time.monotonic() - start
        verdict.stats.update(regions=regions, seconds=seconds, radius=radius)
        return FGPResult(verdict, label, radius, regions, seconds)

    def _falsify(self, search: Search, x: torch.Tensor, eps: float, norm: ir.Norm, label: int, y0: torch.Tensor,
                 verdict: Verdict) -> Verdict:
        """Project onto the failing boundaries (closest first), then PGD; the verdict unchanged if nothing replays."""
        replay = Replay(self.module, x, eps, norm, self.domain, label, self.decide, self.device)
        p = search.p
        for g, h, _, _ in sorted(p.failing, key=lambda f: f[3]):
            found = replay.first(candidates(g.cpu(), h, x, eps, norm, p.lo.cpu(), p.hi.cpu()))
            if found is not None:
                return Verdict(Status.VIOLATED, found, "a projection onto a decision boundary, replayed in float32")
        targets = list(dict.fromkeys(j for _, _, j, _ in sorted(p.failing, key=lambda f: f[3])))
        if not targets:  # a timeout: the runners-up at the centre
            order = torch.argsort(y0, descending=self.decide is ir.Decide.ARGMAX).tolist()
            targets = [j for j in order if j != label][:3]
        opts = self.options
        found = replay.first(pgd(replay, targets, opts.attack_starts, opts.attack_steps, opts.seed))
        if found is not None:
            return Verdict(Status.VIOLATED, found, "PGD towards a failing decision boundary, replayed in float32")
        if replay.nonfinite is not None:  # the ball holds a point with NaN or inf scores: no verdict rests there
            return Verdict(Status.UNKNOWN, reason=nonfinite_reason(*replay.nonfinite))
        if verdict.status is Status.UNKNOWN:
            return Verdict(Status.UNKNOWN, reason=f"{verdict.reason}: its projections and PGD found no float32 witness")
        return verdict

    def certify(self, x: torch.Tensor, eps: float, norm: ir.Norm = ir.Norm.L2,
                progress: Callable[[int], None] | None = None) -> FGPBatch:
        """check() at every row of x (B, n); progress(i) after each point."""
        eps = _check_eps(eps)
        x = torch.as_tensor(x)
        if x.dim() != 2 or x.shape[1] != self.net.n_inputs:
            raise UsageError(f"inputs of shape {list(x.shape)}: the network takes (batch, {self.net.n_inputs})")
        results = []
        for i in range(x.shape[0]):
            results.append(self.check(x[i], eps, norm))
            if progress is not None:
                progress(i + 1)
        return FGPBatch(
            tuple(results),
            torch.tensor([r.label for r in results], dtype=torch.long),
            torch.tensor([r.status is Status.HOLDS for r in results], dtype=torch.bool),
            torch.tensor([r.radius for r in results], dtype=torch.float64),
        )
