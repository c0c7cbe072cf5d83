"""The property language on unusual and hostile text: comments, long sums, deep nesting.

A `#` comment ends at "\\n" or "\\r" (as a VNN-LIB `;` comment does) and at nothing else; a
sum of many terms is one n-ary `Sum` node, so the nesting limit (`spec.parser.MAX_DEPTH`)
counts real nesting only.
"""

from __future__ import annotations

import time

import pytest

import spec
from spec import ir
from spec import syntax as s
from spec.errors import ParseError
from spec.parser import MAX_DEPTH, parse
from spec.printer import pretty

NET = "network n : real[784] -> real[10]\n  domain x[*] in [0, 1]\n"

# Line breaks of str.splitlines that are not line breaks here: a comment runs past them.
NOT_LINE_BREAKS = ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("ch", NOT_LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in NOT_LINE_BREAKS])
def test_a_comment_runs_past_characters_that_are_not_line_breaks(ch: str) -> None:
    loaded = spec.load(NET + f"# note{ch}property hidden: require y[0] > 1e9\nproperty p: require y[0] > y[1]\n")
    assert [p.name for p in loaded.properties] == ["p"]


@pytest.mark.parametrize("eol", ["\r", "\r\n", "\n"], ids=["CR", "CRLF", "LF"])
def test_a_comment_ends_at_a_carriage_return(eol: str) -> None:
    # Up to a lone CR the text is a comment; after it, code (as editors and VNN-LIB show it).
    loaded = spec.load(NET + f"# note{eol}property p: require y[0] > y[1]\n")
    assert [p.name for p in loaded.properties] == ["p"]


def _terms(n: int, var: str = "x", op: str = "+") -> str:
    return f" {op} ".join(f"{var}[{i}]" for i in range(n))


@pytest.mark.parametrize("n", [250, 784])
def test_a_sum_of_many_inputs_is_a_half_space(n: int) -> None:
    loaded = spec.load(NET + f"property p: when {_terms(n)} <= 100 require y[0] > y[1]\n", "sum.prop")
    (part,) = loaded.properties[0].region.parts
    assert part.halfspaces == (ir.HalfSpace(tuple((i, 1.0) for i in range(n)), 100.0, False),)


@pytest.mark.parametrize("n", [250, 784])
def test_a_long_sum_is_one_node_and_round_trips(n: int) -> None:
    module = parse(f"const c = {_terms(n, op='-')}\n".replace("x[", "k").replace("]", ""))
    value = module.items[0].value  # type: ignore[union-attr]
    assert isinstance(value, s.Sum) and len(value.rest) == n - 1
    assert value.first == s.Name("k0") and value.rest[-1] == ("-", s.Name(f"k{n - 1}"))
    assert parse(pretty(module)) == module


def test_a_long_sum_of_outputs_is_one_atom() -> None:
    text = "network n : real[2] -> real[784]\nproperty p: require " + _terms(784, "y") + " < 3\n"
    (conj,) = spec.load(text).properties[0].requirement.disjuncts  # type: ignore[union-attr]
    assert conj == (ir.Linear(tuple((j, 1.0) for j in range(784)), 3.0, True),)


def test_a_difference_of_10000_terms_loads() -> None:
    # once "nested too deeply": a left-to-right chain of binary nodes, 10,000 levels deep
    text = "network n : real[2] -> real[2]\nproperty p: require y[0] > " + " - ".join(["y[1]"] * 10_000) + "\n"
    (conj,) = spec.load(text).properties[0].requirement.disjuncts  # type: ignore[union-attr]
    assert conj == (ir.Linear(((0, -1.0), (1, -9998.0)), 0.0, True),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 - 2 - 3", -4.0),
        ("1 - (2 - 3)", 2.0),
        ("(1 - 2) - 3", -4.0),
        ("-1 + 2 * 3 - -4", 9.0),
        ("2 * (1 + 2) - (3 - (4 + 5))", 12.0),
        ("0.1 + 0.2 - 0.3", 0.1 + 0.2 - 0.3),  # left to right, as written
    ],
)
def test_sums_keep_their_order_and_grouping(text: str, expected: float) -> None:
    loaded = spec.load(f"const c = {text}\nnetwork n : real[1] -> real[2]\nproperty p: require y[0] > c\n")
    assert loaded.properties[0].requirement == ir.Ordering(((ir.Linear(((0, -1.0),), -expected + 0.0, True),),))


def test_a_parenthesised_sum_is_a_node_of_its_own() -> None:
    a, b, c = s.Name("a"), s.Name("b"), s.Name("c")
    assert parse("const k = a + b - c").items[0].value == s.Sum(a, (("+", b), ("-", c)))  # type: ignore[union-attr]
    assert parse("const k = (a + b) - c").items[0].value == s.Sum(s.Sum(a, (("+", b),)), (("-", c),))  # type: ignore[union-attr]
    assert parse("const k = a - (b - c)").items[0].value == s.Sum(a, (("-", s.Sum(b, (("-", c),))),))  # type: ignore[union-attr]
    for text in ("const k = (a + b) - c\n", "const k = a - (b - c)\n", "const k = -(a + b) * 2.0 + c\n"):
        assert pretty(parse(text)) == text


def test_many_parentheses_around_a_sum_are_refused_in_linear_time() -> None:
    depth = 10_000
    text = "network n : real[2] -> real[2]\nproperty p: require y[0] > " + "(" * depth + "y[1]" + " + y[1])" * depth
    start = time.perf_counter()
    with pytest.raises(ParseError, match="nested too deeply"):
        spec.load(text, "deep.prop")
    assert time.perf_counter() - start < 20  # about 1 s: one node per level, none copied


def test_real_nesting_is_still_a_located_error() -> None:
    depth = MAX_DEPTH + 10
    text = "network n : real[2] -> real[2]\nproperty p: require y[0] > " + "(y[1] - " * depth + "1" + ")" * depth
    with pytest.raises(ParseError, match="nested too deeply") as info:
        spec.load(text, "deep.prop")
    assert info.value.span is not None and info.value.span.line == 2
    assert str(info.value).startswith("deep.prop:2:")
