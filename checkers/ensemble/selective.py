"""Selective ensembles (Black, Leino & Fredrikson 2022): predict only when a binomial test says the vote is clear.

n members (in the paper: the same training from different random seeds) vote; n_A and n_B
are the two largest vote counts (n_B = 0 when all agree). The ensemble predicts the top
label only if the two-sided binomial test of n_A successes in n_A + n_B trials at p = 1/2
gives a p-value <= alpha; otherwise it abstains (ABSTAIN = -1). The guarantee: over the
randomness of the members, P(the prediction is neither the mode nor an abstention) <= alpha,
where the mode is the label a random member most often predicts.

Edge case: the smallest p-value n members can reach is 2 / 2^n (all agree), so with the
two-sided test at alpha = 0.05 an ensemble of n <= 5 members ALWAYS abstains (n = 5:
2/32 = 0.0625 > 0.05); n = 6 is the smallest that can predict (2/64 = 0.031). In general
it predicts only if 2^(1-n) <= alpha. p-values are exact (integers, math.comb).

Certificate (sound) at radius eps: with C[c] the members certified with label c and
C[bot] the uncertified ones, label top is certified iff C[top] > r and p(C[top], r) <= alpha
where r = max_{c != top} C[c] + C[bot]. At any x' of the ball the top count is >= C[top] and
the runner-up <= r; the p-value only falls when n_A grows or n_B shrinks, so the ensemble
predicts top at x'. An abstention is never certified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from checkers.ensemble.base import ABSTAIN, EnsembleCerts, EnsembleModule
from checkers.ensemble.members import Member
from checkers.ensemble.vote import tallies
from spec import ir
from spec.errors import UsageError


def binomial_p(n_a: int, n_b: int) -> float:
    """The exact two-sided binomial test p-value of n_a successes in n_a + n_b trials at p = 1/2."""
    if isinstance(n_a, bool) or isinstance(n_b, bool) or not isinstance(n_a, int) or not isinstance(n_b, int) \
            or n_a < 0 or n_b < 0:
        raise UsageError(f"vote counts n_a={n_a!r}, n_b={n_b!r} must be whole numbers >= 0")
    n, k = n_a + n_b, max(n_a, n_b)
    if n == 0 or n_a == n_b:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k, n + 1))
    return float(min(1.0, 2 * tail / 2**n))


def check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise UsageError(f"alpha={alpha!r} must be in (0, 1)")
    return float(alpha)


def min_members(alpha: float) -> int:
    """The fewest members with which the two-sided test at alpha can ever predict: the least n with 2^(1-n) <= alpha."""
    alpha = check_alpha(alpha)
    n = 1
    while 2.0 ** (1 - n) > alpha:
        n += 1
    return n


def decide(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """(B,) long: the top label of integer vote counts (B, m), or ABSTAIN where the test's p-value > alpha."""
    alpha = check_alpha(alpha)
    if counts.shape[1] < 2:
        raise UsageError("a selective ensemble needs at least two labels")
    top2 = counts.round().to(torch.long).topk(2, dim=1)
    labels = top2.indices[:, 0]
    p = torch.tensor([binomial_p(int(a), int(b)) for a, b in top2.values.tolist()], dtype=torch.float64)
    return torch.where(p <= alpha, labels, torch.full_like(labels, ABSTAIN))


class Selective(EnsembleModule):
    """A selective ensemble at level alpha: forward(x) returns the vote counts (B, m); predict may ABSTAIN."""

    def __init__(self, members: Sequence[Member], eps: float, norm: ir.Norm = ir.Norm.L2, alpha: float = 0.05) -> None:
        super().__init__(members, eps, norm)
        self.alpha = check_alpha(alpha)

    def _tallies(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        certs = self.member_certs(x)
        return tallies(certs, torch.ones(len(certs), dtype=torch.float64), int(certs[0].scores.shape[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._tallies(x)[0].to(torch.float32)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return decide(self._tallies(x)[0], self.alpha)

    def certify(self, x: torch.Tensor) -> EnsembleCerts:
        """Sound (see the module docstring); abstentions are never certified."""
        Y, C, bot = self._tallies(x)
        label = decide(Y, self.alpha)
        top = C.argmax(dim=1)
        lead = C.gather(1, top[:, None]).squeeze(1)
        runner = C.scatter(1, top[:, None], -math.inf).amax(dim=1) + bot
        ok = torch.tensor([a > r and binomial_p(int(a), int(r)) <= self.alpha
                           for a, r in zip(lead.tolist(), runner.tolist(), strict=True)], dtype=torch.bool)
        return EnsembleCerts(label, ok & (label == top), self._none(label))
