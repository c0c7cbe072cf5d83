"""Source spans and the one error family of certspec.

Every mistake a user can make in a `.prop` or `.vnnlib` file, or in an argument of a
public function, raises a subclass of `SpecError`. When the error has a source span its
text reads ``file:line:col: message``, then the source line and a caret under the span.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """A named text that spans point into."""

    name: str
    text: str = field(repr=False)

    def line(self, number: int) -> str:
        """Return line `number` (1-based) without its newline, or '' past the end.

        Lines end at "\n" only, as the parser counts them (str.splitlines would also split
        at form feeds, "\u2028" and others, and show the wrong line under a caret).
        """
        lines = self.text.split("\n")
        return lines[number - 1].removesuffix("\r") if 1 <= number <= len(lines) else ""


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
        return f"{self.source.name}:{self.line}:{self.column}"

    def caret(self) -> str:
        """The source line of the start, and `^~~~` under the span (clipped to that line)."""
        text = self.source.line(self.line)
        end = self.end_column if self.end_line == self.line else len(text) + 1
        width = max(1, end - self.column)
        pad = "".join("\t" if ch == "\t" else " " for ch in text[: self.column - 1])
        return f"{text}\n{pad}^{'~' * (width - 1)}"


class SpecError(Exception):
    """Raised for any user mistake certspec detects: the root of the family."""

    def __init__(self, message: str, span: Span | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span

    def __str__(self) -> str:
        if self.span is None:
            return self.message
        return f"{self.span.location()}: {self.message}\n{self.span.caret()}"


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
