"""Voting ensembles (uniform or weighted) with the sound certifier of Mangal et al. 2023.

Y[c] = the total weight of the members predicting c; the ensemble predicts argmax Y (the
lowest label among tied ones). Certificate at x, from the members' certificates at radius
eps: C[c] = the weight of the members certified with label c, C[bot] = the weight of the
uncertified members; certified iff C[top] > max_{c != top} (C[c] + C[bot]), top = argmax C.
Proof: at any x' of the ball, every certified member keeps its label, so Y'[top] >= C[top]
and Y'[c] <= C[c] + C[bot] for c != top; hence top stays strictly ahead. The comparison is
exact for integer weights; for other weights it is done in float64 with a relative slack of
1e-12 on the right-hand side (a tie within rounding is not certified).

Weights are stored scaled by a power of two so that the largest is at most 1 (`scaled_weights`):
voting is invariant under a positive scale, the scaling is exact (unless the weights span more
than about 300 orders of magnitude, when the smallest lose bits below float64's normal range), and
no tally or attack objective overflows (a weight of 1e300 is legal).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from checkers.ensemble.base import EnsembleCerts, EnsembleModule
from checkers.ensemble.members import Member, MemberCerts
from spec import ir
from spec.errors import UsageError

_SLACK = 1e-12


def check_weights(weights: Sequence[float], count: int) -> tuple[float, ...]:
    """The weights as floats; UsageError naming the bad value unless there is one finite weight > 0 per member."""
    weights = tuple(weights)
    if len(weights) != count:
        raise UsageError(f"{len(weights)} weights for {count} members: give one weight per member")
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w <= 0:
            raise UsageError(f"weight={w!r} must be a finite number > 0")
    return tuple(float(w) for w in weights)


def scaled_weights(weights: Sequence[float]) -> tuple[float, ...]:
    """The weights times 2^-e, e the least integer >= 0 with every weight at most 1 afterwards (exact scaling)."""
    e = max(0, max(math.frexp(w)[1] for w in weights))
    return tuple(math.ldexp(w, -e) for w in weights)


def tallies(certs: list[MemberCerts], weights: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Y (B, m), C (B, m), C_bot (B,)) in float64: all votes, certified votes, uncertified weight."""
    B = certs[0].prediction.shape[0]
    Y = torch.zeros(B, m, dtype=torch.float64)
    C = torch.zeros(B, m, dtype=torch.float64)
    bot = torch.zeros(B, dtype=torch.float64)
    zero = torch.zeros((), dtype=torch.float64)
    for w, c in zip(weights.tolist(), certs, strict=True):
        pred = c.prediction.cpu()[:, None]
        ok = c.certified.cpu()
        weight = torch.tensor(w, dtype=torch.float64)  # float64 throughout (a Python float in torch.where is float32)
        Y.scatter_add_(1, pred, torch.full((B, 1), w, dtype=torch.float64))
        C.scatter_add_(1, pred, torch.where(ok, weight, zero)[:, None])
        bot += torch.where(ok, zero, weight)
    return Y, C, bot


def vote_certified(C: torch.Tensor, bot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(top (B,), certified (B,)): top = argmax C; certified iff C[top] > max_{c != top} C[c] + C[bot] (with slack)."""
    top = C.argmax(dim=1)
    others = C.scatter(1, top[:, None], -math.inf).amax(dim=1) if C.shape[1] > 1 else torch.zeros_like(bot)
    lead = C.gather(1, top[:, None]).squeeze(1)
    rhs = others + bot
    return top, lead > rhs + _SLACK * rhs.abs().clamp(min=1.0)


class Vote(EnsembleModule):
    """Weighted voting: forward(x) returns the vote totals Y (B, m) float32; predict = argmax Y."""

    def __init__(self, members: Sequence[Member], eps: float, norm: ir.Norm = ir.Norm.L2,
                 weights: Sequence[float] | None = None) -> None:
        super().__init__(members, eps, norm)
        w = check_weights(weights if weights is not None else [1.0] * len(self.members), len(self.members))
        self.register_buffer("weights", torch.tensor(scaled_weights(w), dtype=torch.float64))

    def _tallies(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        certs = self.member_certs(x)
        weights: torch.Tensor = self.weights  # type: ignore[assignment]
        return tallies(certs, weights, int(certs[0].scores.shape[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._tallies(x)[0].to(torch.float32)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._tallies(x)[0].argmax(dim=1)

    def certify(self, x: torch.Tensor) -> EnsembleCerts:
        """Sound (see the module docstring): certified only when the vote's label is the same on the whole ball."""
        Y, C, bot = self._tallies(x)
        label = Y.argmax(dim=1)
        top, ok = vote_certified(C, bot)
        return EnsembleCerts(label, ok & (top == label), self._none(label))
