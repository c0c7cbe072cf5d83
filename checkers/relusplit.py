"""Branch and bound on ReLU phases (beta-CROWN style), for inputs too many to split.

A *domain* fixes the phase of some hidden neurons: active (z >= 0) or inactive (z <= 0).
The two children of a domain cover it, so the leaves cover the whole input box. On a
domain the pre-activation bounds of the root box stay valid, a fixed neuron's bound is
clamped at 0 (its relaxation becomes exact), and the layers above a split are tightened
by CROWN from those clamped bounds. The upper bound of each requirement row
G y + g is the CROWN back-substitution with per-row optimised lower slopes (alpha in
[0, 1], any value is a valid relaxation) and per-row Lagrange multipliers beta >= 0 for
the fixed phases: on the domain, s z >= 0 (s = +1 active, -1 inactive), so
g(x) <= g(x) + beta s z(x), and the maximum of the right side over the box bounds the
maximum of g over the domain (weak duality; every (alpha, beta) iterate gives a valid
bound, the smallest is kept). Adam chooses alpha and beta; soundness never depends on it.

A domain is proven when some disjunct's atoms all hold with the float32 margin of
`checkers.floaterror.row_error` (computed with the domain's bounds, valid for the float32
inputs of the domain). The neuron split next is the unstable one whose chord intercept
contributes most to the rows' bounds (BaBSR's score). Soundness: every leaf is proven,
and the leaves cover the box.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from checkers.bounds import HiddenBounds, _backward, _relaxation
from checkers.floaterror import row_error
from checkers.plnet import PLNet
from checkers.semantics import Rows
from checkers.verdict import Witness

ITERATIONS = 20  # Adam steps on (alpha, beta) per batch of domains
BATCH = 64  # domains bounded at once


@dataclass
class _Domains:
    lows: list[torch.Tensor]  # per hidden layer (D, w_k), clamped by the fixed phases
    ups: list[torch.Tensor]
    fixed: list[torch.Tensor]  # per hidden layer (D, w_k): +1 active, -1 inactive, 0 free

    def __len__(self) -> int:
        return self.lows[0].shape[0]

    def take(self, which: slice | torch.Tensor) -> _Domains:
        return _Domains([t[which] for t in self.lows], [t[which] for t in self.ups], [t[which] for t in self.fixed])

    @staticmethod
    def cat(parts: list[_Domains]) -> _Domains:
        n = len(parts[0].lows)
        return _Domains([torch.cat([p.lows[k] for p in parts]) for k in range(n)],
                        [torch.cat([p.ups[k] for p in parts]) for k in range(n)],
                        [torch.cat([p.fixed[k] for p in parts]) for k in range(n)])


def _next_batch(queue: list[_Domains]) -> tuple[_Domains, list[_Domains]]:
    """The first BATCH domains of the queue and the rest (only the parts taken are concatenated)."""
    taken, count = [], 0
    while queue and count < BATCH:
        part, queue = queue[0], queue[1:]
        if count + len(part) > BATCH:
            cut = BATCH - count
            part, queue = part.take(slice(0, cut)), [part.take(slice(cut, None)), *queue]
        taken.append(part)
        count += len(part)
    return (taken[0] if len(taken) == 1 else _Domains.cat(taken)), queue


def _bounds(
    net: PLNet, lower: torch.Tensor, upper: torch.Tensor, rows: Rows, d: _Domains,
) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Upper bounds (D, R) of the rows on each domain, per layer the branching scores (D, w_k), and
    the input coefficients (D, R, n) of the last linear bound (where a row is largest: candidates)."""
    count, layers = len(d), len(d.lows)
    n_rows = rows.matrix.shape[0]
    relax = [_relaxation(lo, up) for lo, up in zip(d.lows, d.ups, strict=True)]
    unstable = [((lo < 0) & (up > 0))[:, None, :] for lo, up in zip(d.lows, d.ups, strict=True)]
    alphas = [r[2][:, None, :].expand(count, n_rows, -1).clone().requires_grad_(True) for r in relax]
    betas = [torch.zeros(count, n_rows, lo.shape[1], dtype=torch.float64, requires_grad=True) for lo in d.lows]
    optimiser = torch.optim.Adam([*alphas, *betas], lr=0.05)
    centre, radius = (lower + upper) / 2, (upper - lower) / 2
    best = torch.full((count, n_rows), torch.inf, dtype=torch.float64)
    scores: list[torch.Tensor] = []
    coefficients = torch.zeros(0)
    for _ in range(ITERATIONS):
        lam = (rows.matrix @ net.weights[-1]).expand(count, -1, -1)
        const = (rows.matrix @ net.biases[-1] + rows.consts).expand(count, -1)
        intercepts = []
        for k in range(layers - 1, -1, -1):
            up_slope, up_int, low_slope = relax[k]
            pos, neg = lam.clamp(min=0), lam.clamp(max=0)
            intercepts.append((pos * up_int[:, None, :]).sum(dim=1).detach())
            const = const + torch.einsum("drw,dw->dr", pos, up_int)
            slope = torch.where(unstable[k], alphas[k].clamp(0, 1), low_slope[:, None, :])
            lam = pos * up_slope[:, None, :] + neg * slope
            lam = lam + betas[k].clamp(min=0) * d.fixed[k][:, None, :]
            const = const + lam @ net.biases[k]
            lam = lam @ net.weights[k]
        bound = torch.bmm(centre[:, None, :].expand(count, 1, -1), lam.transpose(1, 2))[:, 0] + const
        bound = bound + torch.bmm(radius[:, None, :].expand(count, 1, -1), lam.abs().transpose(1, 2))[:, 0]
        best = torch.minimum(best, bound.detach())
        scores, coefficients = intercepts[::-1], lam.detach()
        optimiser.zero_grad()
        torch.autograd.backward(bound.sum())
        optimiser.step()
    return best, scores, coefficients


