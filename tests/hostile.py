"""Helpers of the hostile-input suite (tests/test_hostile.py): outcome tally, independent oracles, mutators.

Every fuzz case goes through `attempt`: the library either raises a clear error (a `SpecError`
with a one-line message, no raw control characters; from the CLI exit status 2 and the same
on stderr, no traceback), or returns an answer that a check written here, independently of
the library, confirms. Anything else (another exception, a refuted answer, a case slower
than `CASE_SECONDS`, a memory blow-up under `limited_memory`) is a finding, grouped by
signature with its shortest example, and reported all at once by `Findings.assert_none`.

The oracles read files and IR objects with their own code: exact rational arithmetic
(`fractions.Fraction`), Python float comparisons (exact between doubles), a VNN-LIB reader
of its own (comments end at `\\n` or `\\r` only), and `onnx.reference` for ONNX models.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import os
import random
import re
import sys
import threading
import time
import traceback
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from spec import ir
from spec.errors import SpecError

ROOT = Path(__file__).resolve().parents[1]
CASE_SECONDS = 10.0  # a single hostile case slower than this is a finding (it is interrupted)
MEMORY_HEADROOM = 3 << 30  # bytes of address space a case may add (RLIMIT_AS, Linux)
F32 = np.float32
FLT_MAX = float(np.finfo(np.float32).max)

# category -> Counter(tried=, errors=, checked=)
COUNTS: dict[str, Counter[str]] = defaultdict(Counter)


def counts_table() -> dict[str, dict[str, int]]:
    total: Counter[str] = Counter()
    out = {}
    for name in sorted(COUNTS):
        c = COUNTS[name]
        out[name] = {k: int(c[k]) for k in ("tried", "errors", "checked", "failed")}
        total.update(out[name])
    out["total"] = {k: int(total[k]) for k in ("tried", "errors", "checked", "failed")}
    return out


# ---------------------------------------------------------------- outcomes


class Mismatch(Exception):
    """An answer refuted by an independent check (or an error that is not clear)."""

    def __init__(self, signature: str, detail: str = "") -> None:
        super().__init__(signature)
        self.signature = signature
        self.detail = detail


@dataclass
class Finding:
    signature: str
    example: str
    detail: str
    count: int = 1


class Findings:
    """Distinct failures of one category, each with its shortest example."""

    def __init__(self, category: str) -> None:
        self.category = category
        self.items: dict[str, Finding] = {}
        self.ignore: tuple[str, ...] = ()  # signature substrings filtered out (reported as counts only)

    def absorb(self, other: Findings, prefix: str) -> None:
        """Take in the failures of a sub-category (its counts stay its own), each signature prefixed."""
        self.items.update({f"{prefix}: {k}": v for k, v in other.items.items()})

    def add(self, signature: str, example: str, detail: str = "") -> None:
        COUNTS[self.category]["failed"] += 1
        old = self.items.get(signature)
        if old is None:
            self.items[signature] = Finding(signature, example, detail)
            return
        old.count += 1
        if len(example) < len(old.example):
            old.example, old.detail = example, detail

    def report(self) -> str:
        lines = [f"{len(self.items)} distinct failure(s) in {self.category}:"]
        for f in sorted(self.items.values(), key=lambda f: -f.count):
            example = f.example if len(f.example) < 1500 else f.example[:1500] + "...<cut>"
            lines.append(f"\n--- [{f.count}x] {f.signature}\n    example: {example}")
            if f.detail:
                lines.append("    detail: " + f.detail[-1500:].replace("\n", "\n    "))
        return "\n".join(lines)

    def assert_none(self) -> None:
        if self.items:
            raise AssertionError(self.report())


def _project_frame(filename: str) -> bool:
    path = os.path.abspath(filename)
    return any(path.startswith(str(ROOT / d) + os.sep) for d in ("spec", "checkers", "grammars"))


def exc_signature(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    mine = [f for f in frames if _project_frame(f.filename)]
    f = mine[-1] if mine else (frames[-1] if frames else None)
    where = f"{os.path.relpath(f.filename, ROOT)}:{f.lineno} in {f.name}" if f else "?"
    message = re.sub(r"\d+", "N", str(err).split("\n")[0])[:90]
    return f"{type(err).__name__} at {where}: {message}"


def _short_tb(err: BaseException) -> str:
    return "".join(traceback.format_exception(type(err), err, err.__traceback__, limit=-6))[-1500:]


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u202a-\u202e\u2066-\u2069]")


def error_problem(err: SpecError) -> str | None:
    """Why a SpecError is not a clear error, or None."""
    try:
        text = str(err)
    except Exception as e:  # the message itself must render
        return f"str() of {type(err).__name__} raises {type(e).__name__}"
    if not err.message.strip():
        return "empty message"
    if "\n" in err.message:
        return f"{type(err).__name__} message spans several lines"
    found = _CONTROL.search(text)
    if found:
        return f"raw control character {found.group()!r} in the error text"
    return None


@contextlib.contextmanager
def limited_memory(headroom: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Cap the address space at the current size plus `headroom` (Linux), restored afterwards."""
    try:
        import resource

        with open("/proc/self/status") as status:
            size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, StopIteration):
        yield
        return
    limit = size + headroom if hard == resource.RLIM_INFINITY else min(size + headroom, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class CaseTimeout(BaseException):  # a BaseException: no `except Exception` in the library eats it
    """Raised by the alarm when a case runs past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the case (SIGALRM, main thread only) after `seconds`."""
    import signal

    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"over {seconds:g} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


ERROR = "error"  # what a check returns for an outcome that is a clear error (a CLI exit status 2)


def attempt(findings: Findings, example: str, fn: Callable[[], Any], check: Callable[[Any], Any],
            seconds: float = CASE_SECONDS, tag: str = "") -> Any:
    """Run one hostile case: a clear SpecError, or a result `check` confirms (check returns ERROR for
    a clear error it recognised itself, e.g. a CLI exit status 2)."""
    counts = COUNTS[findings.category]
    counts["tried"] += 1
    start = time.monotonic()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with limited_memory(), time_limit(seconds):
                result = fn()
    except CaseTimeout:
        findings.add(f"slow: a case ran past {seconds:g} s (interrupted)", example)
        return None
    except SpecError as err:
        problem = error_problem(err)
        if problem:
            findings.add(f"unclear error: {problem}", example, str(err)[:600])
        else:
            counts["errors"] += 1
            ERRORS[(findings.category, type(err).__name__, re.sub(r"\d+", "N", err.message)[:70])] += 1
        _slow(findings, example, start, seconds)
        return None
    except Exception as err:  # MemoryError and RecursionError included: each is a finding
        findings.add(exc_signature(err) + (f" [{tag}]" if tag else ""), example, _short_tb(err))
        return None
    _slow(findings, example, start, seconds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with time_limit(seconds * 3):
                outcome = check(result)
    except CaseTimeout:
        findings.add(f"slow: checking a case ran past {3 * seconds:g} s (interrupted)", example)
        return None
    except Mismatch as m:
        findings.add(m.signature + (f" [{tag}]" if tag else ""), example, m.detail)
        return None
    except Exception as err:  # the library failed inside the check (e.g. fmt output does not load)
        findings.add("in the check: " + exc_signature(err), example, _short_tb(err))
        return None
    counts["errors" if outcome == ERROR else "checked"] += 1
    return result


ERRORS: Counter[tuple[str, str, str]] = Counter()  # (category, error type, message): what the clear errors were
SLOWEST: list[tuple[float, str, str]] = []  # (seconds, category, example): the slowest cases, for tuning


def _slow(findings: Findings, example: str, start: float, seconds: float) -> None:
    elapsed = time.monotonic() - start
    SLOWEST.append((elapsed, findings.category, example[:160]))
    SLOWEST.sort(reverse=True)
    del SLOWEST[20:]
    if elapsed > seconds:
        findings.add(f"slow: a case took more than {seconds:g} s", example, f"{elapsed:.1f} s")


# ---------------------------------------------------------------- the command line, in process


def cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """`certspec ARGV` in this process: (exit status, stdout, stderr); exceptions propagate."""
    from checkers.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code: Any = main(list(argv))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 2
    return int(code), out.getvalue(), err.getvalue()


_LOCATED = re.compile(r"^.+:\d+:\d+: \S")


def stderr_problem(err: str) -> str | None:
    """Why the stderr of an exit status 2 is not one clear error, or None."""
    if "Traceback" in err:
        return "a traceback on stderr"
    lines = err.rstrip("\n").split("\n")
    if not lines or not lines[0].strip():
        return "exit status 2 with nothing on stderr"
    found = _CONTROL.search(err)
    if found:
        return f"raw control character {found.group()!r} on stderr"
    first = lines[0]
    if first.startswith("certspec: error: "):
        return None if len(lines) == 1 else f"a {len(lines)}-line message on stderr"
    if first.startswith("usage: ") and lines[-1].startswith("certspec") and "error:" in lines[-1]:
        return None  # argparse
    if _LOCATED.match(first):
        caret = lines[2].lstrip(" \t") if len(lines) == 3 else ""
        return None if caret.startswith("^") and not caret.strip("^~") else f"a located error of {len(lines)} lines"
    return "stderr does not start with `certspec: error:` or `file:line:col:`"


def cli_check(allowed: Sequence[int], answer: Callable[[int, str, str], None]) -> Callable[[Any], Any]:
    """A check for `cli(...)` results: exit 2 with a clear stderr, or an allowed status whose output
    `answer` confirms."""

    def check(result: tuple[int, str, str]) -> Any:
        code, out, err = result
        if code == 2:
            problem = stderr_problem(err)
            if problem:
                raise Mismatch(f"CLI exit 2 with an unclear error: {problem}", err[-800:])
            ERRORS[("CLI", "exit 2", re.sub(r"\d+", "N", err.split("\n")[0])[-70:])] += 1
            return ERROR
        if code not in allowed:
            raise Mismatch(f"CLI exit status {code} (expected 2 or one of {list(allowed)})", (out + err)[-800:])
        if "Traceback" in err:
            raise Mismatch("a traceback on stderr with a normal exit status", err[-800:])
        answer(code, out, err)
        return None

    return check


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity (not JSON)."""

    def bad(name: str) -> Any:
        raise Mismatch(f"JSON output holds {name}", text[:300])

    return json.loads(text, parse_constant=bad)


# ---------------------------------------------------------------- an independent reading of the IR


def _q(v: float) -> Fraction:
    return Fraction(v)


def lin_sign(terms: Sequence[tuple[int, float | Fraction]], bound: float | Fraction, v: Sequence[float]) -> int | None:
    """sign(sum c v[i] - bound), exactly; None when a value involved is not finite."""
    values = [v[i] for i, c in terms if c != 0]
    if not all(math.isfinite(x) for x in values) or not math.isfinite(float(bound)):
        return None
    total = sum((Fraction(c) * Fraction(v[i]) for i, c in terms), Fraction(0)) - Fraction(bound)
    return (total > 0) - (total < 0)


def ir_in_part(part: ir.RegionPart, x: Sequence[float], predicted: int | None = None) -> bool:
    """As checkers.semantics documents it: a point with a non-finite coordinate lies in no region."""
    if not all(math.isfinite(v) for v in x):
        return False
    box = part.box
    for v, lo, hi, ls, us in zip(x, box.lower, box.upper, box.lower_strict, box.upper_strict, strict=True):
        if math.isnan(v) or v < lo or v > hi or (ls and v == lo) or (us and v == hi):
            return False
    for h in part.halfspaces:
        s = lin_sign(h.coeffs, h.bound, x)
        if s is None or s > 0 or (h.strict and s == 0):
            return False
    return part.predicted is None or (predicted is not None and predicted in part.predicted)


def ir_in_region(region: ir.Region, x: Sequence[float], predicted: int | None = None) -> bool:
    return any(ir_in_part(p, x, predicted) for p in region.parts)


def ir_atom(atom: ir.Atom, y: Sequence[float]) -> bool:
    if isinstance(atom, ir.Order):
        a, b = y[atom.hi], y[atom.lo]
        return a > b if atom.strict else a >= b
    s = lin_sign(atom.coeffs, atom.bound, y)
    if s is None:  # a non-finite score: the float comparison of the sum (NaN is never a witness of anything)
        total = sum(c * y[i] for i, c in atom.coeffs)
        return bool(total < atom.bound if atom.strict else total <= atom.bound)
    return s < 0 or (s == 0 and not atom.strict)


def ir_holds(req: ir.Ordering, y: Sequence[float]) -> bool:
    return any(all(ir_atom(a, y) for a in conj) for conj in req.disjuncts)


def decision(y: Sequence[float], argmin: bool = False) -> int:
    """certspec's documented decision rule: argmax (argmin), lowest index on ties, a NaN counts as best."""
    for i, v in enumerate(y):
        if math.isnan(v):
            return i
    best = min(y) if argmin else max(y)
    return list(y).index(best)


def ir_numbers(obj: Any) -> list[float]:
    """Every finite float inside an IR object (for sample points near its faces)."""
    out: list[float] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, float):
            if math.isfinite(o):
                out.append(o)
        elif isinstance(o, tuple | list):
            stack.extend(o)
        elif hasattr(o, "__dataclass_fields__"):
            stack.extend(getattr(o, name) for name in o.__dataclass_fields__)
    return out


def nan_inside(obj: Any) -> bool:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, float) and math.isnan(o):
            return True
        if isinstance(o, tuple | list):
            stack.extend(o)
        elif hasattr(o, "__dataclass_fields__"):
            stack.extend(getattr(o, name) for name in o.__dataclass_fields__)
    return False


