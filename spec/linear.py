"""Linear expressions: evaluating AST expressions to `coeffs . v + const` in raw units.

A variable is ('x', i) for input i or ('y', i) for output i. Names resolve, in order, to
a constant, an input name or a label of the network in scope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from spec import syntax as s
from spec.errors import CheckError, ScopeError, did_you_mean
from spec.parser import keywords

Var = tuple[str, int]


@dataclass
class Lin:
    coeffs: dict[Var, float] = field(default_factory=dict)
    const: float = 0.0

    def scaled(self, k: float) -> Lin:
        return Lin({v: c * k for v, c in self.coeffs.items() if c * k != 0.0}, self.const * k)

    def plus(self, other: Lin) -> Lin:
        coeffs = dict(self.coeffs)
        for v, c in other.coeffs.items():
            coeffs[v] = coeffs.get(v, 0.0) + c
        return Lin({v: c for v, c in coeffs.items() if c != 0.0}, self.const + other.const)

    def kinds(self) -> set[str]:
        return {v[0] for v in self.coeffs}


@dataclass
class Scope:
    """What names mean inside one network: constants, inputs and labels."""

    consts: dict[str, float]
    network: str | None = None
    inputs: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    n_inputs: int = 0
    n_outputs: int = 0

    def resolve(self, e: s.Name) -> Lin:
        if e.name in self.consts:
            return Lin({}, self.consts[e.name])
        if e.name in self.inputs:
            return Lin({("x", self.inputs[e.name]): 1.0})
        if e.name in self.labels:
            return Lin({("y", self.labels[e.name]): 1.0})
        if e.name in keywords():  # the lexer reads a keyword as a NAME where only a name fits
            raise ScopeError(f"{e.name!r} is a reserved word, not a name", e.span)
        known = [*self.consts, *self.inputs, *self.labels]
        where = f" in network {self.network}" if self.network else ""
        raise ScopeError(f"unknown name {e.name!r}{where}{did_you_mean(e.name, known)}", e.span)

    def index(self, e: s.Index) -> Var:
        sizes = {"x": ("inputs", self.n_inputs), "y": ("outputs", self.n_outputs)}
        if e.base not in sizes or self.network is None:
            raise ScopeError(f"unknown vector {e.base!r}: write x[i] for input i or y[i] for output i", e.span)
        if e.index is None:
            raise CheckError(f"{e.base}[*] stands for every coordinate: use it only as `{e.base}[*] in [a, b]`", e.span)
        what, size = sizes[e.base]
        if e.index >= size:
            raise CheckError(
                f"{e.base}[{e.index}] is out of range: network {self.network} has {what} "
                f"{e.base}[0] to {e.base}[{size - 1}]",
                e.span,
            )
        return (e.base, e.index)


def evaluate(e: s.Expr, scope: Scope) -> Lin:
    """The linear form of `e`; raises CheckError for a product of variables or a huge number."""
    out = _evaluate(e, scope)
    if not math.isfinite(out.const) or not all(math.isfinite(c) for c in out.coeffs.values()):
        raise CheckError("number out of range (it is not a finite float)", e.span)
    return out


def _evaluate(e: s.Expr, scope: Scope) -> Lin:
    if isinstance(e, s.Number):
        return Lin({}, e.value)
    if isinstance(e, s.Name):
        return scope.resolve(e)
    if isinstance(e, s.Index):
        return Lin({scope.index(e): 1.0})
    if isinstance(e, s.Neg):
        return _evaluate(e.operand, scope).scaled(-1.0)
    if isinstance(e, s.Sum):
        return _sum(e, scope)
    left, right = _evaluate(e.left, scope), _evaluate(e.right, scope)
    if left.coeffs and right.coeffs:
        raise CheckError("a product of two variables is not linear", e.span)
    return right.scaled(left.const) if not left.coeffs else left.scaled(right.const)


def _sum(e: s.Sum, scope: Scope) -> Lin:
    """The terms added left to right in one dict (linear in the number of terms); the same
    floats, in the same order, as adding them pairwise with `Lin.plus`."""
    out = _evaluate(e.first, scope)
    coeffs, const = dict(out.coeffs), out.const
    for op, term in e.rest:
        lin = _evaluate(term, scope)
        if op == "-":
            lin = lin.scaled(-1.0)
        for v, c in lin.coeffs.items():
            total = coeffs.get(v, 0.0) + c
            if total == 0.0:
                coeffs.pop(v, None)
            else:
                coeffs[v] = total
        const += lin.const
    return Lin(coeffs, const)


def constant(e: s.Expr, scope: Scope, what: str = "value") -> float:
    """Evaluate an expression that must be a constant."""
    out = evaluate(e, scope)
    if out.coeffs:
        raise CheckError(f"the {what} must be a constant, not an expression of inputs or outputs", e.span)
    return out.const
