"""Printer and parser agree: `parse(pretty(m)) == m` for every AST the grammar can express."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings

from spec import syntax as s
from spec.parser import parse
from spec.printer import pretty
from strategies_ast import conds, exprs, modules

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@settings(max_examples=600)
@given(modules)
def test_print_then_parse_is_identity(module: s.Module) -> None:
    text = pretty(module)
    assert parse(text, "<pretty>") == module, text


@settings(max_examples=400)
@given(exprs, conds)
def test_expressions_and_conditions_round_trip(e: s.Expr, c: s.Cond) -> None:
    module = s.Module((s.ConstDecl("c", e), s.PropertyDecl("p", s.OrderingBody(c, c))))
    text = pretty(module)
    assert parse(text, "<pretty>") == module, text


def test_empty_module_round_trips() -> None:
    assert pretty(s.Module(())) == ""
    assert parse("", "<empty>") == s.Module(())
    assert parse("  # only a comment\n", "<empty>") == s.Module(())


def test_pretty_is_idempotent_on_the_example() -> None:
    text = (EXAMPLES / "acasxu" / "acasxu.prop").read_text("utf-8")
    once = pretty(parse(text, "acasxu.prop"))
    assert pretty(parse(once, "pretty.prop")) == once
    assert parse(once, "pretty.prop") == parse(text, "acasxu.prop")
