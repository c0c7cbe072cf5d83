"""VNN-LIB 1.0 import and export.

A VNN-LIB file states a VIOLATION: its asserts on the inputs `X_i` give the input region,
its asserts on the outputs `Y_j` say what an unsafe output looks like, and the network is
unsafe if some point satisfies every assert. The IR property is the negation:

- region: the conjunction of the X asserts as a DNF of `RegionPart`s (an `(or (and ...)
  ...)` on X, as in ACAS Xu prop_6, gives several parts), intersected with the network's
  domain by `canon.region`;
- requirement: NOT(conjunction of the Y asserts), expanded to a DNF and made canonical by
  `canon.ordering`. Strictness is exact: `(<= Y_1 Y_0)` negates to y1 > y0.

Atoms are built only by `canon.output_atom`/`canon.negate` and regions only by
`canon.input_constraint`/`region_and`/`region_or`/`region`, so an imported property has
the canonical form of one lowered from a `.prop` file. DNF products are absorbed as they
are built (a conjunction implied by a smaller one is dropped) to stay small.

Numbers: each literal is read exactly (a rational), arithmetic on them (`+`, `-`, `*`,
`/`) is exact, and a one-variable bound is rounded inwards to the double bound that admits
exactly the doubles the exact bound admits (`canon.double_bound`: a witness on a face
written as `0.387254923582077` lies in the region as written); the coefficients and bound
of a half-space over several inputs, and output constraints, are rounded to the nearest doubles.
Export prints every number with `repr(float)`, so export then import is exact. Export
writes `<` and `>` for strict comparisons (SMT-LIB allows them; VNN-LIB 1.0 files in the
wild use only `<=` and `>=`) and `(assert false)` for a requirement that always holds.

Read: `;` comments (to the end of the line: lines end at `\n`, `\r\n` or `\r` only, and
line numbers in errors count those); at most `MAX_DEPTH` levels of parentheses (deeper is a
located error, not a RecursionError); `declare-const` of `X_0..X_{n-1}` and `Y_0..Y_{m-1}`, sort `Real`;
`assert` over `and`, `or`, `not`, `true`, `false`, chains of `<= < >= > =`, and linear terms
(`+`, unary and binary `-`, `*` and `/` by constants; an exact value of more than
`_MAX_BITS` bits is refused); `set-logic`, `set-info`,
`set-option`, `check-sat`, `get-model` and `exit` are ignored. A disjunction (or a single
comparison) over both X and Y cannot be represented and is an error.
"""

from __future__ import annotations

import contextlib
import decimal
import math
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePath

from spec import canon, ir
from spec.errors import CheckError, Source, Span, VnnlibError

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SYMBOL = re.compile(r"[A-Za-z~!@$%^&*_+=<>.?/-][A-Za-z0-9~!@$%^&*_+=<>.?/-]*")
_TOKEN = re.compile(r";.*|[()]|[^\s();]+")  # `.` stops only at "\n": lines are split first
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
MAX_DEPTH = 200  # levels of parentheses; the reader recurses once or twice per level
_VARIABLE = re.compile(r"([XY])_(0|[1-9][0-9]*)")
_IGNORED = frozenset({"set-logic", "set-info", "set-option", "check-sat", "get-model", "exit"})
_COMMANDS = frozenset({"declare-const", "assert"}) | _IGNORED
_COMPARE = frozenset({"<=", "<", ">=", ">", "="})
_BOOLEAN = frozenset({"and", "or", "not"}) | _COMPARE
_ARITH = frozenset({"+", "-", "*", "/"})

_Var = tuple[str, int]  # ("X", i) or ("Y", j)


# ---------------------------------------------------------------- s-expressions


@dataclass(frozen=True)
class _Sym:
    text: str
    span: Span


@dataclass(frozen=True)
class _List:
    items: tuple[_Sym | _List, ...]
    span: Span


_Expr = _Sym | _List


def _tokens(source: Source) -> Iterator[_Sym]:
    """Every token ('(', ')', a number or a symbol) with its span; comments dropped.

    A `;` comment ends at the end of its line, and lines end at "\n", "\r\n" or "\r" only
    (as in SMT-LIB): never at a form feed, "\x0b", "\x1c".."\x1e", "\x85", "\u2028" or
    "\u2029" (str.splitlines breaks there, which would read the rest of a comment as code)."""
    for number, line in enumerate(_LINE_BREAK.split(source.text), start=1):
        for m in _TOKEN.finditer(line):
            text, span = m.group(), Span(source, number, m.start() + 1, number, m.end() + 1)
            if text in ("(", ")") or _NUMBER.fullmatch(text) or _SYMBOL.fullmatch(text):
                yield _Sym(text, span)
            elif not text.startswith(";"):
                raise VnnlibError(f"bad token {text!r}", span)


