"""Ensemble members: a torch model together with a sound certifier of its local robustness.

An ensemble's certifier is built from its members' certifiers. A member certifier answers,
per input x and radius eps, the member's prediction at x (argmax of its float32 scores) and
whether that prediction is certified: the same label is strictly ahead at every float32
input of the ball (for FGP: of the ball inside the input domain). Everything the ensemble
certifiers prove rests on that one guarantee; in particular, "certified at x' with label c"
implies "predicts c at every point within eps of x'", x included.

    >>> member = GloRoMember(net, "a")                      # the Lipschitz (GloRo) certificate
    >>> certs = member.certify(x, 0.3, ir.Norm.L2)          # MemberCerts(prediction, certified)

Members: `GloRoMember` (checkers.lipschitz; also gives the differentiable margins the CasA
attack uses) and `FGPMember` (checkers.fgp: ReLU networks, one point at a time; a point
that is not proven robust, whatever the reason, is not certified).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from checkers.lipschitz.certify import certify as gloro_certify
from checkers.lipschitz.certify import inference
from checkers.lipschitz.network import LipschitzNet, constants, sqrt_dim
from spec import ir
from spec.errors import UsageError


@dataclass(frozen=True)
class MemberCerts:
    """One member's answers for B inputs: prediction (B,) long, certified (B,) bool, scores (B, m) float32."""

    prediction: torch.Tensor
    certified: torch.Tensor
    scores: torch.Tensor


@runtime_checkable
class Member(Protocol):
    """What an ensemble needs from a member: a name, the torch module, and a sound certifier."""

    name: str
    module: nn.Module

    def certify(self, x: torch.Tensor, eps: float, norm: ir.Norm) -> MemberCerts:
        """Predictions and certified flags at the rows of x (B, n) for balls of radius eps."""
        ...


def check_eps(eps: float) -> float:
    """eps as a float; UsageError naming the value unless it is a finite number >= 0."""
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not math.isfinite(eps) or eps < 0:
        raise UsageError(f"eps={eps!r} must be a finite number >= 0")
    return float(eps)


class GloRoMember:
    """A LipschitzNet certified by GloRo (`checkers.lipschitz.certify`, sound for float32)."""

    def __init__(self, net: LipschitzNet, name: str = "member") -> None:
        if not isinstance(net, LipschitzNet):
            raise UsageError(f"member {name!r}: a GloRo member needs a LipschitzNet, got {type(net).__name__}")
        self.name = name
        self.module: nn.Module = net
        self.net = net

    def certify(self, x: torch.Tensor, eps: float, norm: ir.Norm) -> MemberCerts:
        cert = gloro_certify(self.net, x, check_eps(eps), norm)
        return MemberCerts(cert.prediction, cert.certified, cert.scores)

    def margin_table(self, eps: float, norm: ir.Norm) -> torch.Tensor:
        """(m, m) float32 eps * K_ji (l2 radius): the certification margin's penalty, for attacks (not a certificate)."""
        with inference(self.net):
            c = constants(self.net)
            scale = 1.0 if norm is ir.Norm.L2 else float(sqrt_dim(c.n_inputs))
            return (c.table * c.body * eps * scale).to(torch.float32)


class FGPMember:
    """A ReLU network certified point by point by fast geometric projections (`checkers.fgp`).

    Only HOLDS certifies; VIOLATED, UNKNOWN and TIMEOUT do not. FGP's guarantee covers the
    ball inside the input `domain`, so an ensemble built on FGP members is certified for the
    ball inside that domain.
    """

    def __init__(self, module: nn.Module, n_inputs: int, name: str = "member", *, domain: ir.Box | None = None,
                 timeout: float = 2.0) -> None:
        from checkers.fgp import FGP, FGPOptions

        self.name = name
        self.module = module
        self._fgp = FGP(module, n_inputs, domain=domain, options=FGPOptions(timeout=timeout))

    def certify(self, x: torch.Tensor, eps: float, norm: ir.Norm) -> MemberCerts:
        batch = self._fgp.certify(x, check_eps(eps), norm)
        with torch.no_grad():
            scores = self.module(x)
        return MemberCerts(scores.argmax(dim=1), batch.robust & (batch.prediction == scores.argmax(dim=1)), scores)
