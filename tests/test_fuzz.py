"""Crash fuzzing of the whole front end: `spec.load` (parse, check, lower) on junk.

Every input must either load or raise a `SpecError` subclass; any other exception
(KeyError, RecursionError, OverflowError, lark's own exceptions, ...) is a bug. Three
sources, 10,000 inputs in all:

- texts drawn from the grammar itself: `hypothesis.extra.lark.from_lark` (300 examples,
  each loaded after three prefixes: 900 inputs; drawing one text costs ~200 ms, so it
  cannot carry thousands) and a seeded random walk over the same compiled rules (4,100
  inputs); most of them parse and reach the semantic checks;
- seeded random byte mutations of example files (bit flips, inserted bytes and words,
  deleted and duplicated chunks, lines spliced between files), read through
  `spec.parser.decode`, so invalid UTF-8 is covered too (5,000 inputs).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

import spec
from spec.errors import ParseError, SpecError
from spec.parser import decode, grammar_text, keywords, quote

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

FROM_LARK_EXAMPLES = 300  # x 3 prefixes = 900 inputs (from_lark needs ~200 ms a text here)
RANDOM_WALKS = 4100
MUTATIONS = 5000

ENSEMBLES = """# Two image classifiers, their ensembles and robustness properties.
network small : real[1, 2, 2] -> real[3]
  labels cat, dog, fox
  domain x[*] in [0, 1]
  normalize inputs mean 0.5 range 0.25
  decide argmax

network big : real[1, 2, 2] -> real[3]
  labels cat2, dog2, fox2
  domain x[*] in [0, 1]
  normalize inputs mean [0.5, 0.5, 0.5, 0.5] range [0.25, 0.25, 0.25, 0.25]

const eps0 = 0.01
const half = eps0 * 50 - 0
dataset test = mnist_test
ensemble vote3 = vote(small: 2, big: 1.5)
ensemble casc = cascade(small, big)
ensemble sel = selective(small, big, alpha 0.9)

property r1 "local robustness at two points":
  robust eps eps0 norm linf at [0.1, 0.2, 0.3, 0.4], [half, half, half, 1]
  for small

property r2: robust top 2 eps 2 * eps0 norm l2 over test for big

property r3 "within \\"affinity\\" sets":
  robust within {cat, dog}, {fox} eps 0.05 norm linf over test
  for vote3

property o1:
  when predicted in {cat, y[1]} and x[0] in (0.2, 0.8] or x[3] >= 0.1
  require cat above {dog, fox} or dog below fox
  for small
"""

ORDERING = """network toy : real[3] -> real[4]
  labels a, b, c, d
  inputs u, v, w
  domain u in [-1, 1], v in [-1, 1], w in [0, 2]
  normalize outputs mean [0, 0, 0, 1] range 2
  decide argmin

const lim = -(0.5 + 0.25) * 2

property p1 "a half-space region":
  when u + v <= 0.5 and w > 1 or u in [lim, 0.3)
  require not (a is first) and b - c < 3 * d + 1

property p2:
  require a is not last or (b above c and c above d)

property p3 "ranked":
  when u >= 0 and v < 1
  require d is last

