"""Text to AST: the LALR parser of grammars/properties.lark and its error messages.

The AST is built while parsing (lark's inline transformer, no parse tree), which keeps
the whole front end close to the cost of a bare parse. Lark's exceptions are turned
into `ParseError` in one place (`_syntax_error`).
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from dataclasses import dataclass
from typing import Any

import lark
from lark import Lark, Token

from spec import syntax as s
from spec.errors import ParseError, Source, Span

_FRIENDLY = {
    "NAME": "a name",
    "NUMBER": "a number",
    "INT": "an integer",
    "STRING": "a string",
    "CMP": "a comparison (<, <=, >, >=)",
    "NORM": "a norm (l2, linf)",
    "ENSEMBLE_KIND": "an ensemble kind (cascade, vote, selective)",
    "$END": "the end of the file",
}


def grammar_text() -> str:
    """The grammar, read from the installed `grammars` package."""
    return importlib.resources.files("grammars").joinpath("properties.lark").read_text("utf-8")


def _start(item: Any) -> tuple[int, int]:
    if isinstance(item, Token):
        return item.line or 1, item.column or 1
    sp = item.span
    return sp.line, sp.column


def _end(item: Any) -> tuple[int, int]:
    if isinstance(item, Token):
        return item.end_line or 1, item.end_column or 1
    sp = item.span
    return sp.end_line, sp.end_column


class _Build(lark.Transformer[Token, Any]):
    """Builds AST nodes from children; purely structural (no semantic errors)."""

    source: Source

    def _span(self, children: list[Any]) -> Span:
        placed = [c for c in children if isinstance(c, Token) or getattr(c, "span", None) is not None]
        (line, col), (end_line, end_col) = _start(placed[0]), _end(placed[-1])
        return Span(self.source, line, col, end_line, end_col)

    @staticmethod
    def _kept(children: list[Any]) -> list[Any]:
        """Children without punctuation and keyword tokens (NAMEs and values stay)."""
        return [c for c in children if not isinstance(c, Token) or c.type in _VALUE_TOKENS]

    def _int(self, tok: Token) -> int:
        """An INT token's value; too many digits is a ParseError (int() refuses 4300+ digits)."""
        digits = str(tok).lstrip("0") or "0"
        if len(digits) > MAX_INT_DIGITS:
            shown = digits[:12] + "..." + digits[-4:]
            raise ParseError(f"integer {shown!r} has more than {MAX_INT_DIGITS} digits", self._span([tok]))
        return int(digits)

    # -- expressions
    def number(self, c: list[Any]) -> s.Number:
        return s.Number(float(c[0]), self._span(c))

    def name(self, c: list[Any]) -> s.Name:
        return s.Name(str(c[0]), self._span(c))

    def index(self, c: list[Any]) -> s.Index:
        return s.Index(str(c[0]), self._int(c[2]), self._span(c))

    def index_all(self, c: list[Any]) -> s.Index:
        return s.Index(str(c[0]), None, self._span(c))

    def neg(self, c: list[Any]) -> s.Neg:
        return s.Neg(c[1], self._span(c))

    def mul(self, c: list[Any]) -> s.BinOp:
        return s.BinOp(str(c[1]), c[0], c[2], self._span(c))

    def sum(self, c: list[Any]) -> s.Sum:
        """product (op product)+, flat. A parenthesised sum stays a node of its own, in front
        too: `(a + b) + c` nests (so 10,000 such parentheses are refused as too deep, in
        linear time, where joining them into one sum would copy it at each level)."""
        return s.Sum(c[0], tuple((str(c[i]), c[i + 1]) for i in range(1, len(c), 2)), self._span(c))

    def group(self, c: list[Any]) -> Any:
        return c[1]

    def vector(self, c: list[Any]) -> s.Vector:
        return s.Vector(tuple(self._kept(c)), self._span(c))

    # -- conditions
    def compare(self, c: list[Any]) -> s.Compare:
        return s.Compare(str(c[1]), c[0], c[2], self._span(c))

    def closed(self, c: list[Any]) -> Token:
        return Token("BRACKET", "closed", *_pos(c[0]))

    def open(self, c: list[Any]) -> Token:
        return Token("BRACKET", "open", *_pos(c[0]))

    def interval(self, c: list[Any]) -> s.Interval:
        subject, _in, lo_br, lower, _comma, upper, hi_br = c
        return s.Interval(subject, lower, upper, lo_br == "open", hi_br == "open", self._span(c))

    def label_set(self, c: list[Any]) -> s.Vector:
        return s.Vector(tuple(self._kept(c)), self._span(c))

    def predicted(self, c: list[Any]) -> s.Predicted:
        return s.Predicted(c[2].items, self._span(c))

    def _rank(self, c: list[Any]) -> s.Rank:
        others = c[2].items if isinstance(c[2], s.Vector) else (c[2],)
        return s.Rank(str(c[1]), c[0], others, self._span(c))

    above = below = _rank

    def _position(self, c: list[Any]) -> s.Position:
        return s.Position(str(c[-1]), len(c) == 4, c[0], self._span(c))

    is_first = is_last = is_not_first = is_not_last = _position

    def or_(self, c: list[Any]) -> s.Or:
        return s.Or(c[0], c[2], self._span(c))

    def and_(self, c: list[Any]) -> s.And:
        return s.And(c[0], c[2], self._span(c))

    def not_(self, c: list[Any]) -> s.Not:
        return s.Not(c[1], self._span(c))

    # -- network clauses
    def shape(self, c: list[Any]) -> _Shape:
        # ints straight from the INT tokens: a float would round 2**53 + 1 and overflow on 400 digits
        return _Shape(tuple(self._int(t) for t in self._kept(c)), self._span(c))

    def _names(self, c: list[Any]) -> tuple[s.Name, ...]:
        return tuple(s.Name(str(t), self._span([t])) for t in self._kept(c))

    def labels(self, c: list[Any]) -> s.Labels:
        return s.Labels(self._names(c), self._span(c))

    def inputs(self, c: list[Any]) -> s.Inputs:
        return s.Inputs(self._names(c), self._span(c))

    def domain(self, c: list[Any]) -> s.Domain:
        return s.Domain(tuple(self._kept(c)), self._span(c))

    def normalize_inputs(self, c: list[Any]) -> s.Normalize:
        return s.Normalize("inputs", c[3], c[5], self._span(c))

    def normalize_outputs(self, c: list[Any]) -> s.Normalize:
        return s.Normalize("outputs", c[3], c[5], self._span(c))

    def decide_argmax(self, c: list[Any]) -> s.DecideRule:
        return s.DecideRule("argmax", self._span(c))

    def decide_argmin(self, c: list[Any]) -> s.DecideRule:
        return s.DecideRule("argmin", self._span(c))

    def network(self, c: list[Any]) -> s.NetworkDecl:
        name, shape_in, shape_out, *clauses = self._kept(c)
        return s.NetworkDecl(
            str(name), shape_in.dims, shape_out.dims, tuple(clauses), self._span(c), shape_in.span, shape_out.span
        )

    # -- other declarations
    def const(self, c: list[Any]) -> s.ConstDecl:
        return s.ConstDecl(str(c[1]), c[3], self._span(c))

    def dataset(self, c: list[Any]) -> s.DatasetDecl:
        return s.DatasetDecl(str(c[1]), str(c[3]), self._span(c))

    def member(self, c: list[Any]) -> s.Member:
        return s.Member(str(c[0]), c[2] if len(c) == 3 else None, self._span(c))

    def alpha(self, c: list[Any]) -> s.Alpha:
        return s.Alpha(c[1], self._span(c))

    def ensemble(self, c: list[Any]) -> s.EnsembleDecl:
        members = tuple(m for m in c[5:] if not isinstance(m, Token))
        return s.EnsembleDecl(str(c[1]), str(c[3]), members, self._span(c))

    # -- properties
    def ordering_always(self, c: list[Any]) -> s.OrderingBody:
        return s.OrderingBody(None, c[1], self._span(c))

    def ordering(self, c: list[Any]) -> s.OrderingBody:
        return s.OrderingBody(c[1], c[3], self._span(c))

    def local(self, c: list[Any]) -> tuple[str, int | None, tuple[tuple[s.Expr, ...], ...]]:
        return ("local", None, ())

    def top_k(self, c: list[Any]) -> tuple[str, int | None, tuple[tuple[s.Expr, ...], ...]]:
        return ("top", self._int(c[1]), ())

    def within(self, c: list[Any]) -> tuple[str, int | None, tuple[tuple[s.Expr, ...], ...]]:
        return ("within", None, tuple(v.items for v in self._kept(c)))

    def at_points(self, c: list[Any]) -> tuple[tuple[s.Vector, ...], s.Name | None]:
        return (tuple(self._kept(c)), None)

    def over_dataset(self, c: list[Any]) -> tuple[tuple[s.Vector, ...], s.Name | None]:
        return ((), s.Name(str(c[1]), self._span([c[1]])))

    def robust(self, c: list[Any]) -> s.RobustBody:
        kind, k, sets = c[1]
        points, dataset = c[-1]
        return s.RobustBody(kind, c[3], str(c[5]), k, sets, points, dataset, self._span(c))

    def property(self, c: list[Any]) -> s.PropertyDecl:
        kept = self._kept(c)
        name = str(kept[0])
        desc = _unquote(str(kept[1])) if isinstance(kept[1], Token) and kept[1].type == "STRING" else None
        body = next(k for k in kept if isinstance(k, s.OrderingBody | s.RobustBody))
        last = kept[-1]
        named = isinstance(last, Token) and last.type == "NAME" and last is not kept[0]
        target = s.Name(str(last), self._span([last])) if named else None
        return s.PropertyDecl(name, body, desc, target, self._span(c))

    def start(self, c: list[Any]) -> s.Module:
        if not c:
            return s.Module((), Span(self.source, 1, 1, 1, 1))
        return s.Module(tuple(c), self._span(c))


