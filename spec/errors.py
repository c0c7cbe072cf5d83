"""Source spans and the one error family of certspec.

Every mistake a user can make in a `.prop` or `.vnnlib` file, or in an argument of a
public function, raises a subclass of `SpecError`. When the error has a source span its
text reads ``file:line:col: message``, then the source line and a caret under the span.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """A named text that spans point into."""

    name: str
    text: str = field(repr=False)
    cr_ends_lines: bool = field(default=False, repr=False)

    def line(self, number: int) -> str:
        """Return line `number` (1-based) without its line break, or '' past the end.

        Lines end where the reader of the text counts them: at "\n" (or "\r\n") for the
        property language, whose parser counts "\n" only; also at a lone "\r" when
        `cr_ends_lines` (VNN-LIB, as SMT-LIB). Never at form feeds, "\u2028" and the other
        breaks of str.splitlines, which would show the wrong line under a caret.
        """
        lines = _LINE_BREAK.split(self.text) if self.cr_ends_lines else self.text.split("\n")
        return lines[number - 1].removesuffix("\r") if 1 <= number <= len(lines) else ""


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def printable(text: str) -> str:
    """`text` safe to print on a terminal: every character that is not printable (control
    characters such as ESC, bidirectional overrides, line separators...) but a tab is
    shown escaped, as `repr` writes it (`\\x1b`, `\\u202e`); a file cannot send the
    terminal an escape sequence through an error message."""
    if text.isprintable() or text.replace("\t", " ").isprintable():
        return text
    return "".join(ch if ch == "\t" or ch.isprintable() else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


@dataclass(frozen=True)
class Span:
    """A region of a source: 1-based line and column of its start, and of its end.

    The end is exclusive (the column just after the last character); an empty span
    (end == start) marks a point, such as the end of the input.
    """

    source: Source
    line: int
    column: int
    end_line: int
    end_column: int

    def location(self) -> str:
        return f"{printable(self.source.name)}:{self.line}:{self.column}"

    def caret(self) -> str:
        """The source line of the start, and `^~~~` under the span (clipped to that line).

        The line is shown `printable` (escape sequences escaped); the caret stays under
        the span's text as shown."""
        text = self.source.line(self.line)
        end = self.end_column if self.end_line == self.line else len(text) + 1
        width = max(1, len(printable(text[self.column - 1 : end - 1])) + max(0, end - 1 - len(text)))
        pad = "".join("\t" if ch == "\t" else " " * len(printable(ch)) for ch in text[: self.column - 1])
        return f"{printable(text)}\n{pad}^{'~' * (width - 1)}"


class SpecError(Exception):
    """Raised for any user mistake certspec detects: the root of the family."""

    def __init__(self, message: str, span: Span | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span

    def __str__(self) -> str:
        message = "\n".join(printable(line) for line in self.message.split("\n"))
        if self.span is None:
            return message
        return f"{self.span.location()}: {message}\n{self.span.caret()}"


class ParseError(SpecError):
    """Raised when the text does not follow the grammar (or is not valid UTF-8)."""


class ScopeError(SpecError):
    """Raised when a name is unknown, declared twice, or a reserved word."""


class CheckError(SpecError):
    """Raised when a well-formed file says something impossible (bad eps, k, interval...)."""


class VnnlibError(SpecError):
    """Raised when a VNN-LIB file cannot be read into the IR, or an IR cannot be written."""


class IRError(SpecError):
    """Raised when an IR object breaks one of its invariants (see `spec.ir.validate`)."""


class ModelError(SpecError):
    """Raised when a model file cannot be read, or uses a layer or operator certspec cannot bound."""


class UsageError(SpecError):
    """Raised when a public function or the CLI is given a bad argument."""


class GuardError(SpecError):
    """Raised when a property cannot be compiled into a guard (e.g. `COC < 1500`: reordering cannot enforce it)."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest candidate, or '' if none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
