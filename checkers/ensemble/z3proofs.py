"""Exact small ensembles in Z3: the cascade's published certificate is refuted, voting and agreement are proven.

Semantics: exact real arithmetic (Z3's linear real arithmetic over rationals), no floats.
Members are binary linear classifiers f(x) = w.x + b on R^n: label 1 iff f(x) > 0 (0 at a
tie); certified at radius eps in l_inf iff |f(x)| > eps * ||w||_1, which is exact for a linear
member (the smallest f over the ball is f(x) - eps ||w||_1). A member with w = 0 is a
constant, always certified (|b| > 0). Every construction is encoded exactly, so "unsat" is a
proof for those members (for every pair of points, in real arithmetic) and "sat" comes with
a model that `replay` re-checks in Python fractions.

Constructions (ALGORITHMS.md §5; l_inf, eps = 1/10):
- TWO_MEMBER: the minimal witness of Mangal et al.: w = (1, 0), then a constant member that
  predicts 0; x = (1/10, 0) (member 1 not certified: |1/10| is not > 1/10; the constant
  member answers 0, "certified") and x' = (3/20, 0) (member 1 certified, answers 1). This is
  failure (1): an earlier member becomes certified with another label.
- THREE_MEMBER (ours, for failure (2)): w = (1, 0), w = (0, 1), then a constant member that
  predicts 1; x = (3/20, -1/20) (member 1 certified, answers 1), x' = (1/10, -3/20) (member
  1 loses its certificate, member 2 is certified and answers 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import z3

from spec.errors import UsageError

CERTIFIERS = ("published-unsound", "agreement", "vote")


@dataclass(frozen=True)
class LinearMember:
    """f(x) = w.x + b; label 1 iff f > 0."""

    w: tuple[Fraction, ...]
    b: Fraction

    def score(self, x: Sequence[Any]) -> Any:
        total: Any = self.b
        for wi, xi in zip(self.w, x, strict=True):
            total = total + wi * xi
        return total

    def l1(self) -> Fraction:
        return sum((abs(v) for v in self.w), Fraction(0))


@dataclass(frozen=True)
class Construction:
    """Members (in cascade order), eps, and the stated witness: x (claimed certified) and x' in its ball."""

    name: str
    members: tuple[LinearMember, ...]
    eps: Fraction
    x: tuple[Fraction, ...]
    x_adv: tuple[Fraction, ...]


def _f(*values: object) -> tuple[Fraction, ...]:
    return tuple(Fraction(str(v)) for v in values)


TWO_MEMBER = Construction("two-member", (LinearMember(_f(1, 0), Fraction(0)), LinearMember(_f(0, 0), Fraction(-1))),
                          Fraction(1, 10), _f("1/10", 0), _f("3/20", 0))
THREE_MEMBER = Construction(
    "three-member",
    (LinearMember(_f(1, 0), Fraction(0)), LinearMember(_f(0, 1), Fraction(0)), LinearMember(_f(0, 0), Fraction(1))),
    Fraction(1, 10), _f("3/20", "-1/20"), _f("1/10", "-3/20"))


def _exact(v: Any) -> Any:
    """A Fraction as an exact Z3 rational (z3.If takes no Fraction); anything else unchanged."""
    return z3.RealVal(f"{v.numerator}/{v.denominator}") if isinstance(v, Fraction) else v


class _Ops:
    """The same rules over Z3 terms or over Fractions (If, And, Or, Not, Abs)."""

    def __init__(self, symbolic: bool) -> None:
        self.symbolic = symbolic

    def ite(self, c: Any, a: Any, b: Any) -> Any:
        if not self.symbolic:
            return a if c else b
        return z3.If(c, _exact(a), _exact(b))

    def all(self, items: list[Any]) -> Any:
        return z3.And(*items) if self.symbolic else all(items)

    def any(self, items: list[Any]) -> Any:
        return z3.Or(*items) if self.symbolic else any(items)

    def abs(self, v: Any) -> Any:
        return z3.If(v >= 0, v, -v) if self.symbolic else abs(v)


def _member(ops: _Ops, m: LinearMember, x: Sequence[Any], eps: Fraction) -> tuple[Any, Any]:
    """(label as 0/1 term, certified term) of one member at x."""
    f = m.score(x)
    return ops.ite(f > 0, 1, 0), ops.abs(f) > eps * m.l1()


def _cascade_label(ops: _Ops, states: list[tuple[Any, Any]]) -> Any:
    label = states[-1][0]
    for lab, cert in reversed(states[:-1]):
        label = ops.ite(cert, lab, label)
    return label