@dataclass(frozen=True)
class _Shape:
    """`real[...]` while the network is built: its dimensions and its span."""

    dims: tuple[int, ...]
    span: Span


MAX_INT_DIGITS = 100
MAX_DEPTH = 200  # levels of the AST, the module being level 0

_VALUE_TOKENS = frozenset({"NAME", "STRING", "INT", "NUMBER", "BRACKET"})


def _pos(tok: Token) -> tuple[int | None, int | None, int | None, int | None, int | None]:
    return tok.start_pos, tok.line, tok.column, tok.end_line, tok.end_column


def _unquote(text: str) -> str:
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        if body[i] == "\\":
            i += 1
        out.append(body[i])
        i += 1
    return "".join(out)


def quote(text: str) -> str:
    """The STRING literal whose `_unquote` is `text` (text has no newline)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Parser:
    def __init__(self) -> None:
        self.builder = _Build()
        self.lark = Lark(
            grammar_text(),
            parser="lalr",
            lexer="contextual",
            transformer=self.builder,
            keep_all_tokens=True,
            maybe_placeholders=False,
        )
        self.lock = threading.Lock()

    def describe(self, terminal: str) -> str:
        if terminal in _FRIENDLY:
            return _FRIENDLY[terminal]
        try:
            pattern = self.lark.get_terminal(terminal).pattern
        except KeyError:
            return terminal
        return repr(pattern.value) if pattern.type == "str" else terminal

    def parse(self, source: Source) -> s.Module:
        with self.lock:
            self.builder.source = source
            try:
                result: s.Module = self.lark.parse(source.text)  # type: ignore[assignment]  # the builder's start()
            except lark.exceptions.UnexpectedInput as err:
                raise self._syntax_error(err, source) from None
        _check_depth(result)
        return result

    def _syntax_error(self, err: lark.exceptions.UnexpectedInput, source: Source) -> ParseError:
        expected = sorted({self.describe(t) for t in getattr(err, "expected", None) or getattr(err, "allowed", None) or ()})
        listed = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
        tail = f"; expected {listed}" if expected else ""
        if isinstance(err, lark.exceptions.UnexpectedToken):
            tok = err.token
            if tok.type == "$END":
                line, col = _end_of_text(source.text)
                return ParseError(f"unexpected end of file{tail}", Span(source, line, col, line, col))
            span = Span(source, tok.line or 1, tok.column or 1, tok.end_line or 1, tok.end_column or 1)
            return ParseError(f"unexpected {str(tok)!r}{tail}", span)
        if isinstance(err, lark.exceptions.UnexpectedCharacters):
            span = Span(source, err.line, err.column, err.line, err.column + 1)
            if err.char == '"' and "STRING" in (err.allowed or ()):
                return ParseError('unterminated string: the closing " must be on the same line', span)
            return ParseError(f"unexpected character {err.char!r}{tail}", span)
        line, col = _end_of_text(source.text)
        return ParseError(f"unexpected end of file{tail}", Span(source, line, col, line, col))


def _check_depth(module: s.Module) -> None:
    """Refuse an AST deeper than MAX_DEPTH levels (walked without recursion).

    The LALR parser itself has no recursion limit, but the passes after it (lowering,
    printing, equality of nodes) recurse once or twice per level: without this check a
    deep text would end in a RecursionError instead of a SpecError.
    """
    stack: list[tuple[Any, int]] = [(module, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, tuple):
            stack.extend((n, depth) for n in node)
        elif hasattr(node, "__dataclass_fields__"):
            if depth > MAX_DEPTH:
                raise ParseError(
                    f"this is nested too deeply: more than {MAX_DEPTH} levels of operators, "
                    "`not`s or parenthesised sub-expressions",
                    node.span,
                )
            stack.extend((v, depth + 1) for v in vars(node).values() if not isinstance(v, Span))


def _end_of_text(text: str) -> tuple[int, int]:
    """Line and column just after the last non-blank character (1, 1 for a blank file)."""
    stripped = text.rstrip()
    lines = stripped.split("\n")
    return len(lines), len(lines[-1]) + 1


@functools.lru_cache(maxsize=1)
def _parser() -> _Parser:
    return _Parser()


@functools.lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """The reserved words of the language: no declaration may use one as its name."""
    words: set[str] = set()
    for term in _parser().lark.terminals:
        pattern = term.pattern
        if pattern.type == "str" and pattern.value.isidentifier():
            words.add(pattern.value)
    return frozenset(words | {"cascade", "vote", "selective", "l2", "linf"})


def decode(data: bytes, name: str) -> Source:
    """UTF-8 bytes to a Source; a bad byte is a ParseError at its line and column."""
    try:
        return Source(name, data.decode("utf-8"))
    except UnicodeDecodeError as err:
        head = data[: err.start].decode("utf-8", errors="replace")
        line = head.count("\n") + 1
        col = len(head) - (head.rfind("\n") + 1) + 1
        src = Source(name, data.decode("utf-8", errors="replace"))
        raise ParseError(f"invalid UTF-8 byte {data[err.start]:#04x}", Span(src, line, col, line, col + 1)) from None


def parse(text: str, name: str = "<string>") -> s.Module:
    """Parse property-language text into an AST; raises ParseError."""
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        col = text.index("\x00") - (text.rfind("\n", 0, text.index("\x00")) + 1) + 1
        raise ParseError("NUL character in the file", Span(Source(name, text), line, col, line, col + 1))
    return _parser().parse(Source(name, text))
