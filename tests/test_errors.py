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
from spec.errors import ParseError, SpecError
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
