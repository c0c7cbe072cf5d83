"""Witnesses for FGP: projections onto decision boundaries, a PGD fallback, and the float32 replay.

A failing boundary g.x + h = 0 (label minus class j, in one region's affine form) is
projected onto in the norm of the ball:
- l2: the orthogonal projection x0 - (v / ||g||_2^2) g, v = g.x0 + h, then clipped to the
  domain (clipping to a box that holds x0 never leaves the ball);
- linf: the true linf projection: x_i = x0_i - sign(g_i) min(t, room_i), room_i the
  distance from x0_i to the domain's side g_i points away from, t the smallest step that
  reaches the hyperplane (a piecewise-linear equation, solved exactly after sorting the
  rooms). Without the domain this is x0 - sign(g) v / ||g||_1, the linf-closest point;
  the l2 projection would be the wrong point (it can leave the ball).
Each projection is tried a little past the boundary too (relative overshoots, capped at
eps), because the real network only changes its prediction beyond it.

Nothing here is trusted: a candidate becomes a witness only after `Replay.first` rounds
it to float32, checks exactly (rationals where float64 is too close to call) that it lies
in the ball and the domain, and runs the real torch module on it alone, in float32,
where the prediction (`checkers.semantics.decision`, lowest index on a tie) must differ
from the label. A tie that keeps the label is not a counterexample (no near-tie rule), and
neither are NaN or infinite scores (no prediction: `Replay.nonfinite` keeps the first such point).
"""

from __future__ import annotations

from fractions import Fraction

import torch
from torch import nn

from checkers.attack import inner_float32
from checkers.semantics import decision, finite, in_part
from checkers.verdict import Witness
from spec import ir

OVERSHOOTS = (0.0, 1e-6, 1e-3, 1e-2, 0.1, 0.5)


def linf_step(g: torch.Tensor, value: float, room: torch.Tensor) -> float:
    """The smallest t >= 0 with value - sum_i |g_i| min(t, room_i) <= 0 (inf if none)."""
    if value <= 0:
        return 0.0
    weight = g.abs()
    order = torch.argsort(room)
    r, w = room[order], weight[order]
    # slope after each breakpoint: the weights of the rooms not yet exhausted
    slope_before = w.flip(0).cumsum(0).flip(0)
    used = torch.cat([torch.zeros(1, dtype=r.dtype, device=r.device), (w * r).cumsum(0)[:-1]])
    reached = value - (used + r * slope_before)  # the margin left at t = r_k
    hit = (reached <= 0).nonzero()
    if not len(hit):
        return float("inf")
    k = int(hit[0])
    prev = float(r[k - 1]) if k > 0 else 0.0
    left = value - float(used[k]) - prev * float(slope_before[k])  # margin at t = prev
    return prev + left / float(slope_before[k])


