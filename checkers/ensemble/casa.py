"""CasA, the cascade attack (Mangal et al. 2023), and a plain PGD attack on any ensemble's members.

CasA attacks the cascade's selection logic. For each target member j and each input x with
cascade label c, PGD (default 100 steps of eps/25) moves x' inside the ball to make member j
certified (at the cascade's radius) for its best label other than c, while pushing every
earlier member to be uncertified for every label: then the cascade at x' takes member j's
answer. For the last member (the fallback) it is enough that earlier members are
uncertified and it predicts another label. The differentiable margins use each GloRo
member's eps * K table (zeros for other members: plain score margins).

An attack only proposes points. A point is a success only after it is replayed on the real
ensemble, in float32, with its real certifiers: it lies in the ball (checked in float64)
and in the domain, every member's scores there are finite (a NaN or infinite score is never a
witness), and the ensemble's label there differs from its label at x.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from checkers.ensemble.base import EnsembleModule
from checkers.ensemble.cascade import Cascade
from spec import ir
from spec.errors import UsageError


@dataclass(frozen=True)
class AttackOptions:
    """steps of PGD, each of step_fraction * eps (sign steps for linf, normalised gradient for l2); kappa: the
    margin the objectives aim past; check_every: replay on the real ensemble every so many steps."""

    steps: int = 100
    step_fraction: float = 1 / 25
    kappa: float = 0.05
    check_every: int = 10

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise UsageError(f"steps={self.steps!r} must be a whole number >= 1")
        if not 0 < self.step_fraction <= 1:
            raise UsageError(f"step_fraction={self.step_fraction!r} must be in (0, 1]")
        if not self.check_every >= 1:
            raise UsageError(f"check_every={self.check_every!r} must be >= 1")


@dataclass(frozen=True)
class AttackResult:
    """label (B,): the ensemble's label at x; broken (B,) bool: a replayed point changes it;
    x_adv (B, n) float32: that point (x itself where not broken); label_adv (B,): the label there."""

    label: torch.Tensor
    broken: torch.Tensor
    x_adv: torch.Tensor
    label_adv: torch.Tensor


def in_ball(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: ir.Norm) -> torch.Tensor:
    """(B,) bool: ||x_adv - x|| <= eps, computed in float64 from the float32 points."""
    d = x_adv.to(torch.float64) - x.to(torch.float64)
    size = d.norm(dim=1) if norm is ir.Norm.L2 else d.abs().amax(dim=1)
    return size <= eps


def _project(xa: torch.Tensor, x: torch.Tensor, eps: float, norm: ir.Norm,
             domain: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    r = eps * (1 - 1e-5)
    d = xa - x
    if norm is ir.Norm.L2:
        size = d.norm(dim=1, keepdim=True).clamp(min=1e-30)
        d = d * torch.clamp(r / size, max=1.0)
    else:
        d = d.clamp(-r, r)
    out = x + d
    if domain is not None:
        out = torch.maximum(torch.minimum(out, domain[1]), domain[0])
    return out.detach()


def _step(xa: torch.Tensor, grad: torch.Tensor, size: float, norm: ir.Norm) -> torch.Tensor:
    if norm is ir.Norm.LINF:
        return xa - size * grad.sign()
    out: torch.Tensor = xa - size * grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-30)
    return out


def _tables(ens: EnsembleModule) -> list[torch.Tensor | None]:
    out: list[torch.Tensor | None] = []
    for member in ens.members:
        table = getattr(member, "margin_table", None)
        out.append(table(ens.eps, ens.norm) if table is not None else None)
    return out


def _cert_margin(y: torch.Tensor, table: torch.Tensor | None) -> torch.Tensor:
    """(B, m): for each label c, min_{i != c} (y_c - y_i - table[c, i]); > 0 roughly means certified for c."""
    diff = y[:, :, None] - y[:, None, :]
    if table is not None:
        diff = diff - table.to(y.device)
    eye = torch.eye(y.shape[1], dtype=torch.bool, device=y.device)
    return diff.masked_fill(eye, math.inf).amin(dim=2)


Objective = Callable[[torch.Tensor], torch.Tensor]


def _run(ens: EnsembleModule, x: torch.Tensor, label: torch.Tensor, objective_for: Callable[[torch.Tensor], Objective],
         todo: torch.Tensor, options: AttackOptions, domain: tuple[torch.Tensor, torch.Tensor] | None,
         found: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> None:
    """PGD from x[todo] on objective_for(rows) (a loss to minimise); replays and records successes into found."""
    broken, x_adv, label_adv = found
    rows = torch.nonzero(todo & ~broken).squeeze(1)
    if len(rows) == 0:
        return
    x0 = x[rows]
    xa = x0.clone()
    objective = objective_for(rows)
    size = options.step_fraction * ens.eps
    for step in range(1, options.steps + 1):
        xa.requires_grad_(True)
        with torch.enable_grad():
            loss = objective(xa).sum()
            (grad,) = torch.autograd.grad(loss, xa)
        xa = _project(_step(xa.detach(), grad, size, ens.norm), x0, ens.eps, ens.norm, domain)
        if step % options.check_every == 0 or step == options.steps:
            with torch.no_grad():
                got = ens.predict(xa)
            hit = (got != label[rows]) & in_ball(xa, x0, ens.eps, ens.norm) & ~broken[rows] & ens.scores_finite(xa)
            if domain is not None:
                hit &= ((xa >= domain[0]) & (xa <= domain[1])).all(dim=1)
            idx = rows[hit]
            broken[idx] = True
            x_adv[idx] = xa[hit]
            label_adv[idx] = got[hit]


def _domain(domain: ir.Box | None, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    if domain is None:
        return None
    from checkers.attack import inner_float32

    lo, hi = inner_float32(torch.tensor(domain.lower, dtype=torch.float64), torch.tensor(domain.upper, dtype=torch.float64))
    if lo.shape[0] != n:
        raise UsageError(f"the domain has {lo.shape[0]} inputs, the inputs have {n}")
    return lo, hi


def casa(cascade: Cascade, x: torch.Tensor, options: AttackOptions | None = None,
         domain: ir.Box | None = None) -> AttackResult:
    """The CasA attack on every row of x (B, n); see the module docstring. Only replayed successes count."""
    if not isinstance(cascade, Cascade):
        raise UsageError(f"CasA attacks cascades, not {type(cascade).__name__}")
    options = options or AttackOptions()
    x = x.detach().to(torch.float32)
    box = _domain(domain, x.shape[1])
    with torch.no_grad():
        label = cascade.predict(x)
        scores0 = [m.module(x) for m in cascade.members]
    tables = _tables(cascade)
    found = (torch.zeros(len(x), dtype=torch.bool), x.clone(), label.clone())
    last = len(cascade.members) - 1
    for j in range(len(cascade.members)):
        others = scores0[j].scatter(1, label[:, None], -math.inf)
        target = others.argmax(dim=1)

        def objective_for(rows: torch.Tensor, j: int = j, target: torch.Tensor = target) -> Objective:
            t = target[rows]

            def loss(xa: torch.Tensor) -> torch.Tensor:
                table = tables[j] if j < last else None
                own = _cert_margin(cascade.members[j].module(xa), table).gather(1, t[:, None]).squeeze(1)
                total = -own.clamp(max=options.kappa)
                for k in range(j):
                    worst = _cert_margin(cascade.members[k].module(xa), tables[k]).amax(dim=1)
                    total = total + (worst + options.kappa).clamp(min=0)
                return total

            return loss

        _run(cascade, x, label, objective_for, torch.ones(len(x), dtype=torch.bool), options, box, found)
    return AttackResult(label, *found)


def member_pgd(ens: EnsembleModule, x: torch.Tensor, options: AttackOptions | None = None,
               domain: ir.Box | None = None) -> AttackResult:
    """PGD pushing every member away from the ensemble's label at x (weighted by the vote weights if any)."""
    options = options or AttackOptions()
    x = x.detach().to(torch.float32)
    box = _domain(domain, x.shape[1])
    with torch.no_grad():
        label = ens.predict(x)
    weights = getattr(ens, "weights", None)
    w = weights.tolist() if isinstance(weights, torch.Tensor) else [1.0] * len(ens.members)
    found = (torch.zeros(len(x), dtype=torch.bool), x.clone(), label.clone())

    def objective_for(rows: torch.Tensor) -> Objective:
        c = label[rows].clamp(min=0)

        def loss(xa: torch.Tensor) -> torch.Tensor:
            total = torch.zeros(len(xa))
            for wk, member in zip(w, ens.members, strict=True):
                y = member.module(xa)
                gap = y.gather(1, c[:, None]).squeeze(1) - y.scatter(1, c[:, None], -math.inf).amax(dim=1)
                total = total + wk * gap.clamp(min=-options.kappa)
            return total

        return loss

    _run(ens, x, label, objective_for, torch.ones(len(x), dtype=torch.bool), options, box, found)
    return AttackResult(label, *found)
