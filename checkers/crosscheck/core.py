"""The cross-check: every checker's claims against every attack's replayed counterexamples.

A *checker* turns a robustness property over a data set into per-point claims (label,
certified); an *attack* proposes points in the balls. Every attack point, from any attack
on any target of the same data set, eps and norm, is replayed on every target (the real
torch model or ensemble, float32, its real certifiers inside): a point certified by a
checker whose label changes at a replayed point inside its ball (and the domain) is a
contradiction, reported with its witness. A contradiction of a checker declared sound is a
soundness bug; the cascade's published certifier is declared UNSOUND, and its
contradictions are the expected demonstration.

Checkers by target kind (issue 8 adds more rows to `CHECKERS` and `ATTACKS`):
network: GloRo; cascade: the published certifier (UNSOUND) and the agreement-checked one;
vote: the sound voting certificate; selective: the sound selective certificate.
Attacks: PGD on the members (every target) and CasA (cascades).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from checkers.ensemble import AttackOptions, Cascade, EnsembleCerts, EnsembleModule, casa, member_pgd
from checkers.ensemble.base import Single
from checkers.ensemble.casa import AttackResult, in_ball
from spec import ir


@dataclass(frozen=True)
class Checker:
    name: str
    sound: bool
    claims: Callable[[EnsembleModule, torch.Tensor], EnsembleCerts]


def _published(e: EnsembleModule, x: torch.Tensor) -> EnsembleCerts:
    assert isinstance(e, Cascade)
    return e.certify_published_unsound(x)


def _agreement(e: EnsembleModule, x: torch.Tensor) -> EnsembleCerts:
    assert isinstance(e, Cascade)
    return e.certify_agreement(x)


def _own(e: EnsembleModule, x: torch.Tensor) -> EnsembleCerts:
    certify: Callable[[torch.Tensor], EnsembleCerts] = getattr(e, "certify")  # noqa: B009 (nn.Module's getattr types it as a Tensor)
    return certify(x)


CHECKERS: dict[str, tuple[Checker, ...]] = {
    "network": (Checker("gloro", True, _own),),
    "cascade": (Checker("cascade, published certifier (UNSOUND)", False, _published),
                Checker("cascade, agreement-checked", True, _agreement)),
    "vote": (Checker("vote", True, _own),),
    "selective": (Checker("selective", True, _own),),
}
Attack = Callable[[EnsembleModule, torch.Tensor, AttackOptions, "ir.Box | None"], AttackResult]
ATTACKS: dict[str, tuple[tuple[str, Attack], ...]] = {
    "network": (("pgd", member_pgd),),
    "cascade": (("casa", casa), ("pgd", member_pgd)),  # type: ignore[dict-item]
    "vote": (("pgd", member_pgd),),
    "selective": (("pgd", member_pgd),),
}


def target_kind(target: EnsembleModule) -> str:
    if isinstance(target, Single):
        return "network"
    return type(target).__name__.lower()


@dataclass(frozen=True)
class Contradiction:
    """Point `index` was certified with `label`; `x_adv` (in the ball, float32, replayed) gives `label_adv`."""

    index: int
    label: int
    label_adv: int
    x_adv: tuple[float, ...]
    found_by: str


@dataclass
class Row:
    """One checker on one property; rates are fractions of the points (None without labels)."""

    property: str
    target: str
    checker: str
    sound: bool
    points: int
    clean_accuracy: float | None = None
    claimed_vra: float | None = None
    certified: int = 0
    certified_accurate: int = 0
    broken: int = 0
    broken_accurate: int = 0
    accuracy_under_attack: float | None = None
    contradictions: list[Contradiction] = field(default_factory=list)

    def broken_fraction(self) -> float | None:
        """The fraction of certified-and-accurate points that a replayed attack point breaks."""
        return self.broken_accurate / self.certified_accurate if self.certified_accurate else None


@dataclass
class Case:
    """A property's target at its points: the module, points x (B, n), labels (B,) or None, domain."""

    prop: ir.Property
    target: EnsembleModule
    x: torch.Tensor
    labels: torch.Tensor | None
    domain: ir.Box | None
    key: tuple[str, float, str] = ("", 0.0, "")
    candidates: list[tuple[str, torch.Tensor]] = field(default_factory=list)


def attack_case(case: Case, options: AttackOptions) -> list[tuple[str, torch.Tensor]]:
    """Run the target's attacks; returns (attack name, (B, n) points) with x itself where an attack failed."""
    out = []
    for name, attack in ATTACKS[target_kind(case.target)]:
        result = attack(case.target, case.x, options, case.domain)
        out.append((f"{name} on {case.prop.target}", result.x_adv))
    return out


def _changed(case: Case, base: torch.Tensor, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        got = case.target.predict(points)
    ok = in_ball(points, case.x, case.target.eps, case.target.norm) & case.target.scores_finite(points)
    if case.domain is not None:
        lo = torch.tensor(case.domain.lower, dtype=torch.float64)
        hi = torch.tensor(case.domain.upper, dtype=torch.float64)
        p = points.to(torch.float64)
        ok &= ((p >= lo) & (p <= hi)).all(dim=1)
    return ok & (got != base), got


def check_case(case: Case, pool: list[tuple[str, torch.Tensor]]) -> list[Row]:
    """Every checker of the case's target against every candidate of the pool (same data set, eps, norm)."""
    rows = []
    base = case.target.predict(case.x)
    changed = torch.zeros(len(base), dtype=torch.bool)
    witness: dict[int, tuple[str, int, torch.Tensor]] = {}
    for name, points in pool:
        hit, got = _changed(case, base, points)
        for i in torch.nonzero(hit & ~changed).squeeze(1).tolist():
            witness[i] = (name, int(got[i]), points[i])
        changed |= hit
    for checker in CHECKERS[target_kind(case.target)]:
        claims = checker.claims(case.target, case.x)
        row = Row(case.prop.name, case.prop.target, checker.name, checker.sound, len(base),
                  certified=int(claims.certified.sum()))
        broken = claims.certified & changed
        row.broken = int(broken.sum())
        if case.labels is not None and len(base):
            correct = claims.prediction == case.labels
            row.clean_accuracy = float(correct.float().mean())
            row.claimed_vra = float((correct & claims.certified).float().mean())
            row.certified_accurate = int((correct & claims.certified).sum())
            row.broken_accurate = int((broken & correct).sum())
            row.accuracy_under_attack = float((correct & ~changed).float().mean())
        for i in torch.nonzero(broken).squeeze(1).tolist():
            found_by, label_adv, point = witness[i]
            row.contradictions.append(Contradiction(i, int(base[i]), label_adv, tuple(point.tolist()), found_by))
        rows.append(row)
    return rows