def candidates(g: torch.Tensor, h: float, x0: torch.Tensor, eps: float, norm: ir.Norm,
               lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Projections of x0 onto g.x + h = 0 in the ball's norm, and points past them (K, n) float64."""
    value = float(g @ x0) + h
    points = []
    if norm is ir.Norm.LINF:
        room = torch.where(g > 0, x0 - lo, hi - x0).clamp(min=0.0)
        t = min(linf_step(g, value, room), eps)
        for over in OVERSHOOTS:
            step = torch.minimum(torch.full_like(room, min(t * (1 + over), eps)), room)
            points.append(x0 - g.sign() * step)
    else:
        size = float(g.norm())
        if size == 0:
            return x0[None]
        t = min(max(value, 0.0) / size, eps)
        for over in OVERSHOOTS:
            point = x0 - g / size * min(t * (1 + over), eps)
            points.append(torch.maximum(torch.minimum(point, hi), lo))
    return torch.stack(points)


class Replay:
    """The exact membership and float32 prediction checks for one point's ball."""

    def __init__(self, module: nn.Module, x0: torch.Tensor, eps: float, norm: ir.Norm, domain: ir.Box,
                 label: int, decide: ir.Decide, device: torch.device) -> None:
        self.module, self.eps, self.norm, self.label, self.decide = module, eps, norm, label, decide
        self.x0 = x0.detach().to("cpu", torch.float64)
        self.domain = ir.RegionPart(domain)
        self.device = device
        dlo = torch.tensor(domain.lower, dtype=torch.float64)
        dhi = torch.tensor(domain.upper, dtype=torch.float64)
        self.lo32, self.hi32 = inner_float32(torch.maximum(self.x0 - eps, dlo), torch.minimum(self.x0 + eps, dhi))
        self.nonfinite: tuple[list[float], list[float]] | None = None  # (x, y): a point of the ball with NaN/inf scores

    def _in_ball(self, x: torch.Tensor) -> torch.Tensor:
        real = torch.isfinite(x).all(dim=1)  # a point with a NaN or inf coordinate is in no ball
        x = torch.where(real[:, None], x, self.x0.to(x.dtype))
        d = (x.to(torch.float64) - self.x0).abs()
        if self.norm is ir.Norm.LINF:
            sure_in, sure_out = d <= self.eps * (1 - 1e-12), d > self.eps * (1 + 1e-12)
            inside = (sure_in | ~sure_out).all(dim=1)
            for b in (inside & ~sure_in.all(dim=1)).nonzero().flatten().tolist():
                e = Fraction(self.eps)
                inside[b] = all(abs(Fraction(float(v)) - Fraction(float(c))) <= e
                                for v, c in zip(x[b].tolist(), self.x0.tolist(), strict=True))
            return inside & real
        total = d.norm(dim=1)  # norms, not squares: eps**2 overflows above about 1.3e154
        sure_in, sure_out = total <= self.eps * (1 - 1e-9), total > self.eps * (1 + 1e-9)
        inside = sure_in.clone()
        for b in (~sure_in & ~sure_out).nonzero().flatten().tolist():
            exact = sum((Fraction(float(v)) - Fraction(float(c))) ** 2 for v, c in zip(x[b].tolist(), self.x0.tolist(),
                                                                                        strict=True))
            inside[b] = exact <= Fraction(self.eps) ** 2
        out: torch.Tensor = inside & real
        return out

    def _round(self, points: torch.Tensor) -> torch.Tensor:
        x = points.detach().to("cpu", torch.float64)
        shrunk = self.x0 + (x - self.x0) * (1 - 2.0**-20)  # a second chance for points on the sphere
        both = torch.cat([x, shrunk]).to(torch.float32)
        return torch.maximum(torch.minimum(both, self.hi32), self.lo32)

    def first(self, points: torch.Tensor) -> Witness | None:
        """The first candidate (K, n) that is a float32 witness, replayed alone; None if none is."""
        x = self._round(points)
        ok = self._in_ball(x) & in_part(self.domain, x)
        if not ok.any():
            return None
        x = x[ok]
        with torch.no_grad():
            y = self.module(x.to(self.device)).cpu()
        if self.nonfinite is None:
            for i in (~finite(y)).nonzero().flatten().tolist()[:4]:
                with torch.no_grad():
                    alone = self.module(x[i:i + 1].to(self.device)).cpu()
                if not bool(finite(alone)[0]):
                    self.nonfinite = (x[i].tolist(), alone[0].tolist())
                    break
        # NaN or inf scores have no prediction (a comparison with them has no truth value): never a witness
        changed = (decision(y, self.decide) != self.label) & finite(y)
        for i in changed.nonzero().flatten().tolist()[:8]:
            with torch.no_grad():  # replay alone: batch size can change the last bits of float32 scores
                alone = self.module(x[i:i + 1].to(self.device)).cpu()
            if int(decision(alone, self.decide)[0]) != self.label and bool(finite(alone)[0]):
                return Witness(tuple(x[i].tolist()), tuple(alone[0].tolist()), 0)
        return None


def pgd(replay: Replay, targets: list[int], starts: int, steps: int, seed: int) -> torch.Tensor:
    """Targeted PGD in the ball and domain: raise each target's score over the label's; all iterates (K, n)."""
    if starts <= 0 or steps <= 0 or not targets:
        return torch.zeros(0, replay.x0.numel())
    gen = torch.Generator().manual_seed(seed)
    sign = 1.0 if replay.decide is ir.Decide.ARGMAX else -1.0
    lo, hi = replay.lo32.to(replay.device), replay.hi32.to(replay.device)
    x0 = replay.x0.to(torch.float32).to(replay.device)
    tgt = torch.tensor([targets[s % len(targets)] for s in range(starts)], device=replay.device)
    noise = (torch.rand(starts, x0.numel(), generator=gen) * 2 - 1).to(replay.device) * replay.eps
    x = replay_project(x0 + noise * (0.5 if replay.norm is ir.Norm.LINF else 0.5 / x0.numel() ** 0.5), replay, lo, hi)
    trail = [x]
    for step in range(steps):
        x = x.detach().requires_grad_(True)
        y = replay.module(x) * sign
        gain = y.gather(1, tgt[:, None])[:, 0] - y[:, replay.label]
        (grad,) = torch.autograd.grad(gain.sum(), x)
        size = replay.eps * (0.5 * (1 - step / steps) + 0.05)
        move = grad.sign() if replay.norm is ir.Norm.LINF else grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-30)
        x = replay_project(x.detach() + size * move, replay, lo, hi)
        trail.append(x)
    return torch.cat(trail).cpu()


def replay_project(x: torch.Tensor, replay: Replay, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Onto the ball (l2: radial scaling), then into the float32 box of ball and domain."""
    if replay.norm is ir.Norm.L2:
        x0 = replay.x0.to(torch.float32).to(x.device)
        d = x - x0
        scale = (replay.eps / d.norm(dim=1, keepdim=True).clamp(min=1e-30)).clamp(max=1.0)
        x = x0 + d * scale
    return torch.maximum(torch.minimum(x, hi), lo)