def _parse(source: Source) -> list[_Expr]:
    """The top-level s-expressions of the text."""
    opens: list[Span] = []
    frames: list[list[_Expr]] = [[]]
    for tok in _tokens(source):
        if tok.text == "(":
            if len(opens) == MAX_DEPTH:
                raise VnnlibError(f"this is nested too deeply: more than {MAX_DEPTH} levels of parentheses", tok.span)
            opens.append(tok.span)
            frames.append([])
        elif tok.text == ")":
            if not opens:
                raise VnnlibError("unbalanced ')': no '(' to close", tok.span)
            start, items = opens.pop(), frames.pop()
            span = Span(source, start.line, start.column, tok.span.end_line, tok.span.end_column)
            frames[-1].append(_List(tuple(items), span))
        else:
            frames[-1].append(tok)
    if opens:
        raise VnnlibError("unbalanced '(': it is never closed", opens[-1])
    return frames[0]


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class _Cmp:
    """sum(c * v) < bound (strict) or <= bound."""

    coeffs: tuple[tuple[_Var, Fraction], ...]
    bound: Fraction
    strict: bool
    span: Span


@dataclass(frozen=True)
class _Junction:
    """and/or of its items; `true` is the empty and, `false` the empty or."""

    is_and: bool
    items: tuple[_Cmp | _Junction, ...]
    span: Span


_Cond = _Cmp | _Junction
_Lin = tuple[dict[_Var, Fraction], Fraction]  # coefficients and constant


def _negate(c: _Cond) -> _Cond:
    if isinstance(c, _Cmp):
        return _Cmp(tuple((v, -q) for v, q in c.coeffs), -c.bound, not c.strict, c.span)
    return _Junction(not c.is_and, tuple(_negate(x) for x in c.items), c.span)


def _kinds(c: _Cond) -> set[str]:
    if isinstance(c, _Cmp):
        return {v[0] for v, _ in c.coeffs}
    return set().union(*(_kinds(x) for x in c.items))


def _conjuncts(c: _Cond) -> Iterator[_Cond]:
    if isinstance(c, _Junction) and c.is_and:
        for x in c.items:
            yield from _conjuncts(x)
    else:
        yield c


def _add(a: _Lin, b: _Lin, sign: int) -> _Lin:
    coeffs = dict(a[0])
    for v, q in b[0].items():
        coeffs[v] = coeffs.get(v, Fraction(0)) + sign * q
    return coeffs, a[1] + sign * b[1]


def _scale(a: _Lin, k: Fraction) -> _Lin:
    return {v: q * k for v, q in a[0].items()}, a[1] * k


_MAX_BITS = 20_000  # of the numerator or the denominator of an exact value computed in a term


def _sized(q: Fraction, e: _Expr) -> Fraction:
    """`q`, unless its exact value has grown past `_MAX_BITS` (a product of 40,000 factors
    `1.0000001` would make every later step cost more than the whole file)."""
    if q.numerator.bit_length() > _MAX_BITS or q.denominator.bit_length() > _MAX_BITS:
        raise VnnlibError(
            f"the exact value of this term needs more than {_MAX_BITS} bits: use fewer factors, divisors or terms", e.span
        )
    return q


def _arity(head: _Sym, args: tuple[_Expr, ...], least: int, exact: bool = False) -> None:
    if len(args) < least or (exact and len(args) > least):
        want = str(least) if exact else f"at least {least}"
        raise VnnlibError(f"{head.text!r} takes {want} argument(s), found {len(args)}", head.span)


def _compare(op: str, a: _Lin, b: _Lin, span: Span) -> _Cond:
    if op == "=":
        return _Junction(True, (_compare("<=", a, b, span), _compare(">=", a, b, span)), span)
    coeffs, const = _add(a, b, -1) if op in ("<=", "<") else _add(b, a, -1)
    return _Cmp(tuple((v, q) for v, q in coeffs.items() if q != 0), -const, op in ("<", ">"), span)