# ---------------------------------------------------------------- sample values near faces


def neighbours(values: Sequence[float | Fraction], float32: bool = True, float64: bool = True) -> list[float]:
    """Each value, its nearest float32 and float64, and one step either side in both precisions."""
    out: set[float] = {0.0, 1.0, -1.0}
    for v in values:
        d = float(v) if abs(v) < 1e308 else (1e308 if v > 0 else -1e308)
        if float64:
            out.update((d, math.nextafter(d, math.inf), math.nextafter(d, -math.inf)))
        if float32 and abs(d) <= FLT_MAX:
            with np.errstate(over="ignore"):
                f = F32(d)
                out.update(float(u) for u in (f, np.nextafter(f, F32(np.inf)), np.nextafter(f, F32(-np.inf))))
    return sorted(x for x in out if math.isfinite(x))


def sample_points(rng: random.Random, candidates: list[list[float]], count: int) -> list[list[float]]:
    """Points whose coordinates are drawn from per-coordinate candidates (mostly) or at random."""
    points = []
    for _ in range(count):
        point = []
        for cands in candidates:
            r = rng.random()
            if r < 0.75 and cands:
                point.append(rng.choice(cands))
            elif r < 0.9:
                point.append(float(F32(rng.uniform(-2, 2))))
            else:
                v = rng.choice(cands or [1.0]) * rng.uniform(0.5, 1.5)
                point.append(float(F32(v)) if abs(v) <= FLT_MAX else v)
        points.append(point)
    return points


# ---------------------------------------------------------------- hostile values

EXTREME_NUMBERS = [
    "1e308", "1.7976931348623157e308", "1.7976931348623159e308", "1e309", "5e-324", "4.9e-324", "2.4e-324",
    "2.5e-324", "1e-400", "1e-310", "2.2250738585072014e-308", "0", "0.0", "0e0", "000", "0.", ".0",
    "3.4028234663852886e38", "3.4028235e38", "3.4028236e38", "1.401298464324817e-45", "1e-45", "7e-46",
    "1.1754943508222875e-38", "16777217", "9007199254740993", "18446744073709551617", "1" + "0" * 60,
    "9" * 99, "9" * 101, "0." + "0" * 200 + "1", "1" + "0" * 400, "0.1", "0.30000000000000004",
    "0.100000001490116119384765625", "0.1000000014901161193847656250001", "0.1000000014901161193847656249999",
    "0.387254923582077", "2.5", "1e-7", "123456789.123456789", "1E+3", "1e+0", "1e-0",
]
NOT_NUMBERS = ["nan", "NaN", "inf", "-inf", "Infinity", "1e", "1e+", ".", "..", "1..2", "0x10", "1_000", "1,5",
               "+1", "1e1e1", "\u0661", "1\u00a0000", "2\u20443"]
CONTROL_STRINGS = ["\x00", "\x1b[2J", "\x1b]0;pwned\x07", "\x1b[31m", "\x0c", "\x0b", "\r", "\x7f", "\x08",
                   "\u2028", "\u2029", "\x85", "\u202e", "\ufeff", "\x1c", "\x1d", "\x1e", "\t", "\u00e9", "\U0001f600"]
LINE_BREAKS = ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


# ---------------------------------------------------------------- an independent VNN-LIB reader


class Refused(Exception):
    """The oracle's own reader does not accept the text (outside VNN-LIB as documented)."""


_VNUM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_VVAR = re.compile(r"([XY])_(0|[1-9][0-9]*)")
_VIGNORED = {"set-logic", "set-info", "set-option", "check-sat", "get-model", "exit"}


