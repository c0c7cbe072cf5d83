"""Cascades (Wong et al. 2018) with two certifiers: the published one (UNSOUND) and the agreement-checked one.

The cascade at x: j* = the first member certified at x (radius eps); it predicts member
j*'s label, or the last member's label when no member is certified.

`certify_published_unsound` is the certifier of the paper: the cascade "certifies" x iff
some member does. It is UNSOUND (Mangal et al. 2023) and kept on purpose, so that users
can watch it fail (`checkers.ensemble.casa`, `certspec crosscheck`): (1) an earlier member,
uncertified at x, is certified at x' with another label; (2) the selected member loses its
certificate at x' and a later member answers differently. Never use its claims as proofs.

`certify_agreement` is sound: it certifies x iff every member predicts the same label c at
x and the last member is certified at x. Proof: take x' in the ball. If member k is
certified at x' with label c', its certificate covers the ball of radius eps around x',
which contains x, so member k predicts c' at x, hence c' = c. If no member is certified at
x', the last member answers, and it is certified at x, so it predicts c at x'. Either way
the cascade predicts c at x'. (It uses nothing but the members' certificates being sound,
so it holds for GloRo and FGP members alike, in float32.)
"""

from __future__ import annotations

import torch

from checkers.ensemble.base import EnsembleCerts, EnsembleModule
from checkers.ensemble.members import MemberCerts


class Cascade(EnsembleModule):
    """The cascade of `members` (in order) at radius eps: forward(x) returns the selected member's scores (B, m)."""

    def _select(self, certs: list[MemberCerts]) -> tuple[torch.Tensor, torch.Tensor]:
        """(selected member (B,), label (B,)): the first certified member, else the last."""
        cert = torch.stack([c.certified for c in certs])  # (M, B)
        last = len(certs) - 1
        any_cert = cert.any(dim=0)
        first = cert.to(torch.int8).argmax(dim=0)
        selected = torch.where(any_cert, first, torch.full_like(first, last)).to(torch.long)
        preds = torch.stack([c.prediction for c in certs])  # (M, B)
        return selected, preds.gather(0, selected[None]).squeeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        certs = self.member_certs(x)
        selected, _ = self._select(certs)
        scores = torch.stack([c.scores for c in certs])  # (M, B, m)
        index = selected[None, :, None].expand(1, *scores.shape[1:])
        return scores.gather(0, index).squeeze(0)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._select(self.member_certs(x))[1]

    def certify_published_unsound(self, x: torch.Tensor) -> EnsembleCerts:
        """UNSOUND (kept on purpose): the published cascade certificate, "some member is certified at x".

        Its claims can be broken (see the module docstring and checkers.ensemble.casa).
        """
        certs = self.member_certs(x)
        selected, label = self._select(certs)
        claimed = torch.stack([c.certified for c in certs]).any(dim=0)
        return EnsembleCerts(label, claimed, selected)

    def certify_agreement(self, x: torch.Tensor) -> EnsembleCerts:
        """Sound: certified iff all members predict the same label at x and the last member is certified at x."""
        certs = self.member_certs(x)
        selected, label = self._select(certs)
        preds = torch.stack([c.prediction for c in certs])
        agree = (preds == label[None]).all(dim=0)
        return EnsembleCerts(label, agree & certs[-1].certified, selected)