class _Reader:
    """Reads the commands in order (a variable must be declared before it is used)."""

    def __init__(self) -> None:
        self.declared: dict[str, Span] = {}
        self.asserts: list[_Cond] = []

    def command(self, e: _Expr) -> None:
        head, args = self.head(e, _COMMANDS, "a command (declare-const or assert)")
        if head.text == "assert":
            _arity(head, args, 1, exact=True)
            self.asserts.append(self.cond(args[0]))
        elif head.text == "declare-const":
            name, sort = args if len(args) == 2 else (None, None)
            if not (isinstance(name, _Sym) and isinstance(sort, _Sym)):
                raise VnnlibError("expected (declare-const NAME Real)", e.span)
            if not _VARIABLE.fullmatch(name.text):
                raise VnnlibError(f"variable {name.text!r} must be named X_<i> (input) or Y_<j> (output)", name.span)
            if sort.text != "Real":
                raise VnnlibError(f"variable {name.text} has sort {sort.text!r}; only Real is supported", sort.span)
            if name.text in self.declared:
                raise VnnlibError(f"variable {name.text} is declared twice", name.span)
            self.declared[name.text] = name.span

    @staticmethod
    def head(e: _Expr, allowed: frozenset[str], what: str) -> tuple[_Sym, tuple[_Expr, ...]]:
        if isinstance(e, _Sym):
            raise VnnlibError(f"expected {what}, found {e.text!r}", e.span)
        if not e.items or not isinstance(e.items[0], _Sym):
            raise VnnlibError(f"expected {what}", e.span)
        head = e.items[0]
        if head.text not in allowed:
            known = head.text in _COMMANDS | _BOOLEAN | _ARITH
            raise VnnlibError(
                f"expected {what}, found {head.text!r}" if known else f"unknown operator {head.text!r}", head.span
            )
        return head, e.items[1:]

    def cond(self, e: _Expr) -> _Cond:
        if isinstance(e, _Sym) and e.text in ("true", "false"):
            return _Junction(e.text == "true", (), e.span)
        head, args = self.head(e, _BOOLEAN, "a condition")
        if head.text in ("and", "or"):
            return _Junction(head.text == "and", tuple(self.cond(a) for a in args), e.span)
        if head.text == "not":
            _arity(head, args, 1, exact=True)
            return _negate(self.cond(args[0]))
        _arity(head, args, 2)
        pairs = [_compare(head.text, a, b, e.span) for a, b in itertools.pairwise(self.term(a) for a in args)]
        return pairs[0] if len(pairs) == 1 else _Junction(True, tuple(pairs), e.span)

    def term(self, e: _Expr) -> _Lin:
        if isinstance(e, _Sym) and _NUMBER.fullmatch(e.text):
            return {}, _exact_number(e)
        if isinstance(e, _Sym):
            m = _VARIABLE.fullmatch(e.text)
            if e.text not in self.declared or m is None:
                raise VnnlibError(f"{'undeclared variable' if m else 'unknown name'} {e.text!r}", e.span)
            return {(m.group(1), int(m.group(2))): Fraction(1)}, Fraction(0)
        head, args = self.head(e, _ARITH, "an arithmetic term")
        _arity(head, args, 1)
        op, out = head.text, self.term(args[0])
        if op == "-" and len(args) == 1:
            return _scale(out, Fraction(-1))
        if op in ("+", "-"):  # summed in place: linear in the number of terms
            coeffs, const, sign = dict(out[0]), out[1], 1 if op == "+" else -1
            for arg in args[1:]:
                t = self.term(arg)
                for v, q in t[0].items():
                    coeffs[v] = _sized(coeffs.get(v, Fraction(0)) + sign * q, arg)
                const = _sized(const + sign * t[1], arg)
            return coeffs, const
        for arg in args[1:]:
            t = self.term(arg)
            if (op == "/" and (t[0] or t[1] == 0)) or (op == "*" and out[0] and t[0]):
                raise VnnlibError("not linear: multiply by constants and divide by nonzero constants only", arg.span)
            else:
                out = _scale(out, 1 / t[1]) if op == "/" else _scale(t, out[1]) if t[0] else _scale(out, t[1])
            for q in (out[1], *out[0].values()):
                _sized(q, arg)
        return out

    def count(self, kind: str) -> int:
        """How many `kind` variables are declared; they must be kind_0..kind_{n-1}."""
        found = sorted((int(name[2:]), span) for name, span in self.declared.items() if name[0] == kind)
        for expected, (index, span) in enumerate(found):
            if index != expected:
                raise VnnlibError(f"{kind}_{index} is declared but {kind}_{expected} is not", span)
        return len(found)