def vnn_tokens(text: str) -> list[str]:
    """Tokens as SMT-LIB reads them: a `;` comment runs to the next \\n or \\r, nothing else ends it."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == ";":
            while i < n and text[i] not in "\n\r":
                i += 1
        elif ch in "()":
            out.append(ch)
            i += 1
        elif ch.isspace():
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "();":
                j += 1
            out.append(text[i:j])
            i = j
    return out


def _sexprs(tokens: list[str]) -> list[Any]:
    stack: list[list[Any]] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise Refused("unbalanced )")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise Refused("unbalanced (")
    return stack[0]


Lin = tuple[dict[tuple[str, int], Fraction], Fraction]


class VnnOracle:
    """The meaning of a VNN-LIB file: `violated(x, y)` is true iff every assert holds at (x, y).

    Numbers are exact. As documented by spec.vnnlib, a comparison of several variables keeps
    the nearest doubles of its coefficients and bound; one-variable comparisons stay exact."""

    def __init__(self, text: str) -> None:
        self.declared: set[tuple[str, int]] = set()
        self.asserts: list[Any] = []
        for cmd in _sexprs(vnn_tokens(text)):
            if not isinstance(cmd, list) or not cmd or not isinstance(cmd[0], str):
                raise Refused("not a command")
            head = cmd[0]
            if head in _VIGNORED:
                continue
            if head == "declare-const":
                if len(cmd) != 3 or not isinstance(cmd[1], str) or cmd[2] != "Real":
                    raise Refused("bad declare-const")
                m = _VVAR.fullmatch(cmd[1])
                if m is None:
                    raise Refused("bad variable name")
                var = (m.group(1), int(m.group(2)))
                if var in self.declared:
                    raise Refused("declared twice")
                self.declared.add(var)
            elif head == "assert":
                if len(cmd) != 2:
                    raise Refused("assert arity")
                self.asserts.append(self._cond(cmd[1]))
            else:
                raise Refused(f"unknown command {head}")
        for kind in "XY":
            idx = sorted(i for k, i in self.declared if k == kind)
            if idx != list(range(len(idx))) or not idx:
                raise Refused("variables not 0..n-1")
        self.n = sum(1 for k, _ in self.declared if k == "X")
        self.m = sum(1 for k, _ in self.declared if k == "Y")

    def _cond(self, e: Any) -> Any:
        if e in ("true", "false"):
            return ("const", e == "true")
        if not isinstance(e, list) or not e or not isinstance(e[0], str):
            raise Refused("not a condition")
        head, args = e[0], e[1:]
        if head in ("and", "or"):
            return (head, [self._cond(a) for a in args])
        if head == "not":
            if len(args) != 1:
                raise Refused("not arity")
            return ("not", self._cond(args[0]))
        if head in ("<=", "<", ">=", ">", "="):
            if len(args) < 2:
                raise Refused("comparison arity")
            terms = [self._term(a) for a in args]
            pairs = []
            for a, b in itertools.pairwise(terms):
                ops = ["<=", ">="] if head == "=" else [head]
                pairs += [self._cmp(op, a, b) for op in ops]
            return ("and", pairs)
        raise Refused(f"unknown operator {head}")

    @staticmethod
    def _cmp(op: str, a: Lin, b: Lin) -> Any:
        first, second = (a, b) if op in ("<=", "<") else (b, a)
        coeffs = dict(first[0])
        for v, q in second[0].items():
            coeffs[v] = coeffs.get(v, Fraction(0)) - q
        coeffs = {v: q for v, q in coeffs.items() if q != 0}
        bound = second[1] - first[1]
        if len(coeffs) > 1:  # documented: a several-term comparison keeps the nearest doubles
            try:
                coeffs = {v: Fraction(float(q)) for v, q in coeffs.items()}
                bound = Fraction(float(bound))
            except OverflowError:
                raise Refused("a coefficient beyond the doubles") from None
        return ("cmp", coeffs, bound, op in ("<", ">"))

    def _term(self, e: Any) -> Lin:
        if isinstance(e, str):
            if _VNUM.fullmatch(e):
                if len(e) > 1000:
                    raise Refused("long literal")
                return {}, Fraction(e)
            m = _VVAR.fullmatch(e)
            if m is None or (m.group(1), int(m.group(2))) not in self.declared:
                raise Refused(f"unknown name {e}")
            return {(m.group(1), int(m.group(2))): Fraction(1)}, Fraction(0)
        if not e or e[0] not in ("+", "-", "*", "/") or len(e) < 2:
            raise Refused("not a term")
        op, args = e[0], [self._term(a) for a in e[1:]]
        if op == "-" and len(args) == 1:
            return {v: -q for v, q in args[0][0].items()}, -args[0][1]
        out = args[0]
        for t in args[1:]:
            if op in ("+", "-"):
                s = 1 if op == "+" else -1
                coeffs = dict(out[0])
                for v, q in t[0].items():
                    coeffs[v] = coeffs.get(v, Fraction(0)) + s * q
                out = (coeffs, out[1] + s * t[1])
            elif op == "*":
                if out[0] and t[0]:
                    raise Refused("not linear")
                k, lin = (out[1], t) if not out[0] else (t[1], out)
                out = ({v: q * k for v, q in lin[0].items()}, lin[1] * k)
            else:
                if t[0] or t[1] == 0:
                    raise Refused("bad division")
                out = ({v: q / t[1] for v, q in out[0].items()}, out[1] / t[1])
        return out

    def _eval(self, c: Any, x: Sequence[float], y: Sequence[float]) -> bool:
        kind = c[0]
        if kind == "const":
            return bool(c[1])
        if kind == "and":
            return all(self._eval(a, x, y) for a in c[1])
        if kind == "or":
            return any(self._eval(a, x, y) for a in c[1])
        if kind == "not":
            return not self._eval(c[1], x, y)
        _, coeffs, bound, strict = c
        total = Fraction(0)
        for (k, i), q in coeffs.items():
            total += q * Fraction((x if k == "X" else y)[i])
        return total < bound if strict else total <= bound

    def violated(self, x: Sequence[float], y: Sequence[float]) -> bool:
        return all(self._eval(a, x, y) for a in self.asserts)

    def x_holds(self, x: Sequence[float]) -> bool:
        """Do the asserts that mention only inputs hold at x (the region, as written)?"""
        return all(self._eval(a, x, [0.0] * self.m) for a in self.asserts if self._kinds(a) <= {"X"})

    def _kinds(self, c: Any) -> set[str]:
        if c[0] == "const":
            return set()
        if c[0] in ("and", "or"):
            return set().union(*(self._kinds(a) for a in c[1]))
        if c[0] == "not":
            return self._kinds(c[1])
        return {k for k, _ in c[1]}

    def comparisons(self) -> Iterator[tuple[dict[tuple[str, int], Fraction], Fraction]]:
        """Every comparison in the asserts: (coefficient per variable, bound)."""
        stack = list(self.asserts)
        while stack:
            c = stack.pop()
            if c[0] in ("and", "or"):
                stack.extend(c[1])
            elif c[0] == "not":
                stack.append(c[1])
            elif c[0] == "cmp":
                yield c[1], c[2]

    def numbers(self) -> list[Fraction]:
        out: list[Fraction] = []
        for coeffs, bound in self.comparisons():
            out.append(bound)
            out.extend(bound / q for q in coeffs.values() if q)
        return out


# ---------------------------------------------------------------- .prop texts with a known meaning

ORDINARY = ["0", "1", "2", "0.5", ".25", "3.", "0.1", "0.2", "0.3", "1.5", "0.75", "1e-3", "2.5E-1", "0.125", "1.25"]
HOSTILE = [
    "0.100000001490116119384765625", "0.1000000014901161193847656250001", "0.1000000014901161193847656249999",
    "0.387254923582077", "0.30000000000000004", "1e-300", "1e-310", "5e-324", "1e-45", "1.401298464324817e-45",
    "1e308", "3.4028234663852886e38", "3.4028235e38", "16777217", "9007199254740993", "0.0", "1e-7",
    "0.99999997", "0.9999999701976776", "1.0000001", "0.50000000000000011102230246251565",
]


@dataclass
class Cond:
    """A generated condition: its text, its meaning, and the numbers in it."""

    text: str
    meaning: Callable[..., bool]
    numbers: list[Fraction]


class PropGen:
    """Random small .prop files over `network n : real[n] -> real[m]`, each property with its meaning.

    Literals are read as the language reads them (the nearest double); no arithmetic between
    constants (the language computes it in floats), no repeated variable in a sum."""

    def __init__(self, rng: random.Random, n: int = 2, m: int = 3, hostile: float = 0.25, bounded: bool = False) -> None:
        self.rng, self.n, self.m, self.hostile, self.bounded = rng, n, m, hostile, bounded
        self.argmin = rng.random() < 0.3
        self.input_names = [f"u{i}" for i in range(n)] if rng.random() < 0.3 else None
        self.labels = [f"L{j}" for j in range(m)] if rng.random() < 0.4 else None

    reading = "double"  # how the meanings read a one-term constraint's literals: "double" or "decimal"

    def val(self, pair: tuple[Fraction, Fraction], terms: int = 1) -> Fraction:
        """A literal's value: as a double, or (one-term constraints, `reading` decimal) exactly as written."""
        return pair[1] if self.reading == "decimal" and terms == 1 else pair[0]

    def number(self) -> tuple[str, tuple[Fraction, Fraction]]:
        r = self.rng
        text = r.choice(HOSTILE) if r.random() < self.hostile else r.choice(ORDINARY)
        if r.random() < 0.2 and text not in HOSTILE:
            text = f"{r.uniform(0, 2):.{r.randint(1, 9)}f}"
        value = (Fraction(float(text)), Fraction(text))
        if r.random() < 0.35:
            return f"-{text}", (-value[0], -value[1])
        return text, value

    def x(self, i: int) -> str:
        return self.input_names[i] if self.input_names and self.rng.random() < 0.7 else f"x[{i}]"

    def y(self, j: int) -> str:
        return self.labels[j] if self.labels and self.rng.random() < 0.7 else f"y[{j}]"

    @staticmethod
    def _cmp(op: str, a: Fraction, b: Fraction) -> bool:
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    def _linear(self, var: Callable[[int], str], size: int) -> tuple[str, dict[int, tuple[Fraction, Fraction]]]:
        r = self.rng
        k = r.choice([1, 1, 2]) if size >= 2 else 1
        scales = {"": 1.0, "2 * ": 2.0, "0.5 * ": 0.5, "3 * ": 3.0, "0.1 * ": 0.1, "1e-3 * ": 1e-3}
        text, coeffs = "", {}
        for pos, i in enumerate(r.sample(range(size), k)):
            c_text = r.choice(["", "", *scales])
            negative = r.random() < 0.3
            sign = -1 if negative else 1
            coeffs[i] = (Fraction(scales[c_text]) * sign, Fraction(c_text[:-3] or "1") * sign)
            if pos == 0:
                text = ("-" if negative else "") + c_text + var(i)
            else:
                text += (" - " if negative else " + ") + c_text + var(i)
        return text, coeffs

    def _compare(self, var: Callable[[int], str], size: int) -> Cond:
        text, coeffs = self._linear(var, size)
        op = self.rng.choice(["<", "<=", ">", ">="])
        b_text, b = self.number()
        left = self.rng.random() < 0.8

        k = len(coeffs)

        def meaning(v: Sequence[float]) -> bool:
            s = sum((self.val(c, k) * Fraction(v[i]) for i, c in coeffs.items()), Fraction(0))
            bound = self.val(b, k)
            return self._cmp(op, s, bound) if left else self._cmp(op, bound, s)

        numbers = [b[j] / c[j] for c in coeffs.values() for j in (0, 1)] + list(b)
        return Cond(f"{text} {op} {b_text}" if left else f"{b_text} {op} {text}", meaning, numbers)

    def _interval(self, var: Callable[[int], str], size: int) -> Cond:
        i = self.rng.randrange(size)
        (t1, a), (t2, b) = self.number(), self.number()
        if a > b and self.rng.random() < 0.9:
            (t1, a), (t2, b) = (t2, b), (t1, a)
        lo_open, hi_open = self.rng.random() < 0.4, self.rng.random() < 0.4

        def meaning(v: Sequence[float]) -> bool:
            q, lo, hi = Fraction(v[i]), self.val(a), self.val(b)
            return (q > lo if lo_open else q >= lo) and (q < hi if hi_open else q <= hi)

        text = f"{var(i)} in {'(' if lo_open else '['}{t1}, {t2}{')' if hi_open else ']'}"
        return Cond(text, meaning, [*a, *b])

    DOMAINS = ("[-1, 1]", "[0, 1]", "[-2.5, 3.]", "(-1, 1)", "[-1e308, 1e308]", "[0, 3.4028234663852886e38)",
               "[-0.0, 0.1000000014901161193847656250001]", "(-0.387254923582077, 0.387254923582077]", "[-2, 2)",
               "[-16777217, 16777217]", "[-1e-300, 1]", "(-5e-324, 0.75]")

    def _domain(self, var: Callable[[int], str], size: int) -> Cond:
        i = self.rng.randrange(size)
        text = self.rng.choice(self.DOMAINS[:4] + self.DOMAINS[6:9] if self.bounded else self.DOMAINS)
        lo_t, hi_t = (t.strip() for t in text[1:-1].split(","))
        lo_open, hi_open = text[0] == "(", text[-1] == ")"
        lo = (Fraction(float(lo_t)), Fraction(lo_t))
        hi = (Fraction(float(hi_t)), Fraction(hi_t))

        def meaning(v: Sequence[float]) -> bool:
            q, a, b = Fraction(v[i]), self.val(lo), self.val(hi)
            return (q > a if lo_open else q >= a) and (q < b if hi_open else q <= b)

        return Cond(f"{var(i)} in {text}", meaning, [*lo, *hi])

    def _combine(self, atom: Callable[[], Cond], depth: int, allow_not: bool = True) -> Cond:
        r = self.rng.random()
        if depth <= 0 or r < 0.45:
            return atom()
        if r < 0.55 and allow_not:
            inner = self._combine(atom, depth - 1, allow_not)
            return Cond(f"not ({inner.text})", lambda *a: not inner.meaning(*a), inner.numbers)
        a, b = self._combine(atom, depth - 1, allow_not), self._combine(atom, depth - 1, allow_not)
        if r < 0.8:
            return Cond(f"({a.text}) and ({b.text})", lambda *v: a.meaning(*v) and b.meaning(*v), a.numbers + b.numbers)
        return Cond(f"({a.text}) or ({b.text})", lambda *v: a.meaning(*v) or b.meaning(*v), a.numbers + b.numbers)

    def region_atom(self) -> Cond:
        r = self.rng.random()
        if r < (0.03 if self.bounded else 0.12):
            labels = sorted(self.rng.sample(range(self.m), self.rng.randint(1, self.m - 1)))
            text = "predicted in {" + ", ".join(self.y(j) for j in labels) + "}"
            return Cond(text, lambda x, pred: pred in labels, [])
        c = self._interval(self.x, self.n) if r < 0.5 else self._compare(self.x, self.n)
        return Cond(c.text, lambda x, pred: c.meaning(x), c.numbers)

    def _above(self, a: int, b: int, y: Sequence[float]) -> bool:
        return y[a] < y[b] if self.argmin else y[a] > y[b]

    def require_atom(self) -> Cond:
        r, m = self.rng.random(), self.m
        a = self.rng.randrange(m)
        others = [j for j in range(m) if j != a]
        if r < 0.3:
            bs = self.rng.sample(others, self.rng.randint(1, len(others)))
            word = self.rng.choice(["above", "below"])
            target = self.y(bs[0]) if len(bs) == 1 and self.rng.random() < 0.5 else "{" + ", ".join(map(self.y, bs)) + "}"
            if word == "above":
                return Cond(f"{self.y(a)} above {target}", lambda y: all(self._above(a, b, y) for b in bs), [])
            return Cond(f"{self.y(a)} below {target}", lambda y: all(self._above(b, a, y) for b in bs), [])
        if r < 0.5:
            form = self.rng.choice(["is first", "is last", "is not first", "is not last"])
            meaning = {
                "is first": lambda y: all(self._above(a, b, y) for b in others),
                "is last": lambda y: all(self._above(b, a, y) for b in others),
                "is not first": lambda y: any(self._above(b, a, y) for b in others),
                "is not last": lambda y: any(self._above(a, b, y) for b in others),
            }[form]
            return Cond(f"{self.y(a)} {form}", meaning, [])
        if r < 0.62:
            b = self.rng.choice(others)
            op = self.rng.choice(["<", "<=", ">", ">="])
            return Cond(f"{self.y(a)} {op} {self.y(b)}", lambda y: self._cmp(op, Fraction(y[a]), Fraction(y[b])), [])
        if r < 0.75:
            c = self._interval(self.y, m)
            return c
        return self._compare(self.y, m)

    def spec(self, count: int = 3) -> tuple[str, dict[str, tuple[Cond | None, Cond]], Callable[[Sequence[float]], bool]]:
        """(text, {property: (when, require)}, domain meaning)."""
        r = self.rng
        lines = [f"network n : real[{self.n}] -> real[{self.m}]"]
        if self.labels:
            lines.append("  labels " + ", ".join(self.labels))
        if self.input_names:
            lines.append("  inputs " + ", ".join(self.input_names))
        domain: list[Cond] = []
        if r.random() < 0.8 or self.bounded:
            if r.random() < 0.5 or self.bounded:
                d = self._domain(lambda i: "x[*]", 1)
                full = Cond(d.text, lambda x: all(d.meaning([v]) for v in x), d.numbers)
                domain.append(full)
                lines.append(f"  domain {d.text}")
            else:
                parts = [self._domain(self.x, self.n) for _ in range(r.randint(1, self.n))]
                domain += parts
                lines.append("  domain " + ", ".join(p.text for p in parts))
        if self.argmin:
            lines.append("  decide argmin")
        props: dict[str, tuple[Cond | None, Cond]] = {}
        for k in range(count):
            when = None
            if r.random() < 0.8:
                when = self._combine(self.region_atom, r.choice([0, 1, 1, 2]), allow_not=r.random() < 0.1)
            req = self._combine(self.require_atom, r.randint(0, 2))
            name = f"p{k}"
            props[name] = (when, req)
            lines.append(f"property {name}:" + (f" when {when.text}" if when else "") + f" require {req.text}")

        def in_domain(x: Sequence[float]) -> bool:
            return all(d.meaning(x) for d in domain)

        self.domain_numbers = [q for d in domain for q in d.numbers]
        return "\n".join(lines) + "\n", props, in_domain


