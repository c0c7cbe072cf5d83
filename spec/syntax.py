"""The AST of the property language: one frozen dataclass per grammar alias.

Every node has a `span` that equality and repr ignore, so two parses of texts that
differ only in layout compare equal. The AST is purely syntactic: names are not
resolved and numbers are not normalised (see `spec.check` and `spec.lower`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spec.errors import Span


def _span() -> Span:
    return field(default=None, compare=False, repr=False)  # type: ignore[return-value]


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Number:
    value: float  # never negative: a minus sign is a `Neg`
    span: Span = _span()


@dataclass(frozen=True)
class Name:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class Index:
    """`base[index]`; index None is `base[*]` (all coordinates)."""

    base: str
    index: int | None
    span: Span = _span()


@dataclass(frozen=True)
class Neg:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class BinOp:
    op: str  # '*' (sums are `Sum`)
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Sum:
    """`first op term op term ...`, read left to right; each op is '+' or '-'.

    One n-ary node, so a sum of 784 inputs is one level of nesting, not 784. `rest` has at
    least one term. A term that is itself a Sum was written in parentheses: `(a + b) - c`
    and `a - (b + c)` nest, `a + b - c` does not.
    """

    first: Expr
    rest: tuple[tuple[str, Expr], ...]
    span: Span = _span()


Expr = Number | Name | Index | Neg | BinOp | Sum


@dataclass(frozen=True)
class Vector:
    items: tuple[Expr, ...]
    span: Span = _span()


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Compare:
    op: str  # '<', '<=', '>' or '>='
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Interval:
    subject: Expr
    lower: Expr
    upper: Expr
    lower_open: bool = False
    upper_open: bool = False
    span: Span = _span()


@dataclass(frozen=True)
class Predicted:
    labels: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Rank:
    """`subject above others` / `subject below others` (decision order, strict)."""

    relation: str  # 'above' or 'below'
    subject: Expr
    others: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Position:
    """`subject is first`, `is last`, `is not first`, `is not last`."""

    which: str  # 'first' or 'last'
    negated: bool
    subject: Expr
    span: Span = _span()


@dataclass(frozen=True)
class And:
    left: Cond
    right: Cond
    span: Span = _span()


@dataclass(frozen=True)
class Or:
    left: Cond
    right: Cond
    span: Span = _span()


@dataclass(frozen=True)
class Not:
    operand: Cond
    span: Span = _span()


Cond = Compare | Interval | Predicted | Rank | Position | And | Or | Not


# ---------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Labels:
    names: tuple[Name, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Inputs:
    names: tuple[Name, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Domain:
    intervals: tuple[Interval, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Normalize:
    which: str  # 'inputs' or 'outputs'
    mean: Expr | Vector
    range: Expr | Vector
    span: Span = _span()


@dataclass(frozen=True)
class DecideRule:
    rule: str  # 'argmax' or 'argmin'
    span: Span = _span()


Clause = Labels | Inputs | Domain | Normalize | DecideRule


@dataclass(frozen=True)
class NetworkDecl:
    name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    clauses: tuple[Clause, ...] = ()
    span: Span = _span()
    input_span: Span = _span()  # of `real[...]`, for errors about the shape
    output_span: Span = _span()


@dataclass(frozen=True)
class ConstDecl:
    name: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class DatasetDecl:
    name: str
    source: str
    span: Span = _span()


@dataclass(frozen=True)
class Member:
    name: str
    weight: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Alpha:
    """`alpha VALUE` in the member list of a selective ensemble."""

    value: Expr
    span: Span = _span()


@dataclass(frozen=True)
class EnsembleDecl:
    name: str
    kind: str  # 'cascade', 'vote' or 'selective'
    members: tuple[Member | Alpha, ...]
    span: Span = _span()


@dataclass(frozen=True)
class OrderingBody:
    """`when region require requirement`; `when` None means everywhere in the domain."""

    when: Cond | None
    require: Cond
    span: Span = _span()


@dataclass(frozen=True)
class RobustBody:
    kind: str  # 'local', 'top' or 'within'
    eps: Expr
    norm: str  # 'l2' or 'linf'
    k: int | None = None
    sets: tuple[tuple[Expr, ...], ...] = ()
    points: tuple[Vector, ...] = ()
    dataset: Name | None = None
    span: Span = _span()


@dataclass(frozen=True)
class PropertyDecl:
    name: str
    body: OrderingBody | RobustBody
    description: str | None = None
    target: Name | None = None
    span: Span = _span()


Item = NetworkDecl | ConstDecl | DatasetDecl | EnsembleDecl | PropertyDecl


@dataclass(frozen=True)
class Module:
    items: tuple[Item, ...]
    span: Span = _span()