# ---------------------------------------------------------------- to the IR


_MAX_DIGITS = 1000  # a longer literal is refused (an exact decimal of it would cost more than it can mean)


def _exact_number(e: _Sym) -> Fraction:
    """The literal's exact value (a 15-digit decimal is not the double nearest to it).

    Refused: a literal outside the double range, a nonzero literal below the smallest
    double (its exact value would be a huge fraction, and no double tells it from 0), and
    literals of more than `_MAX_DIGITS` characters."""
    if len(e.text) > _MAX_DIGITS:
        raise VnnlibError(f"number literal of {len(e.text)} characters: at most {_MAX_DIGITS} are read", e.span)
    value = float(e.text)
    if math.isinf(value):
        raise VnnlibError(f"number {e.text} is out of the range of a double", e.span)
    if value == 0.0:
        mantissa = e.text.lower().split("e")[0]
        if any(ch in "123456789" for ch in mantissa):
            raise VnnlibError(f"number {e.text} is below the smallest double (about 4.9e-324): write 0", e.span)
        return Fraction(0)
    return Fraction(e.text)


def _floats(c: _Cmp) -> tuple[dict[int, float], float]:
    try:
        return {v[1]: float(q) for v, q in c.coeffs}, float(c.bound)
    except OverflowError:
        raise VnnlibError("a coefficient or bound is out of the range of a double", c.span) from None


def _input_bound(c: _Cmp) -> canon.Bound | ir.HalfSpace | bool:
    """An input constraint with its numbers exact: a one-variable bound admits exactly the
    doubles the file's decimal admits (`canon.double_bound`), so a witness on a face written
    as a 15-digit decimal lies in the region as written, not an ulp outside it."""
    if len(c.coeffs) > 1:
        _floats(c)  # the half-space's doubles must exist
    return canon.input_bound({v[1]: q for v, q in c.coeffs}, c.bound, c.strict)


@contextlib.contextmanager
def _at(span: Span) -> Iterator[None]:
    """Re-raise canon's CheckError (too many disjuncts) as a VnnlibError at `span`."""
    try:
        yield
    except CheckError as err:
        raise VnnlibError(err.message, span) from None


def _output_dnf(c: _Cond) -> canon.Dnf:
    if isinstance(c, _Cmp):
        if len(c.coeffs) != 1:
            _floats(c)  # the doubles of a several-term atom must exist
        return canon.dnf_of(canon.output_atom({v[1]: q for v, q in c.coeffs}, c.bound, c.strict))
    parts = [_output_dnf(x) for x in c.items]
    return canon.dnf_all(parts) if c.is_and else canon.dnf_any(parts)


def _input_parts(c: _Cond, n: int) -> tuple[ir.RegionPart, ...]:
    everything = (ir.RegionPart(ir.Box.unbounded(n)),)
    if isinstance(c, _Cmp):
        b = _input_bound(c)
        if isinstance(b, bool):
            return everything if b else ()
        return (canon.bound_part(b, n),)
    out: tuple[ir.RegionPart, ...] = everything if c.is_and else ()
    for x in c.items:
        out = canon.region_and(out, _input_parts(x, n)) if c.is_and else canon.region_or(out, _input_parts(x, n))
    return out


def _bounds_box(bounds: list[_Cmp], n: int) -> tuple[ir.RegionPart, ...]:
    """The conjunction of one-variable constraints, tightened into one box in place
    (linear, not quadratic, in the number of inputs)."""
    lower, upper, ls, us = [-math.inf] * n, [math.inf] * n, [False] * n, [False] * n
    for c in bounds:
        b = _input_bound(c)
        if b is False:
            return ()
        if isinstance(b, tuple):
            canon.tighten(lower, upper, ls, us, b)
    box = ir.Box(tuple(lower), tuple(upper), tuple(ls), tuple(us))
    return () if box.is_empty() else (ir.RegionPart(box),)


def _region(xs: list[_Cond], net: ir.Network) -> ir.Region:
    parts: tuple[ir.RegionPart, ...] = (ir.RegionPart(ir.Box.unbounded(net.n_inputs)),)
    bounds = [c for c in xs if isinstance(c, _Cmp) and len(c.coeffs) == 1]
    for c in xs:
        if not (isinstance(c, _Cmp) and len(c.coeffs) == 1):
            with _at(c.span):
                parts = canon.region_and(parts, _input_parts(c, net.n_inputs))
    return canon.region(canon.region_and(parts, _bounds_box(bounds, net.n_inputs)), net.domain)