# ---------------------------------------------------------------- token-level mutations of .prop files

TINY_PROP = """# a small network with every kind of clause
network n : real[2] -> real[3]
  labels a, b, c
  inputs u, v
  domain u in [-1, 1], v in [-1, 1]
  decide argmax

const lim = 0.5

property p1 "a half-space and an interval":
  when u + 0.5 * v <= lim and v in (-0.5, 0.75]
  require a above {b, c} or b is first

property p2: require c is not last and y[0] - 2 * y[1] < 3
property p3: when u >= 0 or v < -0.25 require not (a below b) and b >= -1
property p4: when predicted in {a, b} require a above c
property p5: robust eps 0.1 norm linf at [0.1, 0.2], [0, 0]
"""

IMAGE_PROP = """network img : real[1, 2, 2] -> real[3]
  labels cat, dog, fox
  domain x[*] in [0, 1]
  normalize inputs mean 0.5 range 0.25
  normalize outputs mean [0, 1, 2] range 2
  decide argmin

dataset test = digits_test
ensemble e = vote(img: 2)
property r1: robust top 2 eps 0.01 norm l2 over test
property r2: robust within {cat, dog}, {fox} eps 0.05 norm linf at [0.1, 0.2, 0.3, 0.4]
property o1: when x[0] in [0.2, 0.8) and x[3] > 0.1 require cat above dog and dog is not first
"""

_PROP_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|\s+|[A-Za-z_][A-Za-z0-9_]*|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?'
                         r"|<=|>=|->|.", re.DOTALL)
_CMP_SWAPS = {"<": ["<=", ">", ">="], "<=": ["<", ">=", ">"], ">": [">=", "<", "<="], ">=": [">", "<=", "<"]}
_WORD_SWAPS = {"above": ["below"], "below": ["above"], "first": ["last"], "last": ["first"], "and": ["or"],
               "or": ["and"], "argmax": ["argmin"], "argmin": ["argmax"], "l2": ["linf"], "linf": ["l2"],
               "require": ["when"], "when": ["require"], "in": ["in"], "is": ["is not"]}
HUGE_SHAPES = ["4096, 4096", "0", "1, 0", "99999999999", "2147483648", "65536, 65536, 16", "1" + "0" * 40,
               "3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1", "100000", "1000, 1000"]
HUGE_INDICES = ["99999999", "18446744073709551616", "1" + "0" * 99, "3", "2", "0"]


def prop_corpus() -> list[str]:
    files = sorted((ROOT / "examples").glob("**/*.prop"))
    return [TINY_PROP, IMAGE_PROP, *(f.read_text(encoding="utf-8") for f in files)]


