"""Certified-training losses (GloRo cross-entropy, TRADES, EMMA) and the eps schedule.

All losses read a differentiable Lipschitz table `ktab[j, i] ~ K_sub ||w_j - w_i||`
(`training_table`): the body's power-iteration ESTIMATE (a training signal, from below)
times exact row differences of the head. Certification never uses it (see `certify`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from checkers.lipschitz.certify import _allowed, kind_depth, margins
from checkers.lipschitz.network import LipschitzNet
from spec import ir
from spec.errors import UsageError


def training_table(net: LipschitzNet) -> torch.Tensor:
    """(m, m) differentiable K_sub_estimate * ||w_j - w_i||_2 (one warm-started power step per layer)."""
    w = net.head.effective_weight()
    diff = w[:, None, :] - w[None, :, :] if w.shape[0] <= 64 else None
    if diff is not None:
        dist = diff.square().sum(dim=2).clamp_min(1e-12).sqrt()
    else:  # large heads: through the Gram matrix, O(m^2) memory
        sq = w.square().sum(dim=1)
        dist = (sq[:, None] + sq[None, :] - 2 * w @ w.T).clamp_min(1e-12).sqrt()
    dist = dist * (1 - torch.eye(w.shape[0], device=w.device, dtype=w.dtype))
    return net.body_estimate() * dist


def bottom_logit(y: torch.Tensor, ktab: torch.Tensor, eps: float, kind: ir.RobustKind | None = None) -> torch.Tensor:
    """(B,) GloRo's bottom logit: y_j1 - max over allowed k of m_k (local: max_{i!=j} y_i + eps K_ji)."""
    kind = ir.Local() if kind is None else kind
    top = y.detach().topk(kind_depth(kind, y.shape[1]), dim=1).indices
    mk = margins(y, top, ktab, eps)
    mk = mk.masked_fill(~_allowed(kind, top, y.shape[1]), -math.inf)
    return y.gather(1, top[:, :1])[:, 0] - mk.max(dim=1).values


def gloro_loss(y: torch.Tensor, y_bot: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the scores extended by the bottom logit (the bottom class is never the target)."""
    return F.cross_entropy(torch.cat([y, y_bot[:, None]], dim=1), target)


def trades_loss(y: torch.Tensor, y_bot: torch.Tensor, target: torch.Tensor, lam: float = 1.5) -> torch.Tensor:
    """CE(y) + lam * -log(1 - p_bot), p_bot the bottom class's probability in softmax([y, y_bot])."""
    log_not_bot = torch.logsumexp(y, dim=1) - torch.logsumexp(torch.cat([y, y_bot[:, None]], dim=1), dim=1)
    return F.cross_entropy(y, target) - lam * log_not_bot.mean()


def emma_loss(y: torch.Tensor, ktab: torch.Tensor, eps: float, target: torch.Tensor) -> torch.Tensor:
    """EMMA (Hu et al. 2023): every other class i is raised by clip((y_t - y_i) / (eps K_ti), 0.01, 1) eps K_ti
    (the clip factor without gradient), then cross-entropy: every threatening class is penalised."""
    if eps == 0:
        return F.cross_entropy(y, target)
    kt = ktab[target] * eps  # (B, m); zero in the target's own column
    gap = y.gather(1, target[:, None]) - y
    factor = (gap / kt.clamp_min(1e-12)).clamp(0.01, 1.0).detach()
    return F.cross_entropy(y + factor * kt, target)


LOSSES = ("gloro", "trades", "emma")


@dataclass(frozen=True)
class EpsSchedule:
    """eps at a point of training (progress in [0, 1]): from `start` * eps, ramped over the first `warmup`
    fraction ('linear' or 'log': geometric), then constant eps."""

    eps: float
    warmup: float = 0.3
    start: float = 0.01
    kind: str = "linear"

    def __post_init__(self) -> None:
        if not math.isfinite(self.eps) or self.eps < 0:
            raise UsageError(f"training eps={self.eps!r} must be >= 0")
        if not 0 <= self.warmup <= 1:
            raise UsageError(f"eps warm-up fraction {self.warmup!r} must lie in [0, 1]")
        if self.kind not in ("linear", "log"):
            raise UsageError(f"eps schedule {self.kind!r} must be 'linear' or 'log'")

    def __call__(self, progress: float) -> float:
        if self.warmup == 0 or progress >= self.warmup:
            return self.eps
        t = max(progress, 0.0) / self.warmup
        if self.kind == "log":
            return float(self.eps * self.start ** (1 - t))
        return self.eps * (self.start + (1 - self.start) * t)