def _refine(net: PLNet, lower: torch.Tensor, upper: torch.Tensor, d: _Domains) -> None:
    """Tighten the bounds of hidden layers 1.. in place: CROWN from the domain's own (clamped) bounds
    of the layers below, intersected with the current ones (valid on the domain, never looser)."""
    count = len(d)
    lo_in, up_in = lower[None].expand(count, -1), upper[None].expand(count, -1)
    for k in range(1, len(d.lows)):
        unstable = ((d.lows[k] < 0) & (d.ups[k] > 0)).any(dim=0).nonzero().flatten()
        if unstable.numel() == 0:
            continue
        w, b = net.weights[k][unstable], net.biases[k][unstable]
        lam = torch.cat([w, -w]).expand(count, -1, -1)
        const = torch.cat([b, -b]).expand(count, -1)
        bound, _ = _backward(net, k, lo_in, up_in, lam, const, d.lows, d.ups)
        m = unstable.numel()
        d.lows[k][:, unstable] = torch.maximum(d.lows[k][:, unstable], -bound[:, m:])
        d.ups[k][:, unstable] = torch.minimum(d.ups[k][:, unstable], bound[:, :m])


def _proven(rows: Rows, value: torch.Tensor) -> torch.Tensor:
    strict = torch.tensor(rows.strict, dtype=torch.bool)
    atom_ok = torch.where(strict, value < 0, value <= 0)
    proven = torch.zeros(value.shape[0], dtype=torch.bool)
    for conj in rows.disjuncts:
        proven |= atom_ok[:, list(conj)].all(dim=1)
    return proven


def relu_split(
    net: PLNet, rows: Rows, lower: torch.Tensor, upper: torch.Tensor, root: HiddenBounds, deadline: float,
    check: Callable[[torch.Tensor], Witness | None] | None = None,
) -> tuple[str, int, Witness | None]:
    """Branch on ReLU phases over the box [lower, upper] (n,).

    Returns (outcome, domains bounded, witness): "holds": every leaf proven with the
    float32 margin; "violated": `check` confirmed a candidate (the box corners where the
    open domains' linear bounds are largest) as a witness; "float": some leaf is proven
    for the real network only, with every neuron fixed; "stuck": a leaf with every neuron
    fixed is not proven; "timeout": the deadline passed. `root`: hidden bounds of the box
    (a batch of one), e.g. from `crown_hidden_bounds`.
    """
    queue = [_Domains(list(root.lower), list(root.upper), [torch.zeros_like(t) for t in root.lower])]
    seen = 0
    while queue:
        if time.monotonic() > deadline:
            return "timeout", seen, None
        d, queue = _next_batch(queue)
        seen += len(d)
        lo, hi = lower[None].expand(len(d), -1), upper[None].expand(len(d), -1)
        with torch.enable_grad():
            bound, scores, coefficients = _bounds(net, lo, hi, rows, d)
        margin = row_error(net, rows.matrix, lo, hi, HiddenBounds(tuple(d.lows), tuple(d.ups)))
        open_ = ~_proven(rows, bound + margin)
        if not open_.any():
            continue
        if check is not None:
            centre, radius = (lower + upper) / 2, (upper - lower) / 2
            corners = centre + coefficients[open_].sign() * radius  # (open, R, n)
            found = check(corners.reshape(-1, lower.numel()))
            if found is not None:
                return "violated", seen, found
        real = _proven(rows, bound)[open_]
        d, scores = d.take(open_), [s[open_] for s in scores]
        free = [((lo_k < 0) & (up_k > 0) & (f == 0)) for lo_k, up_k, f in zip(d.lows, d.ups, d.fixed, strict=True)]
        flat = torch.cat([torch.where(f, s, torch.full_like(s, -1.0)) for f, s in zip(free, scores, strict=True)], dim=1)
        pick = flat.argmax(dim=1)
        stuck = flat.gather(1, pick[:, None])[:, 0] < 0  # no free unstable neuron left
        if stuck.any():
            return ("float" if bool(real[stuck].all()) else "stuck"), seen, None
        widths = [t.shape[1] for t in d.lows]
        offsets = torch.cumsum(torch.tensor([0, *widths]), 0)
        layer = torch.bucketize(pick, offsets[1:], right=True)
        index = pick - offsets[layer]
        children = []
        for phase in (1.0, -1.0):
            child = _Domains([t.clone() for t in d.lows], [t.clone() for t in d.ups], [t.clone() for t in d.fixed])
            for k in range(len(widths)):
                rows_k = (layer == k).nonzero().flatten()
                if rows_k.numel() == 0:
                    continue
                cols = index[rows_k]
                child.fixed[k][rows_k, cols] = phase
                if phase > 0:
                    child.lows[k][rows_k, cols] = 0.0
                else:
                    child.ups[k][rows_k, cols] = 0.0
            children.append(child)
        for child in children:
            _refine(net, lower, upper, child)
        queue = [*children, *queue]
    return "holds", seen, None
