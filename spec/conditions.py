"""Lowering of conditions: `when` regions and `require` requirements, in normalised units.

Raw units in, normalised units out: a raw input is `range * x + mean` and a raw score is
`range * y + mean` (the network's `normalize` block); a comparison of raw values becomes a
linear constraint on the normalised ones, with its strictness kept.

Decision order: `a above b` means a ranks before b under the network's decision rule,
strictly: y[a] > y[b] for argmax, y[a] < y[b] for argmin. `a is first` is `a above`
every other label; `a is not first` is "some other label is above a" (not the same as
`not a is first` when scores tie: see the README).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from spec import canon
from spec import syntax as s
from spec.errors import CheckError, SpecError, Span
from spec.ir import Box, Decide, HalfSpace, Linear, Network, Order, RegionPart
from spec.linear import Lin, Scope, constant, evaluate

Parts = tuple[RegionPart, ...]
_Box = tuple[list[float], list[float], list[bool], list[bool]]  # lower, upper and their strict flags


def _spanned(err: SpecError, span: Span | None) -> SpecError:
    return err if err.span is not None else type(err)(err.message, span)


def _strict_form(op: str, left: Lin, right: Lin) -> tuple[Lin, bool]:
    """`left op right` as `lin < 0` (strict) or `lin <= 0`."""
    diff = left.plus(right.scaled(-1.0))
    if op in (">", ">="):
        diff = diff.scaled(-1.0)
    return diff, op in ("<", ">")


def _normalised(lin: Lin, kind: str, net: Network) -> tuple[dict[int, float], float]:
    """Coefficients on normalised variables and the constant term."""
    norm = net.input_norm if kind == "x" else net.output_norm
    coeffs: dict[int, float] = {}
    const = lin.const
    for (_, i), c in lin.coeffs.items():
        mean, rng = (norm.mean[i], norm.range[i]) if norm is not None else (0.0, 1.0)
        coeffs[i] = c * rng
        const += c * mean
    return coeffs, const


def _check_finite(e: s.Cond, *numbers: float) -> None:
    """Raw numbers are finite (spec.linear); normalising or dividing by a coefficient may overflow."""
    if not all(map(math.isfinite, numbers)):
        raise CheckError(
            "this condition is out of range: once normalised, a coefficient or bound is not a finite float", e.span
        )


def _only(lin: Lin, kind: str, e: s.Cond) -> None:
    if not lin.coeffs:
        raise CheckError("this comparison has no variable in it", e.span)
    if lin.kinds() != {kind}:
        if kind == "x":
            raise CheckError("a `when` region is about inputs; a condition on outputs belongs in `require`", e.span)
        raise CheckError("a `require` is about outputs; a condition on inputs belongs in `when`", e.span)


# ---------------------------------------------------------------- regions


def _input_bound(lin: Lin, strict: bool, net: Network, e: s.Cond) -> canon.Bound | HalfSpace | bool:
    _only(lin, "x", e)
    coeffs, const = _normalised(lin, "x", net)
    _check_finite(e, const, *coeffs.values())
    bound = canon.input_bound(coeffs, -const, strict)
    if isinstance(bound, tuple) and not math.isfinite(bound[1]):
        _check_finite(e, bound[1])
    return bound


def _interval_bounds(e: s.Interval, scope: Scope) -> tuple[float, float]:
    lo, hi = constant(e.lower, scope, "lower bound"), constant(e.upper, scope, "upper bound")
    if lo > hi or (lo == hi and (e.lower_open or e.upper_open)):
        left, right = "(" if e.lower_open else "[", ")" if e.upper_open else "]"
        raise CheckError(f"empty interval {left}{lo!r}, {hi!r}{right}", e.span)
    return lo, hi


def every_input(e: s.Interval) -> bool:
    """Is the subject `x[*]`? (`y[*]` and any other `[*]` is an error.)"""
    subject = e.subject
    if isinstance(subject, s.Index) and subject.index is None:
        if subject.base != "x":
            raise CheckError("only x[*] (every input) may stand for all coordinates", subject.span)
        return True
    return False


def interval_subjects(e: s.Interval, scope: Scope) -> Iterator[Lin]:
    """The linear subjects of an interval, one at a time: one per input for `x[*]`."""
    if every_input(e):
        return (Lin({("x", i): 1.0}) for i in range(scope.n_inputs))
    return iter([evaluate(e.subject, scope)])


def _interval_constraints(e: s.Interval, scope: Scope) -> Iterator[tuple[Lin, bool]]:
    """The two sides of the interval for each subject, made as they are used (a `require`
    on `x[*]` fails at the first, not after one pair per input)."""
    lo, hi = _interval_bounds(e, scope)
    for subject in interval_subjects(e, scope):
        yield Lin({}, lo).plus(subject.scaled(-1.0)), e.lower_open  # lo - subject <= 0
        yield subject.plus(Lin({}, -hi)), e.upper_open  # subject - hi <= 0


def _bound_every_input(e: s.Interval, scope: Scope, net: Network, box: _Box) -> bool:
    """`x[*] in [lo, hi]` tightened into the box in place; False if it is empty.

    No Lin per input: the bounds of input i depend on i only through its normalisation
    (mean, range), so they are computed once per distinct pair, exactly as for `x[i] in
    [lo, hi]`, and their floats shared (one pair when the normalisation is uniform)."""
    lo, hi = _interval_bounds(e, scope)
    norm = net.input_norm
    sides: dict[tuple[float, float], list[canon.Bound | HalfSpace | bool]] = {}
    for i in range(net.n_inputs):
        key = (norm.mean[i], norm.range[i]) if norm is not None else (0.0, 1.0)
        bounds = sides.get(key)
        if bounds is None:
            x = Lin({("x", i): 1.0})
            lower_side, upper_side = Lin({}, lo).plus(x.scaled(-1.0)), x.plus(Lin({}, -hi))
            bounds = sides[key] = [
                _input_bound(lower_side, e.lower_open, net, e), _input_bound(upper_side, e.upper_open, net, e)
            ]
        for b in bounds:
            if b is False:
                return False
            if isinstance(b, tuple):
                canon.tighten(*box, (i, b[1], b[2], b[3]))
    return True


def region_parts(e: s.Cond, scope: Scope, net: Network) -> Parts:
    """The DNF of a `when` condition, before the domain is applied."""
    try:
        return _region(e, scope, net)
    except SpecError as err:
        raise _spanned(err, e.span) from None


def _and_operands(e: s.Cond) -> list[s.Cond]:
    out: list[s.Cond] = []
    stack = [e]
    while stack:
        c = stack.pop()
        if isinstance(c, s.And):
            stack += [c.right, c.left]
        else:
            out.append(c)
    return out


def _conjunction(conds: list[s.Cond], scope: Scope, net: Network) -> Parts:
    """An and of conditions: bounds go into one box in place; or-ed operands multiply out."""
    n = net.n_inputs
    lower, upper, ls, us = [-math.inf] * n, [math.inf] * n, [False] * n, [False] * n
    halfspaces: list[HalfSpace] = []
    predicted: set[int] | None = None
    others: list[s.Cond] = []
    for c in conds:
        constraints: list[tuple[Lin, bool]] = []
        if isinstance(c, s.Compare):
            constraints = [_strict_form(c.op, evaluate(c.left, scope), evaluate(c.right, scope))]
        elif isinstance(c, s.Interval) and every_input(c):
            if not _bound_every_input(c, scope, net, (lower, upper, ls, us)):
                return ()
        elif isinstance(c, s.Interval):
            constraints = list(_interval_constraints(c, scope))
        elif isinstance(c, s.Predicted):
            labels = {label_index(x, scope) for x in c.labels}
            predicted = labels if predicted is None else predicted & labels
        else:
            others.append(c)
        for lin, strict in constraints:
            b = _input_bound(lin, strict, net, c)
            if b is False:
                return ()
            if isinstance(b, HalfSpace):
                halfspaces.append(b)
            elif not isinstance(b, bool):
                canon.tighten(lower, upper, ls, us, b)
    box = Box(tuple(lower), tuple(upper), tuple(ls), tuple(us))
    allowed = None if predicted is None else tuple(sorted(predicted))
    parts: Parts = (RegionPart(box, canon.sorted_halfspaces(halfspaces), allowed),)
    for c in others:
        parts = canon.region_and(parts, region_parts(c, scope, net))
    return parts


def _region(e: s.Cond, scope: Scope, net: Network) -> Parts:
    if isinstance(e, s.Compare | s.Interval | s.Predicted | s.And):
        return _conjunction(_and_operands(e), scope, net)
    if isinstance(e, s.Or):
        return canon.region_or(region_parts(e.left, scope, net), region_parts(e.right, scope, net))
    if isinstance(e, s.Not):
        raise CheckError("`not` is not allowed in a `when` region: write the complement with comparisons", e.span)
    raise CheckError("a ranking (above, below, is first, is last) is about outputs: it belongs in `require`", e.span)


# ---------------------------------------------------------------- requirements


def label_index(e: s.Expr, scope: Scope) -> int:
    """The output index of a label reference (a label name or y[i])."""
    if isinstance(e, s.Name) and e.name in scope.labels:
        return scope.labels[e.name]
    if isinstance(e, s.Index) and e.base == "y":
        return scope.index(e)[1]
    if isinstance(e, s.Name):
        scope.resolve(e)  # raises a did-you-mean error for an unknown name
    raise CheckError(f"expected a label of network {scope.network} (a label name or y[i])", e.span)


def _above(pairs: list[tuple[int, int]], decide: Decide, every: bool) -> canon.Dnf:
    """`p above q` for every pair (one conjunction) or for some pair (one disjunct each),
    built in one step: linear in the number of labels, where and-ing or or-ing one label
    at a time copies the growing conjunction (quadratic: `is first` of 100,000 labels)."""
    atoms = [Order(p, q, True) if decide is Decide.ARGMAX else Order(q, p, True) for p, q in pairs]
    if every:
        return (frozenset(atoms),)
    return canon.dnf_or(canon.FALSE, tuple(dict.fromkeys(frozenset((a,)) for a in atoms)))


def _output_atom(lin: Lin, strict: bool, net: Network, e: s.Cond) -> canon.Dnf:
    _only(lin, "y", e)
    coeffs, const = _normalised(lin, "y", net)
    _check_finite(e, const, *coeffs.values())
    atom = canon.output_atom(coeffs, -const, strict)
    if isinstance(atom, Linear):
        _check_finite(e, atom.bound)
    elif isinstance(atom, bool) and any(coeffs.values()):  # a score bound beyond every double
        _check_finite(e, math.inf)
    return canon.dnf_of(atom)


def requirement_dnf(e: s.Cond, scope: Scope, net: Network) -> canon.Dnf:
    """The DNF of a `require` condition (exact negation, strictness kept)."""
    try:
        return _requirement(e, scope, net)
    except SpecError as err:
        raise _spanned(err, e.span) from None


def _ranks(e: s.Rank | s.Position, scope: Scope, net: Network) -> canon.Dnf:
    a = label_index(e.subject, scope)
    if isinstance(e, s.Rank):
        others = [label_index(o, scope) for o in e.others]
        if a in others:
            raise CheckError("a label cannot be ranked against itself", e.span)
        pairs = [(a, b) if e.relation == "above" else (b, a) for b in others]
        return _above(pairs, net.decide, every=True)
    others = [j for j in range(net.n_outputs) if j != a]
    if e.which == "first":
        pairs = [(j, a) for j in others] if e.negated else [(a, j) for j in others]
    else:
        pairs = [(a, j) for j in others] if e.negated else [(j, a) for j in others]
    return _above(pairs, net.decide, every=not e.negated)


def _requirement(e: s.Cond, scope: Scope, net: Network) -> canon.Dnf:
    if isinstance(e, s.Compare):
        lin, strict = _strict_form(e.op, evaluate(e.left, scope), evaluate(e.right, scope))
        return _output_atom(lin, strict, net, e)
    if isinstance(e, s.Interval):
        return canon.dnf_all(_output_atom(lin, strict, net, e) for lin, strict in _interval_constraints(e, scope))
    if isinstance(e, s.Rank | s.Position):
        return _ranks(e, scope, net)
    if isinstance(e, s.And):
        return canon.dnf_and(requirement_dnf(e.left, scope, net), requirement_dnf(e.right, scope, net))
    if isinstance(e, s.Or):
        return canon.dnf_or(requirement_dnf(e.left, scope, net), requirement_dnf(e.right, scope, net))
    if isinstance(e, s.Not):
        return canon.dnf_not(requirement_dnf(e.operand, scope, net))
    raise CheckError("`predicted in` is a precondition: it belongs in `when`", e.span)
