"""Fast geometric projections (FGP; Fromherz, Leino, Fredrikson et al. 2021), made sound for float32.

The search visits activation regions outward from the centre x0 (a priority queue on the
distance at which a region is entered, a visited set of packed patterns, B regions per
torch batch). In each region the decision boundaries come first: if every score
difference label - j stays above its float32 error bound (`checkers.floaterror.row_error`
over the box of the ball) plus the float64 tolerance (`checkers.fgp.geometry`) on the
whole ball, the region is safe. Otherwise the boundary is projected onto (l2: the
orthogonal projection; linf: the true linf projection, steps of sign(g) clipped to the
domain) and the float32 model is run there (`checkers.fgp.witness`). Then every neuron
whose hyperplane meets the ball opens its neighbouring region (that neuron flipped).

Soundness (real arithmetic; the tolerances cover float64, the error bound float32):
every point x' of the ball lies in the closure of some visited region. Take the last
point p of the segment [x0, x'] covered by visited regions and a region Q covering the
segment just after p: the neurons on which Q differs from a visited region containing p
are all zero at p, layer by layer, so their hyperplanes (in the forms of the patterns
flipped so far) pass through p, which lies in the ball: each flip is made by the search,
so Q is visited, a contradiction. Degenerate networks (duplicate neurons, zero rows)
are covered because patterns are flipped whether or not their region is empty.
With an empty queue and no failing boundary, the float32 label is strictly ahead at every
float32 input of the ball and domain: ROBUST (Status.HOLDS).

Radius: the regions are processed in order of their entry distance, so at any time the
processed set is closed under flips closer than rho (the smallest distance still queued);
every ball of radius below min(rho, the boundary radii of the processed regions) is
certified. `lower_bound=True` keeps searching past failing boundaries, shrinking the
search radius to the certified one, and returns the largest radius it proves.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from checkers.fgp.geometry import Geometry, ball_min, box_range, dual_norm
from checkers.floaterror import row_error
from checkers.plnet import PLNet
from checkers.verdict import Status, Verdict, Witness
from spec import ir


@dataclass(frozen=True)
class FGPOptions:
    """timeout: seconds per point; batch: regions expanded per torch batch; lower_bound: search for
    the largest certified radius (up to eps) instead of stopping at the first failing boundary;
    max_regions: a budget (UNKNOWN beyond it); attack_starts, attack_steps: the PGD run when a
    boundary fails and its projections do not replay as a witness (0 starts: none); seed: PGD's."""

    timeout: float = 2.0
    batch: int = 32
    lower_bound: bool = False
    max_regions: int = 1_000_000
    attack_starts: int = 4
    attack_steps: int = 20
    seed: int = 0


@dataclass(frozen=True)
class FGPResult:
    """One point: the verdict (HOLDS = robust, VIOLATED = not robust with its replayed float32
    witness, UNKNOWN, TIMEOUT), the label (the float32 prediction at the centre), a certified
    radius (every ball of smaller radius keeps the label; 0 when none), regions visited, seconds."""

    verdict: Verdict
    label: int
    radius: float
    regions: int
    seconds: float

    @property
    def status(self) -> Status:
        return self.verdict.status


@dataclass
class _Point:
    x0: torch.Tensor
    eps: float
    norm: ir.Norm
    lo: torch.Tensor
    hi: torch.Tensor
    label: int
    gap_error: torch.Tensor  # (m,) float32 error bound of label - j, plus the float64 tolerance
    neuron_tol: torch.Tensor  # (N,)
    radius: float = math.inf
    failing: list[tuple[torch.Tensor, float, int, float]] = field(default_factory=list)  # (g, h, class, margin)