def mutate_prop(rng: random.Random, text: str) -> tuple[str, str]:
    """One to three grammar-aware mutations: (new text, what was done)."""
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        tokens = _PROP_TOKEN.findall(text)
        words = [i for i, t in enumerate(tokens) if not t.isspace() and not t.startswith("#")]
        op = rng.randrange(14)
        numbers = [i for i in words if re.fullmatch(r"[\d.]+(?:[eE][+-]?\d+)?", tokens[i]) and tokens[i] != "."]
        if op <= 2 and numbers:  # a number becomes an extreme value (or not a number at all)
            i = rng.choice(numbers)
            pool = EXTREME_NUMBERS if rng.random() < 0.85 else NOT_NUMBERS
            tokens[i] = rng.choice(pool)
            done.append(f"number->{tokens[i][:20]}")
        elif op == 3:  # strict <-> non-strict, direction, brackets of an interval
            cmps = [i for i in words if tokens[i] in _CMP_SWAPS or tokens[i] in "[]()"]
            if cmps:
                i = rng.choice(cmps)
                t = tokens[i]
                tokens[i] = rng.choice(_CMP_SWAPS[t]) if t in _CMP_SWAPS else {"[": "(", "(": "[", "]": ")", ")": "]"}[t]
                done.append(f"cmp {t}->{tokens[i]}")
        elif op == 4:  # keyword swaps
            kws = [i for i in words if tokens[i] in _WORD_SWAPS]
            if kws:
                i = rng.choice(kws)
                tokens[i] = rng.choice(_WORD_SWAPS[tokens[i]])
                done.append(f"word->{tokens[i]}")
        elif op == 5:  # duplicate, remove or swap lines (clauses, properties)
            lines = "".join(tokens).split("\n")
            k = rng.randrange(len(lines))
            how = rng.choice(["dup", "del", "swap", "dup-many"])
            if how == "dup":
                lines.insert(k, lines[k])
            elif how == "del":
                del lines[k]
            elif how == "swap":
                j = rng.randrange(len(lines))
                lines[k], lines[j] = lines[j], lines[k]
            else:
                lines[k:k] = [lines[k]] * rng.choice([50, 300])
            done.append(f"line-{how}")
            text = "\n".join(lines)
            continue
        elif op == 6:  # a huge or empty shape
            joined = "".join(tokens)
            shapes = list(re.finditer(r"real\[[^\]]*\]", joined))
            if shapes:
                m = rng.choice(shapes)
                shape = rng.choice(HUGE_SHAPES)
                text = joined[: m.start()] + f"real[{shape}]" + joined[m.end():]
                done.append(f"shape {shape[:20]}")
                continue
        elif op == 7:  # deep nesting of a condition or an expression
            joined = "".join(tokens)
            found = list(re.finditer(r"(require|when) ([^\n]*)", joined))
            if found:
                m = rng.choice(found)
                depth = rng.choice([20, 100, 300, 1000, 3000])
                wrap = rng.choice([("not (", ")"), ("(", ")"), ("-(", ")")])
                body = m.group(2)
                if wrap[0] == "-(":  # a number nested in negations
                    nums = list(re.finditer(r"\d+\.?\d*", body))
                    if not nums:
                        continue
                    n = rng.choice(nums)
                    body = body[: n.start()] + wrap[0] * depth + n.group() + wrap[1] * depth + body[n.end():]
                else:
                    body = wrap[0] * depth + body + wrap[1] * depth
                text = joined[: m.start(2)] + body + joined[m.end(2):]
                done.append(f"nest {wrap[0]}x{depth}")
                continue
        elif op == 8:  # control characters, odd line breaks, bidi overrides, a BOM
            pos = rng.randrange(len(tokens) + 1)
            ch = rng.choice(CONTROL_STRINGS)
            tokens.insert(pos, ch)
            done.append(f"insert {ch!r}")
        elif op == 9:  # a long identifier
            names = [i for i in words if re.fullmatch(r"[A-Za-z_]\w*", tokens[i])]
            if names:
                i = rng.choice(names)
                tokens[i] = rng.choice(["a" * 100_000, "x" * 5000, "_" * 300, tokens[i] + "_" * 200])
                done.append("long name")
        elif op == 10:  # huge indices
            idx = [i for i in words if tokens[i] == "[" and i + 1 < len(tokens) and tokens[i + 1].isdigit()]
            if idx:
                i = rng.choice(idx) + 1
                tokens[i] = rng.choice(HUGE_INDICES)
                done.append(f"index {tokens[i][:12]}")
        elif op == 11:  # control characters inside a string, a comment or a name
            spots = [i for i in words if tokens[i].startswith('"') or re.fullmatch(r"[A-Za-z_]\w*", tokens[i])]
            spots += [i for i, t in enumerate(tokens) if t.startswith("#")]
            if spots:
                i = rng.choice(spots)
                t = tokens[i]
                k = rng.randrange(1, max(2, len(t)))
                tokens[i] = t[:k] + rng.choice(CONTROL_STRINGS) + t[k:]
                done.append(f"ctl in {t[:10]!r}")
        elif op == 12:  # many labels, many values, long vectors
            joined = "".join(tokens)
            m = re.search(r"at \[([^\]]*)\]", joined)
            if m and rng.random() < 0.5:
                vec = ", ".join(rng.choice(EXTREME_NUMBERS[:20]) for _ in range(rng.choice([1, 3, 4, 5, 1000])))
                text = joined[: m.start(1)] + vec + joined[m.end(1):]
                done.append("vector")
                continue
            m = re.search(r"labels ([^\n]*)", joined)
            if m:
                labels = ", ".join(f"l{k}" for k in range(rng.choice([1, 2, 4, 1000])))
                text = joined[: m.start(1)] + labels + joined[m.end(1):]
                done.append("labels")
                continue
        else:  # a token replaced by another token of the file, or two tokens swapped
            if len(words) >= 2:
                i, j = rng.sample(words, 2)
                if rng.random() < 0.5:
                    tokens[i], tokens[j] = tokens[j], tokens[i]
                else:
                    tokens[i] = tokens[j]
                done.append("retoken")
        text = "".join(tokens)
    return text, ",".join(done) or "none"


def vnn_var_numbers(oracle: VnnOracle) -> dict[tuple[str, int], list[Fraction]]:
    """Per variable, the values where one of its faces lies (bound / coefficient)."""
    out: dict[tuple[str, int], list[Fraction]] = defaultdict(list)
    for coeffs, bound in oracle.comparisons():
        for v, q in coeffs.items():
            if q:
                out[v].append(bound / q)
    return out


# ---------------------------------------------------------------- VNN-LIB texts and their mutations

VNN_NUMBERS = ["0", "1", "-1", "0.5", "-0.5", "0.25", "-0.3", "0.1", "1.5", "-2", "0.75", "0.387254923582077",
               "0.0", "-0.0", "3.", ".5", "1e-3", "2.5E-1", "-1e-300"]


def vnnlib_text(rng: random.Random, n: int, m: int) -> str:
    """A small VNN-LIB violation over X_0..X_{n-1}, Y_0..Y_{m-1}, in the style of VNN-COMP's files."""
    lines = ["; generated", *(f"(declare-const X_{i} Real)" for i in range(n)), "",
             *(f"(declare-const Y_{j} Real)" for j in range(m)), ""]

    def num() -> str:
        return rng.choice(VNN_NUMBERS) if rng.random() < 0.85 else rng.choice(EXTREME_NUMBERS[:30])

    def bounds(i: int) -> tuple[str, str]:
        a, b = sorted([float(rng.choice(VNN_NUMBERS)), float(rng.choice(VNN_NUMBERS))])
        return f"(>= X_{i} {a!r})", f"(<= X_{i} {b if b > a else a + 1!r})"

    if rng.random() < 0.2 and n >= 1:  # a disjunction of input boxes (prop_6)
        boxes = [" ".join(c for i in range(n) for c in bounds(i)) for _ in range(2)]
        lines.append("(assert (or\n" + "".join(f"    (and {b})\n" for b in boxes) + "))")
    else:
        for i in range(n):
            lo, hi = bounds(i)
            lines += [f"(assert {lo})", f"(assert {hi})"]
    if rng.random() < 0.3 and n >= 2:
        op = rng.choice(["<=", ">=", "<", ">"])
        lines.append(f"(assert ({op} (+ X_0 (* {num()} X_1)) {num()}))")
    j = rng.randrange(m)
    others = [k for k in range(m) if k != j]
    form = rng.randrange(5)
    if form == 0:
        lines.append(f"(assert (<= Y_{j} Y_{rng.choice(others)}))")
    elif form == 1:
        lines.append("(assert (or\n" + "".join(f"    (and (>= Y_{k} Y_{j}))\n" for k in others) + "))")
    elif form == 2:
        lines.append(f"(assert ({rng.choice(['<=', '>=', '<', '>'])} Y_{j} {num()}))")
    elif form == 3:
        lines.append(f"(assert (<= (- Y_{j} Y_{rng.choice(others)}) {num()}))")
    else:
        lines.append(f"(assert (and (>= Y_{j} {num()}) (not (< Y_{j} Y_{rng.choice(others)}))))")
    return "\n".join(lines) + "\n"


_VNN_TOKEN = re.compile(r";[^\n\r]*|[()]|\s+|[^\s();]+")
_VNN_OPS = ["<=", "<", ">=", ">", "=", "and", "or", "not", "+", "-", "*", "/", "distinct", "=>", "ite", "xor",
            "assert", "declare-const", "Real", "Int", "true", "false", "let", "abs"]
_VNN_JUNK = ["(check-sat)", "(get-model)", "(set-info :status sat)", "(exit)", "(push 1)", "(declare-fun X_0 () Real)",
             "(define-fun f () Real 1)", "(assert)", "(assert (and))", "(assert (or))", "(assert true)",
             "(assert false)", "(assert (<= X_0 X_1 X_2))", "(assert (= Y_0 Y_1))", "(assert (<= X_0 (/ 1 3)))",
             "(assert (<= (* X_0 X_1) 1))", "(assert (<= X_0 (/ 1 0)))", "(declare-const X_99999999 Real)",
             "(assert (<= X_99999999 1))", "(assert (<= Y_0 X_0))", "(assert (or (<= X_0 0) (<= Y_0 0)))",
             "(set-logic QF_LRA)", "(assert (<= X_0 #x1F))", "(assert (<= |X_0| 1))", '(assert (<= X_0 "1"))']


