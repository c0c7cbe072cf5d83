"""Error messages, golden: every bad snippet in golden/errors/ renders exactly as stored.

Each case is `golden/errors/<case>.prop` (read as bytes, through `spec.parser.decode`, then
`spec.load(text, "<case>.prop")`) and `<case>.txt`, the exact `str(err)` of the SpecError it
raises: `file:line:col: message`, the source line and a caret under the offending span.
`pytest --update-golden` rewrites the .txt files; review the diff before committing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import spec
from spec.errors import ParseError, Source, Span, SpecError
from spec.parser import decode

GOLDEN = Path(__file__).resolve().parent / "golden" / "errors"
CASES = sorted(p.stem for p in GOLDEN.glob("*.prop"))


def _error(case: str) -> SpecError:
    name = f"{case}.prop"
    data = (GOLDEN / name).read_bytes()
    with pytest.raises(SpecError) as info:
        spec.load(decode(data, name).text, name)
    return info.value


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 35


@pytest.mark.parametrize("case", CASES)
def test_error_message_matches_golden(case: str, update_golden: bool) -> None:
    err = _error(case)
    rendered = str(err) + "\n"
    expected = GOLDEN / f"{case}.txt"
    if update_golden:
        expected.write_text(rendered, "utf-8")
        return
    assert expected.exists(), f"no golden file {expected.name}: run pytest --update-golden and review it"
    assert rendered == expected.read_text("utf-8")


@pytest.mark.parametrize("case", CASES)
def test_error_is_located(case: str) -> None:
    err = _error(case)
    assert err.span is not None, "every front-end error points into the file"
    assert str(err).startswith(f"{case}.prop:{err.span.line}:{err.span.column}: ")
    assert str(err).splitlines()[-1].lstrip().startswith("^")


def test_syntax_cases_are_parse_errors() -> None:
    for case in CASES:
        if case.startswith("syntax_") or case == "invalid_utf8":
            assert isinstance(_error(case), ParseError), case


# ---------------------------------------------------------------- escape sequences from the file


def test_control_characters_in_the_line_are_escaped_and_the_caret_stays_under_the_span() -> None:
    src = Source("f.prop", "a\x1b[2J\tb \u202ec = \x07\x9b!\nnext")
    err = ParseError("bad", Span(src, 1, 14, 1, 16))  # `\x07\x9b`
    shown = "a\\x1b[2J\tb \\u202ec = \\x07\\x9b!"
    assert str(err) == "f.prop:1:14: bad\n" + shown + "\n" + " " * 8 + "\t" + " " * 12 + "^" + "~" * 7
    assert "\x1b" not in str(err) and "\u202e" not in str(err)


def test_the_message_and_the_file_name_are_escaped() -> None:
    err = ParseError("unexpected 'x\x1b]0;title\x07'", Span(Source("a\x1b[31m.prop", "x\n"), 1, 1, 1, 2))
    assert str(err) == "a\\x1b[31m.prop:1:1: unexpected 'x\\x1b]0;title\\x07'\nx\n^"
    assert str(SpecError("no span \x1b[2J\nsecond line")) == "no span \\x1b[2J\nsecond line"


def test_a_carriage_return_ends_a_line_only_where_the_reader_says_so() -> None:
    text = "one\rtwo\r\nthree\x0cstill three\nfour"
    assert [Source("v", text, cr_ends_lines=True).line(k) for k in (1, 2, 3, 4)] == [
        "one", "two", "three\x0cstill three", "four"
    ]
    assert [Source("p", text).line(k) for k in (1, 2, 3)] == ["one\rtwo", "three\x0cstill three", "four"]