def _requirement(ys: list[_Cond]) -> ir.Ordering:
    violation = canon.TRUE
    for c in ys:
        with _at(c.span):
            violation = canon.dnf_and(violation, _output_dnf(c))
    return canon.ordering(canon.dnf_not(violation))


def _network(name: str, n: int, m: int, network: ir.Network | None) -> ir.Network:
    if n == 0 or m == 0:
        raise VnnlibError(f"{name}: declares {n} inputs (X_i) and {m} outputs (Y_j); both must be at least 1")
    if network is None:
        labels, inputs = tuple(f"Y_{j}" for j in range(m)), tuple(f"X_{i}" for i in range(n))
        return ir.Network("net", (n,), (m,), labels, inputs, ir.Box.unbounded(n))
    if (network.n_inputs, network.n_outputs) != (n, m):
        raise VnnlibError(
            f"{name}: declares {n} inputs and {m} outputs, but network {network.name!r} has "
            f"{network.n_inputs} inputs and {network.n_outputs} outputs"
        )
    return network


def load_vnnlib(text: str, name: str = "<vnnlib>", *, network: ir.Network | None = None) -> ir.Spec:
    """Read a VNN-LIB violation as a Spec holding one network and one property.

    Args:
        text: the file's text.
        name: the file name, for messages; its base name less `.vnnlib` names the property
            (`_property` is added if that is the network's name).
        network: the network the file is about; its sizes must match the declarations and
            its domain is intersected with the region. None: a network `net` is made.

    Returns:
        The validated Spec. Raises VnnlibError for anything that cannot be read.
    """
    source = Source(name, text, cr_ends_lines=True)
    reader = _Reader()
    for e in _parse(source):
        reader.command(e)
    net = _network(name, reader.count("X"), reader.count("Y"), network)
    xs: list[_Cond] = []
    ys: list[_Cond] = []  # the conjuncts on the outputs, and the constant ones
    for c in (c for cond in reader.asserts for c in _conjuncts(cond)):
        kinds = _kinds(c)
        if len(kinds) > 1:
            message = (
                "cannot mix inputs (X_i) and outputs (Y_j) in one disjunction (region and requirement are separate)"
            )
            raise VnnlibError(message, c.span)
        (xs if kinds == {"X"} else ys).append(c)
    region = _region(xs, net)
    if not region.parts:
        raise VnnlibError(f"{name}: the input region is empty, so the file can never be violated")
    base = (PurePath(name).name if not name.startswith("<") else name.strip("<>")) or "vnnlib"
    prop_name = base[: -len(".vnnlib")] if base.endswith(".vnnlib") and len(base) > 7 else base
    prop_name += "_property" if prop_name == net.name else ""  # names in a Spec are unique
    prop = ir.Property(prop_name, net.name, region, _requirement(ys))
    return ir.validate(ir.Spec(networks=(net,), properties=(prop,)))


def read_vnnlib(path: str | Path, *, network: ir.Network | None = None) -> ir.Spec:
    """Read the VNN-LIB file at `path` (UTF-8) with `load_vnnlib`."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise VnnlibError(f"{path}: cannot read the file: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        lines = _LINE_BREAK.split(data[: err.start].decode())  # lines as _tokens counts them
        line, col = len(lines), len(lines[-1]) + 1
        span = Span(Source(str(path), data.decode(errors="replace"), cr_ends_lines=True), line, col, line, col + 1)
        raise VnnlibError(f"invalid UTF-8 byte 0x{data[err.start]:02x}", span) from None
    return load_vnnlib(text, str(path), network=network)


# ---------------------------------------------------------------- export


def _num(value: float) -> str:
    return repr(float(value))


def _bound(value: float, is_upper: bool, strict: bool) -> str:
    """A decimal for a one-variable bound that reads back (exactly, `_exact_number`) as the
    same double bound: `repr` when it is exact, else for a non-strict bound the shortest
    decimal that rounds inwards to `value` (in [value, next double) for an upper bound), and
    for a strict one the double's exact decimal (a strict side stays strict only at a double)."""
    text = repr(float(value))
    if Fraction(text) == Fraction(value):
        return text
    exact = decimal.Decimal(value)
    away = math.nextafter(value, math.inf if is_upper else -math.inf)
    if not strict and math.isfinite(away):  # (at +-DBL_MAX only the exact decimal is a double)
        rounding = decimal.ROUND_CEILING if is_upper else decimal.ROUND_FLOOR
        for digits in range(1, 40):
            q = decimal.Context(prec=digits, rounding=rounding).plus(exact)
            if (Fraction(q) < Fraction(away)) if is_upper else (Fraction(q) > Fraction(away)):
                return _decimal_text(q)
    return _decimal_text(exact)


