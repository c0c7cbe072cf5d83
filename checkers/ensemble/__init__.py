"""Ensembles of certified classifiers, with certifiers built from their members' certifiers (ALGORITHMS.md §5).

    >>> members = [GloRoMember(net_a, "a"), GloRoMember(net_b, "b"), GloRoMember(net_c, "c")]
    >>> cascade = Cascade(members, eps=0.3)             # predict: first certified member's label
    >>> cascade.certify_published_unsound(x)            # UNSOUND on purpose: watch CasA break it
    >>> cascade.certify_agreement(x)                    # sound
    >>> Vote(members, 0.3, weights=[2, 1, 1]).certify(x)          # sound
    >>> Selective(members, 0.3, alpha=0.05).predict(x)            # label or ABSTAIN (-1)
    >>> casa(cascade, x).broken                         # replayed counterexamples to the cascade

`from_ir(ensemble, members, eps, norm)` builds the module of an `ensemble` declaration.
`checkers.ensemble.z3proofs` holds the exact two- and three-member constructions.
"""

from __future__ import annotations

from collections.abc import Mapping

from checkers.ensemble.base import ABSTAIN, EnsembleCerts, EnsembleModule
from checkers.ensemble.cascade import Cascade
from checkers.ensemble.casa import AttackOptions, AttackResult, casa, member_pgd
from checkers.ensemble.members import FGPMember, GloRoMember, Member, MemberCerts
from checkers.ensemble.selective import Selective, binomial_p, min_members
from checkers.ensemble.vote import Vote
from spec import ir
from spec.errors import UsageError, did_you_mean


def from_ir(ensemble: ir.Ensemble, members: Mapping[str, Member], eps: float,
            norm: ir.Norm = ir.Norm.L2) -> EnsembleModule:
    """The torch module of an `ensemble` declaration; members maps each member's network name to its Member."""
    missing = [name for name in ensemble.members if name not in members]
    if missing:
        raise UsageError(f"ensemble {ensemble.name}: no model for member {missing[0]!r}"
                         f"{did_you_mean(missing[0], list(members))}")
    chosen = [members[name] for name in ensemble.members]
    if ensemble.kind is ir.EnsembleKind.CASCADE:
        return Cascade(chosen, eps, norm)
    if ensemble.kind is ir.EnsembleKind.VOTE:
        return Vote(chosen, eps, norm, ensemble.weights)
    assert ensemble.alpha is not None  # the IR validator requires it for selective ensembles
    return Selective(chosen, eps, norm, ensemble.alpha)


__all__ = [
    "ABSTAIN", "AttackOptions", "AttackResult", "Cascade", "EnsembleCerts", "EnsembleModule", "FGPMember",
    "GloRoMember", "Member", "MemberCerts", "Selective", "Vote", "binomial_p", "casa", "from_ir", "member_pgd",
    "min_members",
]