def mutate_vnnlib(rng: random.Random, text: str) -> tuple[str, str]:
    done = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        tokens = _VNN_TOKEN.findall(text)
        words = [i for i, t in enumerate(tokens) if not t.isspace() and not t.startswith(";")]
        numbers = [i for i in words if _VNUM.fullmatch(tokens[i])]
        op = rng.randrange(12)
        if op <= 2 and numbers:
            i = rng.choice(numbers)
            r = rng.random()
            tokens[i] = rng.choice(EXTREME_NUMBERS) if r < 0.6 else ("-" + rng.choice(EXTREME_NUMBERS[:30])) if r < 0.8 \
                else rng.choice([*NOT_NUMBERS, "#x1F", "#b101", "(/ 1 3)", "(- 0.5)", "(- (- 0.5))"])
            done.append(f"number->{tokens[i][:20]}")
        elif op == 3:
            ops = [i for i in words if tokens[i] in _VNN_OPS]
            if ops:
                i = rng.choice(ops)
                tokens[i] = rng.choice(_VNN_OPS)
                done.append(f"op->{tokens[i]}")
        elif op == 4:
            parens = [i for i in words if tokens[i] in "()"]
            if parens:
                i = rng.choice(parens)
                tokens[i] = rng.choice(["", "((", "))", ")" if tokens[i] == "(" else "("])
                done.append("paren")
        elif op == 5:  # declarations
            decls = [i for i in words if tokens[i] == "declare-const"]
            if decls:
                i = rng.choice(decls)
                j = i + 2 if i + 2 < len(tokens) else i
                how = rng.randrange(4)
                if how == 0:
                    tokens[j] = rng.choice(["X_99999999", "Y_99999999", "X_01", "X_-1", "x_0", "X_", "X_1e3",
                                            "Y_" + "9" * 30, "Z_0", "X_0"])
                elif how == 1 and i + 4 < len(tokens):
                    tokens[i + 4] = rng.choice(["Int", "Bool", "real", "Float32", "(_ BitVec 8)"])
                elif how == 2:
                    tokens[i] = ""
                    tokens[j] = ""
                    if j + 2 < len(tokens):
                        tokens[j + 2] = ""
                else:
                    tokens.insert(0, "(declare-const X_0 Real)\n")
                done.append(f"decl{how}")
        elif op == 6:  # a comment that another reader could end early: the rest would be code
            brk = rng.choice([*LINE_BREAKS, "\n", "\r", "\r\n"])
            payload = rng.choice(["(assert (<= Y_0 -1000000))", "(assert (>= X_0 1000))", "(assert false)",
                                  "(declare-const X_9 Real)", ")"])
            lines = "".join(tokens).split("\n")
            k = rng.randrange(len(lines) + 1)
            lines.insert(k, f"; note{brk}{payload}")
            text = "\n".join(lines)
            done.append(f"comment {brk!r}")
            continue
        elif op == 7:  # deep nesting
            joined = "".join(tokens)
            found = list(re.finditer(r"\(assert (.*)\)\s*$", joined, re.MULTILINE))
            if found:
                f = rng.choice(found)
                depth = rng.choice([10, 100, 400, 1000, 3000])
                body = f.group(1)
                kind = rng.randrange(3)
                if kind == 0:
                    body = "(and " * depth + body + ")" * depth
                elif kind == 1:
                    body = "(not " * (2 * depth) + body + ")" * (2 * depth)
                else:
                    nums = list(_VNUM.finditer(body))
                    if nums:
                        nm = rng.choice(nums)
                        body = body[: nm.start()] + "(- " * (2 * depth) + nm.group() + ")" * (2 * depth) + body[nm.end():]
                text = joined[: f.start(1)] + body + joined[f.end(1):]
                done.append(f"nest{kind}x{depth}")
                continue
        elif op == 8:
            pos = rng.randrange(len(tokens) + 1)
            tokens.insert(pos, rng.choice(CONTROL_STRINGS))
            done.append("control")
        elif op == 9:
            lines = "".join(tokens).split("\n")
            lines.insert(rng.randrange(len(lines) + 1), rng.choice(_VNN_JUNK))
            text = "\n".join(lines)
            done.append("junk")
            continue
        elif op == 10:  # line endings and a BOM
            how = rng.randrange(3)
            text = "".join(tokens)
            text = text.replace("\n", "\r\n") if how == 0 else text.replace("\n", "\r") if how == 1 else "\ufeff" + text
            done.append(f"eol{how}")
            continue
        else:  # a line duplicated or removed
            lines = "".join(tokens).split("\n")
            k = rng.randrange(len(lines))
            if rng.random() < 0.5:
                lines.insert(k, lines[k])
            else:
                del lines[k]
            text = "\n".join(lines)
            done.append("line")
            continue
        text = "".join(tokens)
    return text, ",".join(done) or "none"


# ---------------------------------------------------------------- small ONNX models

