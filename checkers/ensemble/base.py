"""What every ensemble shares: its members, the radius it certifies, and per-input results."""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from checkers.ensemble.members import Member, MemberCerts, check_eps
from spec import ir
from spec.errors import UsageError

ABSTAIN = -1  # the label of an abstention (selective ensembles)


@dataclass(frozen=True)
class EnsembleCerts:
    """Per-input results of an ensemble certifier (batch B).

    prediction (B,) long: the ensemble's label (ABSTAIN = -1 for an abstention);
    certified (B,) bool: the certifier's claim that the label is the same at every input of
    the ball (whether the claim is sound depends on the certifier: see its docstring);
    selected (B,) long: for a cascade, the member whose answer was taken (else -1).
    """

    prediction: torch.Tensor
    certified: torch.Tensor
    selected: torch.Tensor


class EnsembleModule(nn.Module, metaclass=ABCMeta):
    """Members (their modules registered as submodules) with the radius and norm the ensemble runs at.

    The radius matters at run time, not only for certificates: a cascade selects the first
    member certified at radius eps, so its prediction depends on eps.
    """

    min_members = 2

    def __init__(self, members: Sequence[Member], eps: float, norm: ir.Norm = ir.Norm.L2) -> None:
        super().__init__()
        members = list(members)
        if len(members) < self.min_members:
            raise UsageError(f"an ensemble needs at least {self.min_members} members, got {len(members)}")
        for k, m in enumerate(members):
            if not isinstance(m, Member):
                raise UsageError(f"member {k} ({type(m).__name__}) is not an ensemble member: wrap a LipschitzNet "
                                 "in checkers.ensemble.GloRoMember (or a ReLU network in FGPMember)")
        if not isinstance(norm, ir.Norm):
            raise UsageError(f"norm={norm!r} must be ir.Norm.L2 or ir.Norm.LINF")
        self.members = members
        self.modules_ = nn.ModuleList([m.module for m in members])
        self.eps = check_eps(eps)
        self.norm = norm

    def member_certs(self, x: torch.Tensor) -> list[MemberCerts]:
        """Every member's prediction and certificate at radius self.eps (float32 inputs (B, n))."""
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            raise UsageError(f"inputs must be a (batch, n) tensor, got {getattr(x, 'shape', type(x).__name__)}")
        x = x.to(torch.float32)
        return [m.certify(x, self.eps, self.norm) for m in self.members]

    def scores_finite(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) bool: every member's float32 scores at x are finite. Where one is NaN or infinite the
        ensemble's label rests on a comparison with no truth value: such a point is never a witness."""
        x = x.to(torch.float32)
        with torch.no_grad():
            return torch.stack([torch.isfinite(m.module(x)).all(dim=1) for m in self.members]).all(dim=0)

    @abstractmethod
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) long: the ensemble's labels (ABSTAIN for an abstention)."""

    @staticmethod
    def _none(like: torch.Tensor) -> torch.Tensor:
        return torch.full_like(like, -1, dtype=torch.long)


class Single(EnsembleModule):
    """One member as an ensemble of one (for checkers that treat networks and ensembles alike): its own certificate."""

    min_members = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_certs(x)[0].scores

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_certs(x)[0].prediction

    def certify(self, x: torch.Tensor) -> EnsembleCerts:
        c = self.member_certs(x)[0]
        return EnsembleCerts(c.prediction, c.certified, self._none(c.prediction))