def ensemble_at(ops: _Ops, members: Sequence[LinearMember], eps: Fraction, certifier: str, x: Sequence[Any],
                weights: Sequence[Fraction]) -> tuple[Any, Any]:
    """(label, claimed certified) of the ensemble at x under the named certifier."""
    states = [_member(ops, m, x, eps) for m in members]
    if certifier == "vote":  # two labels: Y[1] > Y[0] predicts 1 (ties go to the lower label)
        y1 = sum((ops.ite(lab == 1, w, 0) for (lab, _), w in zip(states, weights, strict=True)), Fraction(0))
        total = sum(weights, Fraction(0))
        c = [sum((ops.ite(cert, ops.ite(lab == k, w, 0), 0) for (lab, cert), w in zip(states, weights, strict=True)),
                 Fraction(0)) for k in (0, 1)]
        bot = total - c[0] - c[1]
        claimed = ops.any([c[0] > c[1] + bot, c[1] > c[0] + bot])
        return ops.ite(y1 > total - y1, 1, 0), claimed
    label = _cascade_label(ops, states)
    if certifier == "published-unsound":
        return label, ops.any([cert for _, cert in states])
    if certifier == "agreement":
        return label, ops.all([lab == label for lab, _ in states] + [states[-1][1]])
    raise UsageError(f"certifier {certifier!r} must be one of {', '.join(CERTIFIERS)}")


def _weights(members: Sequence[LinearMember], weights: Sequence[Fraction] | None) -> list[Fraction]:
    ws = [Fraction(1)] * len(members) if weights is None else [Fraction(w) for w in weights]
    if len(ws) != len(members) or any(w <= 0 for w in ws):
        raise UsageError(f"weights={list(map(str, ws))!r}: give one weight > 0 per member")
    return ws


def replay(c: Construction, certifier: str, x: Sequence[Fraction], x_adv: Sequence[Fraction],
           weights: Sequence[Fraction] | None = None) -> bool:
    """Exactly, in fractions: x' is within eps of x (l_inf), the certifier claims x, and the label differs at x'."""
    ops, ws = _Ops(False), _weights(c.members, weights)
    if max(abs(a - b) for a, b in zip(x, x_adv, strict=True)) > c.eps:
        return False
    label, claimed = ensemble_at(ops, c.members, c.eps, certifier, x, ws)
    label_adv, _ = ensemble_at(ops, c.members, c.eps, certifier, x_adv, ws)
    return bool(claimed) and label != label_adv


Points = tuple[tuple[Fraction, ...], tuple[Fraction, ...]]


def counterexample(c: Construction, certifier: str, weights: Sequence[Fraction] | None = None,
                   timeout_ms: int = 20_000, pin: tuple[Sequence[Fraction], Sequence[Fraction]] | None = None,
                   ) -> tuple[str, Points | None]:
    """Ask Z3 for x, x' with ||x - x'||_inf <= eps, the certifier's claim at x, and another label at x'.

    Returns ("unsat", None): proven sound on these members; ("sat", (x, x')) with exact values
    (re-checked by `replay`, else an error); or ("unknown", None). pin: fix x and x' to these points
    (to check a stated witness against the encoding itself).
    """
    ops, ws = _Ops(True), _weights(c.members, weights)
    n = len(c.x)
    x = [z3.Real(f"x{i}") for i in range(n)]
    xa = [z3.Real(f"xa{i}") for i in range(n)]
    label, claimed = ensemble_at(ops, c.members, c.eps, certifier, x, ws)
    label_adv, _ = ensemble_at(ops, c.members, c.eps, certifier, xa, ws)
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(claimed, label != label_adv)
    solver.add(*[z3.And(xa[i] - x[i] <= c.eps, x[i] - xa[i] <= c.eps) for i in range(n)])
    if pin is not None:
        solver.add(*[v == _exact(Fraction(p)) for v, p in zip(x + xa, [*pin[0], *pin[1]], strict=True)])
    answer = solver.check()
    if answer == z3.unsat:
        return "unsat", None
    if answer != z3.sat:
        return "unknown", None
    model = solver.model()

    def value(v: z3.ArithRef) -> Fraction:
        r = model.eval(v, model_completion=True)
        return Fraction(r.numerator_as_long(), r.denominator_as_long())

    point, point_adv = tuple(value(v) for v in x), tuple(value(v) for v in xa)
    if not replay(c, certifier, point, point_adv, ws):
        raise AssertionError(f"Z3's model {point}, {point_adv} does not replay: the encoding is wrong")
    return "sat", (point, point_adv)