def _decimal_text(q: decimal.Decimal) -> str:
    return format(q, "f") if -30 <= q.adjusted() <= 30 else format(q, "e")


def _terms(coeffs: tuple[tuple[int, float], ...], var: str) -> str:
    terms = [f"{var}_{i}" if c == 1.0 else f"(* {_num(c)} {var}_{i})" for i, c in coeffs]
    return terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})"


def _violated(a: ir.Atom) -> str:
    """not(a), written as the comparison a negates (as VNN-LIB files do)."""
    op = ("<=" if a.strict else "<") if isinstance(a, ir.Order) else (">=" if a.strict else ">")
    if isinstance(a, ir.Order):  # not(y[hi] > y[lo]) is y[hi] <= y[lo]
        return f"({op} Y_{a.hi} Y_{a.lo})"
    if len(a.coeffs) == 1 and a.coeffs[0][1] == -1.0:  # not(-y[i] < b) is y[i] <= -b
        return f"({'<=' if a.strict else '<'} Y_{a.coeffs[0][0]} {_bound(0.0 - a.bound, True, not a.strict)})"
    if len(a.coeffs) == 1:  # not(y[i] < b) is y[i] >= b
        return f"({op} Y_{a.coeffs[0][0]} {_bound(a.bound, False, not a.strict)})"
    return f"({op} {_terms(a.coeffs, 'Y')} {_num(a.bound)})"


def _part_conditions(part: ir.RegionPart) -> list[str]:
    b, out = part.box, []
    for i in range(len(b.lower)):
        if b.lower[i] != -float("inf"):
            out.append(f"({'>' if b.lower_strict[i] else '>='} X_{i} {_bound(b.lower[i], False, b.lower_strict[i])})")
        if b.upper[i] != float("inf"):
            out.append(f"({'<' if b.upper_strict[i] else '<='} X_{i} {_bound(b.upper[i], True, b.upper_strict[i])})")
    return out + [f"({'<' if h.strict else '<='} {_terms(h.coeffs, 'X')} {_num(h.bound)})" for h in part.halfspaces]


def _assert_or(items: list[str]) -> str:
    return "(assert (or\n" + "".join(f"    {x}\n" for x in items) + "))"


def dump_vnnlib(prop: ir.Property, net: ir.Network) -> str:
    """The VNN-LIB text of the violation of `prop` on `net` (the inverse of load_vnnlib).

    Raises VnnlibError for what VNN-LIB cannot state: a robustness requirement, a condition
    on the prediction, an empty region.
    """
    parts, req = prop.region.parts, prop.requirement
    if not isinstance(req, ir.Ordering):
        message = "VNN-LIB has no robustness form; state the input box and the output condition instead"
        raise VnnlibError(f"property {prop.name}: {message}")
    if any(p.predicted is not None for p in parts):
        raise VnnlibError(f"property {prop.name}: VNN-LIB cannot state a condition on the network's prediction")
    if not parts:
        raise VnnlibError(f"property {prop.name}: the region has no parts (it is empty)")
    conds = [_part_conditions(p) for p in parts]
    if len(parts) == 1:
        region = [f"(assert {c})" for c in conds[0]]
    else:
        region = [_assert_or([f"(and {' '.join(c)})" if c else "true" for c in conds])]
    violation = []  # and over the disjuncts of (or over their atoms of not(atom))
    for conj in req.disjuncts:
        negated = [_violated(a) for a in conj]
        if len(negated) > 1:
            violation.append(_assert_or([f"(and {x})" for x in negated]))
        else:
            violation.append(f"(assert {negated[0] if negated else 'false'})")
    declare = [
        f"(declare-const {v}_{i} Real)" for v, k in (("X", net.n_inputs), ("Y", net.n_outputs)) for i in range(k)
    ]
    header = f"; property {prop.name} for {prop.target}: the asserts state a violation"
    return "\n".join([header, "", *declare, "", *region, "", *violation]) + "\n"