def onnx_mlp(rng: np.random.Generator, n: int, hidden: int, m: int, scale: float = 1.0,
             batch: Any = 1) -> Any:
    """x (batch, n) -> Gemm -> Relu -> Gemm -> y (batch, m), float32, opset 15."""
    from onnx import TensorProto, helper, numpy_helper

    w1 = (rng.standard_normal((hidden, n)) * scale).astype(np.float32)
    b1 = (rng.standard_normal(hidden) * 0.1 * scale).astype(np.float32)
    w2 = (rng.standard_normal((m, hidden)) * scale).astype(np.float32)
    b2 = (rng.standard_normal(m) * 0.1 * scale).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "W1", "B1"], ["h"], transB=1, name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "W2", "B2"], ["y"], transB=1, name="fc2")]
    graph = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, m])],
        [numpy_helper.from_array(a, name) for name, a in (("W1", w1), ("B1", b1), ("W2", w2), ("B2", b2))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def onnx_convnet(rng: np.random.Generator) -> Any:
    """x (1, 1, 4, 4) -> Conv -> Relu -> MaxPool -> Flatten -> Gemm -> y (1, 3)."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {"W": rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "B": rng.standard_normal(2).astype(np.float32),
             "G": rng.standard_normal((3, 8)).astype(np.float32), "H": rng.standard_normal(3).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1], kernel_shape=[3, 3],
                              group=1, dilations=[1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0],
                              name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], axis=1, name="flat"),
             helper.make_node("Gemm", ["f", "G", "H"], ["y"], transB=1, alpha=1.0, beta=1.0, name="fc")]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(a, k) for k, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def onnx_misc(rng: np.random.Generator) -> Any:
    """x (1, 2) -> Sub -> Reshape (1,2,1,1) -> BatchNormalization -> AveragePool -> Flatten -> Concat -> MatMul -> Add."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {"c": rng.standard_normal((1, 2)).astype(np.float32), "shape": np.array([1, 2, 1, 1], dtype=np.int64),
             "s": rng.standard_normal(2).astype(np.float32), "b": rng.standard_normal(2).astype(np.float32),
             "mu": rng.standard_normal(2).astype(np.float32), "var": (np.abs(rng.standard_normal(2)) + 0.5).astype(np.float32),
             "k": rng.standard_normal((1, 1)).astype(np.float32), "M": rng.standard_normal((3, 3)).astype(np.float32),
             "a": rng.standard_normal(3).astype(np.float32)}
    nodes = [helper.make_node("Sub", ["x", "c"], ["t0"], name="sub"),
             helper.make_node("Reshape", ["t0", "shape"], ["t1"], name="reshape"),
             helper.make_node("BatchNormalization", ["t1", "s", "b", "mu", "var"], ["t2"], epsilon=1e-5, name="bn"),
             helper.make_node("AveragePool", ["t2"], ["t3"], kernel_shape=[1, 1], name="avg"),
             helper.make_node("Flatten", ["t3"], ["t4"], name="flat"),
             helper.make_node("Concat", ["t4", "k"], ["t5"], axis=1, name="cat"),
             helper.make_node("MatMul", ["t5", "M"], ["t6"], name="mm"),
             helper.make_node("Add", ["t6", "a"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "misc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(a, k) for k, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def onnx_reference(model: Any, x: np.ndarray) -> np.ndarray:
    """onnx.reference on each row of x (flat), reshaped to the declared input; flat float64 scores."""
    from onnx.reference import ReferenceEvaluator

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # numpy's overflow and empty-slice warnings: the values are compared
        return _reference_rows(ReferenceEvaluator(model), model, x)


def _reference_rows(evaluator: Any, model: Any, x: np.ndarray) -> np.ndarray:
    consts = {t.name for t in model.graph.initializer}
    (inp,) = [i for i in model.graph.input if i.name not in consts]
    shape = [1, *[d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim][1:]]
    dtype = {1: np.float32, 11: np.float64, 10: np.float16}.get(inp.type.tensor_type.elem_type, np.float32)
    rows = [np.asarray(evaluator.run(None, {inp.name: row.reshape(shape).astype(dtype)})[0], dtype=np.float64).reshape(-1)
            for row in x]
    return np.stack(rows)


# ---------------------------------------------------------------- ONNX mutations

OPENED: list[str] | None = None  # while a list, every path opened by this process (audit hook) is appended


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if OPENED is not None and event == "open" and args and isinstance(args[0], str | bytes | os.PathLike):
        OPENED.append(os.fsdecode(args[0]))


_HOOKED = False


@contextlib.contextmanager
def watch_opens() -> Iterator[list[str]]:
    """Record the paths this process opens meanwhile (sys.addaudithook: builtins.open, io.open, os.open)."""
    global OPENED, _HOOKED
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED = True
    seen: list[str] = []
    OPENED = seen
    try:
        yield seen
    finally:
        OPENED = None


# float16, double, int64, string, bool, bfloat16, complex64, uint8, float8, undefined, no such type
_ELEM_TYPES = [10, 11, 7, 8, 9, 16, 14, 2, 17, 0, 999]
_UNKNOWN_OPS = [("", "Foo"), ("", "Sigmoid"), ("", "Softmax"), ("", "Identity"), ("", "Loop"), ("", "If"),
                ("", "Tanh"), ("com.microsoft", "FusedGemm"), ("evil.domain", "Relu"), ("ai.onnx.ml", "Scaler"),
                ("", "Relu\x1b[2J"), ("", ""), ("", "Gemm" * 1000)]
_ATTRS: dict[str, list[tuple[str, Any]]] = {
    "Conv": [("pads", [11585] * 4), ("pads", [-1] * 4), ("pads", [10**9] * 4), ("pads", [1, 2, 3]), ("pads", [0, 0, 5, 5]),
             ("strides", [0, 0]), ("strides", [-1, -1]), ("strides", [10**9] * 2), ("strides", [1]),
             ("kernel_shape", [0, 0]), ("kernel_shape", [10**6] * 2), ("kernel_shape", [3, 3, 3]),
             ("group", 0), ("group", -1), ("group", 3), ("group", 2), ("group", 10**9), ("dilations", [0, 0]),
             ("dilations", [-2, -2]), ("dilations", [10**6] * 2), ("dilations", [2, 2]), ("auto_pad", "SAME_UPPER"),
             ("auto_pad", b"\xff\xfe"), ("auto_pad", "VALID"), ("pads", [2**62] * 4), ("strides", [2**62] * 2)],
    "Gemm": [("alpha", math.nan), ("alpha", math.inf), ("alpha", 3.4e38), ("beta", math.nan), ("transB", 2),
             ("transB", -1), ("transA", 1), ("transB", 0), ("alpha", 0.0), ("alpha", -0.0), ("beta", 1e-45)],
    "MaxPool": [("kernel_shape", [10**6] * 2), ("kernel_shape", [0, 0]), ("ceil_mode", 1), ("strides", [0, 0]),
                ("pads", [5, 5, 5, 5]), ("pads", [11585] * 4), ("dilations", [0, 0]), ("storage_order", 1)],
    "AveragePool": [("kernel_shape", [10**6] * 2), ("count_include_pad", 5), ("pads", [1, 1, 1, 1]), ("ceil_mode", 1),
                    ("kernel_shape", [0, 0]), ("pads", [11585] * 4), ("strides", [0, 0])],
    "BatchNormalization": [("epsilon", -1.0), ("epsilon", math.nan), ("epsilon", 1e308), ("epsilon", -1e-5),
                           ("momentum", math.nan), ("training_mode", 1), ("spatial", 0)],
    "Flatten": [("axis", 99), ("axis", -99), ("axis", 0), ("axis", 2), ("axis", -1), ("axis", 2**62)],
    "Concat": [("axis", 0), ("axis", 99), ("axis", -99), ("axis", 2**62)],
    "Reshape": [("allowzero", 1), ("allowzero", 7)],
    "Relu": [("alpha", 0.1)],
    "Sub": [("broadcast", 1), ("axis", 1)],
    "Add": [("broadcast", 1), ("axis", 0)],
    "MatMul": [("transB", 1)],
}


def _set_attr(node: Any, name: str, value: Any) -> None:
    from onnx import helper

    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def _odd_array(rng: random.Random, a: np.ndarray) -> np.ndarray:
    retyped: list[Callable[[np.ndarray], np.ndarray]] = [
        lambda a: a.astype(np.float16), lambda a: a.astype(np.float64), lambda a: a.astype(np.int64),
        lambda a: np.array([str(v) for v in a.reshape(-1)], dtype=object).reshape(a.shape),
        lambda a: a.astype(bool), lambda a: a.astype(np.complex64)]
    kind = rng.randrange(len(retyped) + 3)
    if kind < len(retyped):
        return retyped[kind](a)
    b = a.astype(np.float32).copy()
    special = [math.nan, math.inf, -math.inf, FLT_MAX, -FLT_MAX, 1e-45, -0.0, 1e38][rng.randrange(8)]
    if b.size:
        b.flat[rng.randrange(b.size)] = special
    if kind == len(retyped) + 1 and b.size:
        b[...] = special
    if kind == len(retyped) + 2:
        return b.reshape(-1) if b.ndim > 1 else b.reshape(1, -1)
    return b


def mutate_onnx(rng: random.Random, model: Any, folder: Path) -> tuple[Any, str]:
    """A broken copy of `model` (a ModelProto) or broken bytes, and what was done."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    op = rng.randrange(16)
    if op == 0:  # input dims
        dims = g.input[0].type.tensor_type.shape.dim
        how = rng.randrange(5)
        if how == 0 and len(dims):
            k = rng.randrange(len(dims))
            value = rng.choice([0, -1, -5, 2**31, 10**12, 2**63 - 1, 7])
            dims[k].Clear()
            dims[k].dim_value = value
            return m, f"input dims: dim {k} = {value}"
        if how == 1 and len(dims) > 1:
            k = rng.randrange(1, len(dims))
            dims[k].Clear()
            dims[k].dim_param = rng.choice(["N", "", "batch\x1b[31m"])
            return m, f"input dims: dim {k} symbolic"
        if how == 2:
            g.input[0].type.tensor_type.ClearField("shape")
            return m, "input dims: no shape"
        if how == 3:
            g.input[0].type.tensor_type.shape.dim.add().dim_value = rng.choice([1, 2, 0])
            return m, "input dims: an extra dim"
        del dims[-1]
        return m, "input dims: a dim less"
    if op == 1:  # input dtype
        t = rng.choice(_ELEM_TYPES)
        g.input[0].type.tensor_type.elem_type = t
        return m, f"input dtype: elem_type {t}"
    if op == 2:  # initializer dtype or values
        t = g.initializer[rng.randrange(len(g.initializer))]
        a = numpy_helper.to_array(t)
        b = _odd_array(rng, a)
        t.CopyFrom(numpy_helper.from_array(b, t.name))
        return m, f"initializer values: {t.name} as {b.dtype} {list(b.shape)} ({b.reshape(-1)[:3]})"
    if op == 3:  # initializer bytes and dims out of step
        t = g.initializer[rng.randrange(len(g.initializer))]
        how = rng.randrange(5)
        if how == 0:
            t.raw_data = t.raw_data[: len(t.raw_data) // 2]
        elif how == 1:
            t.raw_data = t.raw_data + b"\x00" * 12
        elif how == 2:
            del t.dims[:]
            t.dims.extend([rng.choice([10**9, 2**40, -3, 0])])
        elif how == 3:
            t.ClearField("raw_data")
        else:
            t.data_type = rng.choice([0, 999, TensorProto.STRING, TensorProto.DOUBLE])
        return m, f"initializer bytes: {t.name} case {how}"
    if op == 4:  # a missing, duplicated or renamed initializer
        k = rng.randrange(len(g.initializer))
        how = rng.randrange(3)
        if how == 0:
            name = g.initializer[k].name
            del g.initializer[k]
            return m, f"initializers: {name} removed"
        if how == 1:
            dup = g.initializer.add()
            dup.CopyFrom(g.initializer[k])
            a = numpy_helper.to_array(dup) * 2
            dup.CopyFrom(numpy_helper.from_array(a.astype(numpy_helper.to_array(dup).dtype), dup.name))
            return m, f"initializers: {dup.name} twice"
        g.initializer[k].name = g.input[0].name
        return m, "initializers: one named as the input"
    if op == 5:  # cycles, order, duplicate and missing nodes
        how = rng.randrange(6)
        nodes = list(g.node)
        if how == 0:
            g.node[0].input[0] = g.node[-1].output[0]
            return m, "graph: a cycle, the first node reads the last output"
        if how == 1 and len(nodes) > 1:
            i, j = rng.sample(range(len(nodes)), 2)
            a, b = onnx.NodeProto(), onnx.NodeProto()
            a.CopyFrom(nodes[i])
            b.CopyFrom(nodes[j])
            g.node[i].CopyFrom(b)
            g.node[j].CopyFrom(a)
            return m, "graph: nodes out of order"
        if how == 2:
            k = rng.randrange(len(nodes))
            g.node.insert(k, nodes[k])
            return m, "graph: a node twice"
        if how == 3 and len(nodes) > 1:
            k = rng.randrange(len(nodes) - 1)
            del g.node[k]
            return m, f"graph: node {k} removed"
        if how == 4:
            k = rng.randrange(len(nodes))
            g.node[k].input[0] = g.node[k].output[0]
            return m, "graph: a node reads its own output"
        k = rng.randrange(len(nodes))
        g.node[k].output[0] = g.input[0].name if rng.random() < 0.5 else g.node[0].output[0]
        return m, "graph: duplicate output names"
    if op == 6:  # unknown operators
        k = rng.randrange(len(g.node))
        domain, name = rng.choice(_UNKNOWN_OPS)
        g.node[k].op_type, g.node[k].domain = name, domain
        return m, f"operators: node {k} op {domain}.{name[:20]!r}"
    if op in (7, 8, 9):  # absurd attributes
        candidates = [n for n in g.node if n.op_type in _ATTRS]
        if candidates:
            node = rng.choice(candidates)
            name, value = rng.choice(_ATTRS[node.op_type])
            _set_attr(node, name, value)
            return m, f"attributes: {node.op_type}.{name} = {value!r}"[:90]
    if op == 10:  # attributes of the wrong type
        node = g.node[rng.randrange(len(g.node))]
        name = rng.choice(["pads", "strides", "kernel_shape", "group", "axis", "alpha", "transB", "epsilon"])
        value = rng.choice([[1.5, 2.5], "abc", 3.5, [b"x"], numpy_helper.from_array(np.zeros(2, np.float32))])
        _set_attr(node, name, value)
        return m, f"attribute types: {node.op_type}.{name} = {value!r}"[:90]
    if op == 11:  # external data: must never be read
        t = g.initializer[rng.randrange(len(g.initializer))]
        data = numpy_helper.to_array(t).astype(np.float32).tobytes()
        (folder / "sentinel.bin").write_bytes(data)
        location = rng.choice(["../../../../../../../../etc/passwd", str(folder / "sentinel.bin"), "sentinel.bin",
                               "/dev/zero", "/proc/self/environ", "sentinel.bin\x00.txt", "./sentinel.bin"])
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", location), ("offset", "0"), ("length", str(len(data)))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        return m, f"external data: at {location!r}"
    if op == 12:  # opsets and versions
        how = rng.randrange(4)
        value = rng.choice([1, 6, 7, 999, -1])
        if how == 0:
            m.opset_import[0].version = value
        elif how == 1:
            del m.opset_import[:]
        elif how == 2:
            m.ir_version = value
        else:
            m.opset_import.add().CopyFrom(helper.make_opsetid("", 13))
        return m, "versions: " + ["opset version", "no opset", "ir_version", "a second default opset"][how] + f" {value}"
    if op == 13:  # graph outputs
        how = rng.randrange(5)
        if how == 0:
            del g.output[:]
        elif how == 1:
            g.output.add().CopyFrom(g.output[0])
        elif how == 2:
            g.output[0].name = "nowhere"
        elif how == 3:
            dims = g.output[0].type.tensor_type.shape.dim
            if len(dims) > 1:
                dims[1].dim_value = 7
        else:
            g.output[0].type.tensor_type.elem_type = TensorProto.INT64
        return m, f"graph outputs: case {how}"
    if op == 14:  # a Constant node of an odd kind feeding a node
        value = rng.choice([
            {"value": numpy_helper.from_array(np.array(["a", "b"], dtype=object))},
            {"value_string": "abc"}, {"value_floats": [math.nan, 1.0]}, {"value_int": 2**62},
            {"sparse_value": helper.make_sparse_tensor(numpy_helper.from_array(np.ones(1, np.float32)),
                                                       numpy_helper.from_array(np.zeros(1, np.int64)), [3])},
        ])
        name = g.initializer[rng.randrange(len(g.initializer))].name
        for i, t in enumerate(g.initializer):
            if t.name == name:
                del g.initializer[i]
                break
        g.node.insert(0, helper.make_node("Constant", [], [name], **value))
        return m, f"constants: {sorted(value)[0]} for {name}"
    # bytes: truncated, flipped, random, trailing junk
    data = m.SerializeToString()
    how = rng.randrange(5)
    if how == 0:
        return data[: rng.randrange(len(data))], "bytes: truncated"
    if how == 1:
        b = bytearray(data)
        for _ in range(rng.choice([1, 4, 16])):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b), "bytes: flipped"
    if how == 2:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 16, 4096]))), "bytes: random"
    if how == 3:
        return data + b"\xff" * rng.choice([1, 100]), "bytes: trailing junk"
    return b"\x0a\xff\xff\xff\xff\x0f" + data, "bytes: a huge length varint"


# ---------------------------------------------------------------- checkpoints


class Payload:
    """Unpickling this object would run `open(path, "w")`, creating the sentinel file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (open, (self.path, "w"))


class ShellPayload(Payload):
    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (os.system, (f"touch {self.path}",))


def torch_bytes(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _odd_tensor(rng: random.Random, t: Any) -> Any:
    import torch

    replaced: list[Callable[[Any], Any]] = [
        lambda t: t.to(torch.int64), lambda t: t.to(torch.bool), lambda t: t.to(torch.complex64),
        lambda t: t.to(torch.float16), lambda t: t.to(torch.float64) * 1e300, lambda t: t.reshape(-1),
        lambda t: torch.tensor(1.5), lambda t: t.tolist(),
        lambda t: rng.choice(["weights", None, 3, 2.5, {"a": t}, (t, t)]), lambda t: t.to_sparse(),
        # stride 0: a tiny storage that claims a huge shape
        lambda t: torch.zeros(1).expand(*((10**5, 10**5) + (1,) * (t.dim() - 2) if t.dim() >= 2 else (10**9,)))]
    kind = rng.randrange(len(replaced) + 3)
    if kind < len(replaced):
        return replaced[kind](t)
    u = t.clone()
    special = [math.nan, math.inf, -math.inf, FLT_MAX, 1e-45, -0.0][rng.randrange(6)]
    u.view(-1)[rng.randrange(u.numel())] = special
    if kind == len(replaced) + 1:
        u.fill_(special)
    if kind == len(replaced) + 2:
        u.requires_grad_(True)
    return u


def mutate_checkpoint(rng: random.Random, data: dict[str, Any], sentinel: str) -> tuple[Any, str]:
    """A broken checkpoint: (bytes to write, what was done)."""
    import torch

    d = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in data.items()}
    op = rng.randrange(12)
    if op == 0:
        raw = torch_bytes(d)
        return raw[: rng.randrange(len(raw))], "bytes: truncated zip"
    if op == 1:
        raw = bytearray(torch_bytes(d))
        for _ in range(rng.choice([1, 8, 64])):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw), "bytes: flipped"
    if op == 2:
        return rng.choice([b"", b"\x80\x02}q\x00.", bytes(rng.randrange(256) for _ in range(512)), b"PK\x03\x04" * 10,
                           pickle_bytes([1, 2, 3]), pickle_bytes({"input_shape": [2]})]), "bytes: random or legacy pickle"
    if op == 3:  # code in the pickle: must never run
        evil = rng.choice([Payload(sentinel), ShellPayload(sentinel)])
        where = rng.randrange(4)
        if where == 0:
            return pickle_bytes(evil), "payload: a legacy pickle"
        if where == 1:
            return torch_bytes(evil), "payload: torch.save of the object"
        if where == 2:
            d["layers"] = [*d.get("layers", []), evil]
            return torch_bytes(d), "payload: inside layers"
        state = dict(d.get("state_dict", {}))
        state["0.weight"] = evil
        d["state_dict"] = state
        return torch_bytes(d), "payload: inside state_dict"
    if op == 4:  # not a dict, or the wrong keys
        how = rng.randrange(5)
        if how == 0:
            return torch_bytes(rng.choice([[1, 2], torch.zeros(3), 7, None, "model", (1,)])), "format: not a dict"
        if how == 1:
            del d[rng.choice(sorted(d))]
            return torch_bytes(d), "format: a key missing"
        if how == 2:
            d[rng.choice(["extra", 3, "format", "version"])] = rng.choice([1, "x", "certspec-lipschitz-1"])
            return torch_bytes(d), "format: an extra key"
        if how == 3:
            return torch_bytes({str(k).upper(): v for k, v in d.items()}), "format: keys renamed"
        return torch_bytes({1: d}), "format: nested"
    if op == 5:  # input shapes
        d["input_shape"] = rng.choice([[0], [-1], [2.0], [True, True], [], "2", [2**40, 2**40], [10**6, 10**6], None,
                                       [2, 1], [1, 2], [1, 1, 2], [2**63], [float("nan")]])
        return torch_bytes(d), f"input_shape {d['input_shape']!r}"[:60]
    if op == 6 and isinstance(d.get("layers"), list) and d["layers"]:  # layer descriptions
        k = rng.randrange(len(d["layers"]))
        layer = list(d["layers"][k]) if isinstance(d["layers"][k], list | tuple) else [d["layers"][k]]
        how = rng.randrange(6)
        if how == 0:
            layer[0] = rng.choice(["conv3d", "sigmoid", "", "LINEAR", "relu\x1b[2J", 7])
        elif how == 1 and len(layer) > 1:
            layer[rng.randrange(1, len(layer))] = rng.choice([0, -1, 2.5, True, 10**9, 2**63, "3", None, math.nan])
        elif how == 2:
            layer.append(rng.choice([1, "x"]))
        elif how == 3:
            layer = layer[:1]
        elif how == 4:
            d["layers"] = d["layers"] * rng.choice([2, 1000])
            return torch_bytes(d), "layers repeated"
        else:
            layer = ["conv2d", 1, 1, rng.choice([1, 3, 10**6]), rng.choice([1, 0, 10**6]), rng.choice([0, 11585, 10**6])]
        d["layers"][k] = layer
        return torch_bytes(d), f"layer {k} = {layer!r}"[:80]
    if op in (7, 8, 9) and isinstance(d.get("state_dict"), dict) and d["state_dict"]:  # tensors
        state = dict(d["state_dict"])
        key = rng.choice(sorted(state))
        state[key] = _odd_tensor(rng, state[key])
        d["state_dict"] = state
        value = state[key]
        desc = f"{type(value).__name__}" + (f" {value.dtype} {list(value.shape)}" if isinstance(value, torch.Tensor) else "")
        return torch_bytes(d), f"state_dict[{key}] = {desc}"
    if op == 10 and isinstance(d.get("state_dict"), dict):  # keys
        state = dict(d["state_dict"])
        how = rng.randrange(3)
        if how == 0 and state:
            del state[rng.choice(sorted(state))]
        elif how == 1:
            state[rng.choice(["99.weight", "0.running_mean", 0, "0.weight\x00"])] = torch.zeros(2)
        else:
            state = {f"module.{k}": v for k, v in state.items()}
        d["state_dict"] = state
        return torch_bytes(d), f"state_dict keys {how}"
    if op == 11 and "format" in d:
        d["format"] = rng.choice(["certspec-lipschitz-2", "", None, 1, "certspec-guard"])
        return torch_bytes(d), f"format {d['format']!r}"
    return torch_bytes(d), "unchanged"


def pickle_bytes(obj: Any) -> bytes:
    import pickle

    return pickle.dumps(obj, protocol=2)