property p4: when -u < 0.5 require y[0] - y[1] >= 2 and a in [0, 1]
"""


def _load(text: str, name: str = "fuzz.prop") -> None:
    """Load `text`; a SpecError is a fine answer, anything else fails the test."""
    try:
        spec.load(text, name)
    except SpecError as err:
        str(err)  # rendering the message must not crash either


def _load_bytes(data: bytes, name: str = "fuzz.prop") -> None:
    try:
        source = decode(data, name)
    except ParseError as err:
        str(err)
        return
    _load(source.text, name)


# ---------------------------------------------------------------- from the grammar


def _pad(text: str) -> str:
    return f" {text} "


def _grammar_strategy(start: str = "start") -> st.SearchStrategy[str]:
    """Texts of the rule `start`; keyword, NAME, NUMBER and INT terminals padded with spaces."""
    grammar = lark.Lark(grammar_text(), parser="lalr", start="start")
    explicit: dict[str, st.SearchStrategy[str]] = {}
    for term in grammar.terminals:
        pattern = term.pattern
        if pattern.type == "str" and pattern.value.isidentifier():  # keywords: `in`, `network`, ...
            explicit[term.name] = st.just(_pad(pattern.value))
    # Cheap strategies for the regex terminals: Hypothesis' from_regex is slow on these.
    names = st.one_of(
        st.sampled_from(["x", "y", "a", "b", "c", "n", "m", "d", "p", "COC", "e", "inf", "_"]),
        st.builds(str.__add__, st.sampled_from("aAzZ_q"), st.text("abxyz_019", max_size=4)),
        st.sampled_from(sorted(keywords())),
    )
    numbers = st.one_of(
        st.sampled_from(["0", "1", "0.5", ".5", "3.", "2.5e-3", "1e999", "1e-400", "0.0", "1E+3", "007"]),
        st.integers(0, 10**6).map(str),
        st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(repr),
    )
    explicit.update(
        NAME=names.map(_pad),
        INT=st.one_of(st.integers(0, 12), st.integers(0, 10**40)).map(str).map(_pad),
        NUMBER=numbers.map(_pad),
        STRING=st.text(st.sampled_from('ab "\\\u00e9'), max_size=6).map(quote),
        ENSEMBLE_KIND=st.sampled_from(["cascade", "vote", "selective"]).map(_pad),
        NORM=st.sampled_from(["l2", "linf"]).map(_pad),
        CMP=st.sampled_from(["<", "<=", ">", ">="]).map(_pad),
        WS=st.sampled_from([" ", "\n", "\t", " \r\n "]),
        COMMENT=st.just("# a comment\n"),
    )
    terminals, rules, ignored = grammar.grammar.compile([start], ())
    used = {t.name for t in terminals} | set(ignored) | {sym.name for r in rules for sym in r.expansion}
    explicit = {name: strategy for name, strategy in explicit.items() if name in used}
    return from_lark(grammar, start=start, explicit=explicit)


# A network declaration first gives the generated properties a scope to resolve in.
PREFIXES = [
    "",
    "network n : real[2] -> real[3]\n  labels a, b, c\n  domain x[*] in [0, 1]\n",
    "network n : real[2] -> real[2]\n  inputs a, b\n  normalize inputs mean 1 range [2, 3]\n",
]


@settings(
    max_examples=FROM_LARK_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(_grammar_strategy())
def test_texts_from_the_grammar_raise_only_spec_errors(text: str) -> None:
    for prefix in PREFIXES:  # three inputs per example: generating a text costs 50x loading it
        _load(prefix + text)


# ---------------------------------------------------------------- random walks on the grammar


class _Walker:
    """Seeded random derivations of the grammar: the fast way to many grammatical texts."""

    def __init__(self) -> None:
        grammar = lark.Lark(grammar_text(), parser="lalr", start="start")
        terminals, rules, _ = grammar.grammar.compile(["start"], ())
        self.literals = {t.name: t.pattern.value for t in terminals if t.pattern.type == "str"}
        self.rules: dict[str, list[list[tuple[str, bool]]]] = {}
        for r in rules:
            self.rules.setdefault(r.origin.name, []).append([(sym.name, sym.is_term) for sym in r.expansion])
        # height[n]: the fewest levels of rules a derivation of n needs (to end deep walks)
        self.height: dict[str, int] = {}
        while len(self.height) < len(self.rules):
            for name, expansions in self.rules.items():
                options = [self._cost(e) for e in expansions]
                known = [c for c in options if c is not None]
                if known:
                    self.height[name] = min(known)

    def _cost(self, expansion: list[tuple[str, bool]]) -> int | None:
        costs = [0 if term else self.height.get(name) for name, term in expansion]
        return None if None in costs else 1 + max([0, *costs])  # type: ignore[type-var]

    def terminal(self, rng: random.Random, name: str) -> str:
        if name in self.literals:
            return self.literals[name]
        if name == "NAME":
            pool = ["x", "y", "a", "b", "c", "n", "m", "d", "p", "e", "COC", "inf", "_x1"]
            return rng.choice(pool if rng.random() < 0.9 else sorted(keywords()))
        if name == "INT":
            return str(rng.choice([0, 1, 1, 2, 2, 3, 5, 7, 10, 2**53 + 1, 10**40]))
        if name == "NUMBER":
            return rng.choice(["0", "1", "0.5", ".5", "3.", "2.5e-3", "1e999", "1e-400", "0.0", "1E+3", "0.1", "2"])
        if name == "STRING":
            return quote(rng.choice(["", "a b", 'q"uote', "back\\slash", "\u00e9t\u00e9"]))
        if name == "CMP":
            return rng.choice(["<", "<=", ">", ">="])
        if name == "NORM":
            return rng.choice(["l2", "linf"])
        if name == "ENSEMBLE_KIND":
            return rng.choice(["cascade", "vote", "selective"])
        raise AssertionError(f"no generator for terminal {name}")

    def text(self, rng: random.Random, start: str = "start", max_depth: int = 14) -> str:
        tokens: list[str] = []
        self._walk(rng, start, max_depth, tokens)
        out: list[str] = []
        for tok in tokens:
            glue = out and not (out[-1][-1].isalnum() or out[-1][-1] == "_") and rng.random() < 0.5
            out.append(tok if glue or not out else rng.choice([" ", " ", " ", "\n  "]) + tok)
        return "".join(out)

    def _walk(self, rng: random.Random, name: str, budget: int, out: list[str]) -> None:
        expansions = self.rules[name]
        if budget <= self.height[name]:  # out of depth: take the shortest way to terminals
            expansions = [e for e in expansions if self._cost(e) == self.height[name]]
        expansion = rng.choice(expansions)
        for sym, term in expansion:
            if term:
                out.append(self.terminal(rng, sym))
            else:
                self._walk(rng, sym, budget - 1, out)


@pytest.mark.parametrize("seed", range(5))
def test_random_derivations_raise_only_spec_errors(seed: int) -> None:
    rng, walker = random.Random(seed), _Walker()
    for _ in range(RANDOM_WALKS // 5):
        start = rng.choice(["start", "start", "property", "property", "network", "ensemble", "const"])
        text = rng.choice(PREFIXES) + walker.text(rng, start, rng.randint(4, 16))
        try:
            _load(text)
        except Exception as err:
            raise AssertionError(f"{type(err).__name__} on generated input {text!r}") from err


# ---------------------------------------------------------------- byte mutations

WORDS = [
    *(w.encode() for w in sorted(keywords())),
    *b"( ) [ ] { } , : = -> < <= > >= + - * # \" \\ \n".split(),
    b"x[*]", b"y[0]", b"x[99999999999999999999]", b"1e999", b"1e-400", b"0", b"-0", b"99" * 60, b"9" * 5000,
    b"1e300", b"1e-300", b"5e-324", b"1e308 *",
    *(b"\x00", b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98\x80"),  # NUL, bad and good UTF-8
    *(b"\r\n", b"\t", b"\x0c", "\u2028".encode(), "\u00e9".encode()),
]


def _corpus() -> list[bytes]:
    files = sorted(EXAMPLES.glob("**/*.prop"))
    return [ENSEMBLES.encode(), ORDERING.encode(), *(f.read_bytes() for f in files)]


_TOKEN = re.compile(rb"\s+|[A-Za-z_][A-Za-z0-9_]*|[0-9.]+(?:[eE][+-]?[0-9]+)?|<=|>=|->|.", re.DOTALL)


def _retoken(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """Replace one token by a token of some file, or swap two: keeps the syntax more often."""
    tokens = _TOKEN.findall(data)
    words = [i for i, tok in enumerate(tokens) if not tok.isspace()]
    if not words:
        return data
    i = rng.choice(words)
    if rng.random() < 0.3:
        j = rng.choice(words)
        tokens[i], tokens[j] = tokens[j], tokens[i]
    else:
        pool = [tok for tok in _TOKEN.findall(rng.choice(corpus)) if not tok.isspace()]
        tokens[i] = rng.choice(pool if rng.random() < 0.8 else WORDS)
    return b"".join(tokens)


def _mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice([1, 1, 1, 2, 3, 5])):
        op = rng.randrange(10)
        if op >= 7:  # a token-level change
            buf = bytearray(_retoken(rng, bytes(buf), corpus))
            continue
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip one bit
            i = min(pos, len(buf) - 1)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert random bytes
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 2:  # insert a word of the language (or a tricky byte sequence)
            buf[pos:pos] = b" " * rng.randint(0, 1) + rng.choice(WORDS) + b" " * rng.randint(0, 1)
        elif op == 3:  # delete a chunk
            del buf[pos : pos + rng.randint(1, 40)]
        elif op == 4:  # duplicate a chunk
            chunk = bytes(buf[pos : pos + rng.randint(1, 80)])
            where = rng.randrange(len(buf) + 1)
            buf[where:where] = chunk
        elif op == 5:  # splice a line from another file
            lines = rng.choice(corpus).split(b"\n")
            mine = bytes(buf).split(b"\n")
            mine.insert(rng.randrange(len(mine) + 1), rng.choice(lines))
            buf = bytearray(b"\n".join(mine))
        else:  # replace a chunk with a number
            end = pos + rng.randint(0, 6)
            buf[pos:end] = str(rng.choice([0, 1, 7, 9, 10**6, 2**53 + 1])).encode()
    return bytes(buf)


def test_the_fuzz_corpus_loads() -> None:
    for data in _corpus()[:3]:
        spec.load(data.decode("utf-8"), "corpus.prop")


@pytest.mark.parametrize("seed", range(5))
def test_mutated_files_raise_only_spec_errors(seed: int) -> None:
    rng = random.Random(seed)
    corpus = _corpus()
    for _ in range(MUTATIONS // 5):
        data = _mutate(rng, rng.choice(corpus), corpus)
        try:
            _load_bytes(data)
        except Exception as err:
            raise AssertionError(f"{type(err).__name__} on mutated input {data!r}") from err


# ---------------------------------------------------------------- edge cases


def test_invalid_utf8_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="invalid UTF-8 byte 0xff") as info:
        decode(b"network n : real[2] -> real[2]\nconst c = \xff\n", "bad.prop")
    assert str(info.value).startswith("bad.prop:2:11: ")


DEPTH = 10_000
NET = "network n : real[2] -> real[2]\n"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(NET + "property p: require y[0] > " + "-(" * DEPTH + "1" + ")" * DEPTH, id="negations"),
        pytest.param(NET + "property p: require y[0] > " + "(y[1] + " * DEPTH + "1" + ")" * DEPTH, id="sums"),
        pytest.param(NET + "property p: require " + "not (" * DEPTH + "y[0] > 1" + ")" * DEPTH, id="nots"),
        pytest.param(NET + "property p: require " + "(" * DEPTH + "y[0] > 1" + ")" * DEPTH + " or y[1] > 1" * DEPTH,
                     id="ors"),
        pytest.param(NET + "property p: when " + " and ".join(["x[0] > 1"] * DEPTH) + " require y[0] > 1", id="ands"),
        # a long sum or difference is one n-ary node, not deep: tests/test_parse_hostile.py
        pytest.param(NET + "property p: require y[0] > " + " * ".join(["2"] * DEPTH), id="long-product"),
    ],
)
def test_deep_nesting_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="nested too deeply"):
        spec.load(text, "deep.prop")


def test_deep_parentheses_around_a_leaf_are_harmless() -> None:
    # Parentheses leave no trace in the AST: 10,000 of them around a number nest nothing.
    text = NET + "const c = " + "(" * DEPTH + "1" + ")" * DEPTH + "\nproperty p: require y[0] > c"
    loaded = spec.load(text, "p.prop")
    assert len(loaded.properties) == 1


def test_nesting_just_below_the_limit_loads() -> None:
    depth = 150
    spec.load(NET + "property p: require " + "not (" * depth + "y[0] > 1" + ")" * depth, "ok.prop")
    spec.load(NET + "property p: require y[0] > " + " + ".join(["y[1]"] * depth), "ok.prop")


# Regressions: each of these once escaped as a non-SpecError or as an IRError with no location.
N2 = "network n : real[2] -> real[2]\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("network n : real[" + "9" * 5000 + "] -> real[2]", "has more than 100 digits"),  # ValueError
        (N2 + "property p: require y[" + "9" * 5000 + "] > 0", "has more than 100 digits"),
        (N2 + "property p: robust top " + "9" * 5000 + " eps 1 norm l2 at [0, 0]", "has more than 100 digits"),
        (N2 + "  normalize inputs mean 1e300 range 1e300\nproperty p: when 1e300 * x[0] + x[1] < 1 require y[0] > 0",
         "out of range"),  # OverflowError in canon.part_is_empty (Fraction(inf))
        (N2 + "  normalize outputs mean 1e300 range 1e300\nproperty p: require 1e300 * y[0] < 1", "out of range"),
        (N2 + "property p: require 5e-324 * y[0] < 1", "out of range"),  # IRError: bound=inf
        (N2 + "property p: when 5e-324 * x[0] > 1 require y[0] > 0", "out of range"),
        (N2 + "  normalize inputs mean 0 range 1e-300\nproperty p: robust eps 1e300 norm l2 at [0, 0]", "out of range"),
        (N2 + "  normalize inputs mean 0 range 1e300\nproperty p: robust eps 5e-324 norm l2 at [0, 0]", "out of range"),
        (N2 + "  normalize inputs mean 0 range 1e-300\nproperty p: robust eps 1 norm l2 at [1e300, 0]", "out of range"),
    ],
)
def test_overflow_is_a_located_spec_error(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as info:
        spec.load(text, "big.prop")
    assert info.value.span is not None