def outward_box(x0: torch.Tensor, eps: float, lower: torch.Tensor, upper: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[x0 - eps, x0 + eps] ∩ [lower, upper], rounded outwards (so it contains the real box)."""
    lo = torch.nextafter(x0 - eps, torch.full_like(x0, -math.inf))
    hi = torch.nextafter(x0 + eps, torch.full_like(x0, math.inf))
    return torch.maximum(lo, lower), torch.minimum(hi, upper)


def gap_errors(net: PLNet, label: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(m,) bounds on |(f32 - f)_j - (f32 - f)_label| over the box (0 for the label itself)."""
    m = net.n_outputs
    rows = torch.eye(m, dtype=torch.float64)
    rows[:, label] -= 1.0
    return row_error(net, rows, lo.cpu()[None], hi.cpu()[None])[0]


class Search:
    """The region search at one point (see the module docstring); `run` returns the status and the
    failing boundaries (for the witness search)."""

    def __init__(self, geo: Geometry, point: _Point, options: FGPOptions, deadline: float) -> None:
        self.geo, self.p, self.options, self.deadline = geo, point, options, deadline
        self.visited: set[bytes] = set()
        self.heap: list[tuple[float, int, bytes]] = []
        self.patterns: dict[bytes, np.ndarray] = {}
        self.counter = itertools.count()
        self.regions = 0

    def _push(self, pattern: np.ndarray, dist: float) -> None:
        key = np.packbits(pattern).tobytes()
        if key in self.visited:
            return
        self.visited.add(key)
        self.patterns[key] = pattern
        heapq.heappush(self.heap, (dist, next(self.counter), key))

    def _limit(self) -> float:
        """The radius the search must still cover: eps, or the radius proven so far (lower bound)."""
        return min(self.p.eps, self.p.radius) if self.options.lower_bound else self.p.eps

    def _take(self) -> np.ndarray | None:
        taken: list[np.ndarray] = []
        while self.heap and len(taken) < self.options.batch:
            dist, _, key = self.heap[0]
            if self.options.lower_bound and dist >= self._limit():
                break
            heapq.heappop(self.heap)
            taken.append(self.patterns.pop(key))
        return np.stack(taken) if taken else None

    def queued_distance(self) -> float:
        return self.heap[0][0] if self.heap else math.inf

    def certified_radius(self, status: Status) -> float:
        """eps when robust; else min(eps, the boundary radii of the processed regions, the queue's distance)."""
        if status is Status.HOLDS:
            return self.p.eps
        return max(0.0, min(self.p.eps, self.p.radius, self.queued_distance()))

    def run(self) -> tuple[Status, str]:
        """Search until the queue is done (HOLDS), a boundary fails (UNKNOWN: the caller looks for a
        witness), or the time or region budget runs out (TIMEOUT / UNKNOWN)."""
        start = self.geo.pattern_at(self.p.x0).cpu().numpy()
        self._push(start, 0.0)
        while True:
            if time.monotonic() > self.deadline:
                return Status.TIMEOUT, f"time limit reached after {self.regions} regions, {len(self.heap)} queued"
            if self.regions >= self.options.max_regions:
                return Status.UNKNOWN, f"region budget of {self.options.max_regions} reached, {len(self.heap)} queued"
            batch = self._take()
            if batch is None:
                break
            self.regions += batch.shape[0]
            failed = self._expand(batch)
            if failed and not self.options.lower_bound:
                return Status.UNKNOWN, "a decision boundary lies within eps"
        if self.p.failing:
            return Status.UNKNOWN, f"a decision boundary lies within the certified radius {self.p.radius:.6g}"
        if self.options.lower_bound and self.p.radius < self.p.eps:
            # the radius ignores the domain, the failing test does not: the search stopped at the radius
            return Status.UNKNOWN, f"certified radius {self.p.radius:.6g} below eps (the domain was not used)"
        return Status.HOLDS, f"every region within eps ({self.regions}) keeps the label by the float32 margin"

    def _expand(self, batch: np.ndarray) -> bool:
        """Check the decision boundaries of a batch of regions, then queue their neighbours.

        Returns whether some boundary fails (its region's margin can reach the error bound)."""
        p, geo = self.p, self.geo
        patterns = torch.from_numpy(batch).to(geo.device)
        forms = geo.forms(patterns, p.label)
        # decision boundaries first
        g, h = forms.gap_g, forms.gap_h
        value = torch.matmul(g, p.x0) + h
        dual = dual_norm(g, p.norm)
        box_lo, _ = box_range(g, h, p.lo, p.hi)
        least = box_lo if p.norm is ir.Norm.LINF else torch.maximum(box_lo, ball_min(g, h, p.x0, p.eps, p.norm))
        need = p.gap_error[None, :]
        safe = least > need
        safe[:, p.label] = True
        radius = torch.where(dual > 0, (value - need) / dual.clamp(min=1e-300), torch.where(value > need, math.inf, 0.0))
        radius[:, p.label] = math.inf
        radius = radius.clamp(min=0.0) * (1.0 - 1e-12)
        p.radius = min(p.radius, float(radius.min()))
        failed = bool((~safe).any())
        if failed:
            for b, j in (~safe).nonzero().tolist()[: max(0, 16 - len(p.failing))]:
                p.failing.append((g[b, j].clone(), float(h[b, j]), j, float(least[b, j] - need[0, j])))
        self._neighbours(batch, forms.neuron_a, forms.neuron_c)
        return failed

    def _neighbours(self, batch: np.ndarray, a: torch.Tensor, c: torch.Tensor) -> None:
        p = self.p
        tol = p.neuron_tol[None, :]
        value = torch.matmul(a, p.x0) + c
        dual = dual_norm(a, p.norm)
        lo, hi = box_range(a, c, p.lo, p.hi)
        meets = (lo - tol <= 0) & (hi + tol >= 0)
        dist = torch.where(dual > 0, ((value.abs() - tol) / dual.clamp(min=1e-300)).clamp(min=0.0),
                           torch.where(value.abs() <= tol, 0.0, math.inf))
        if p.norm is ir.Norm.L2:
            meets &= value.abs() <= p.eps * dual + tol
        limit = self._limit()
        meets &= dist <= limit
        pairs = meets.nonzero().cpu().numpy()
        if not len(pairs):
            return
        dists = dist[meets].cpu().numpy()
        children = batch[pairs[:, 0]].copy()
        children[np.arange(len(pairs)), pairs[:, 1]] ^= True
        for child, d in zip(children, dists, strict=True):
            self._push(child, float(d))


def search_point(geo: Geometry, net: PLNet, x0: torch.Tensor, eps: float, norm: ir.Norm, label: int,
                 domain: tuple[torch.Tensor, torch.Tensor], options: FGPOptions, deadline: float) -> tuple[Search, Status, str]:
    """Run the region search at x0 (n,) float64 on geo's device."""
    lo, hi = outward_box(x0.cpu(), eps, domain[0], domain[1])
    gap = gap_errors(net, label, lo, hi).to(geo.device)
    lo, hi, x0 = lo.to(geo.device), hi.to(geo.device), x0.to(geo.device)
    neuron_tol, gap_tol = geo.tolerances(x0, eps, norm, lo, hi, label)
    point = _Point(x0, eps, norm, lo, hi, label, gap + gap_tol, neuron_tol)
    search = Search(geo, point, options, deadline)
    status, reason = search.run()
    return search, status, reason


def as_witness(x: torch.Tensor, y: torch.Tensor) -> Witness:
    return Witness(tuple(x.tolist()), tuple(y.tolist()), 0)
