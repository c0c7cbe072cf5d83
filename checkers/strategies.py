"""Hypothesis strategies for soundness tests of classifiers: inputs, networks, properties, scores.

    >>> from hypothesis import given
    >>> from checkers.strategies import inputs_in, networks, properties, scores
    >>> @given(networks(2, 3), properties(2, 3, kinds=("ordering",)))
    ... def test_mine(model, gen): ...

- `inputs_in(region)`: float32 points (tuples of Python floats, each exactly a float32) that
  really lie in the region: strict sides respected, half-spaces decided exactly. Corners,
  faces, the float32 neighbours of each face and half-space faces come up often. A
  `predicted in {...}` condition depends on the model and is NOT checked here.
- `networks(n, m)`: small float32 torch models (eval mode) mapping (B, n) to (B, m): ReLU
  `nn.Sequential`s (which the exact verifier, FGP and GloRo all read) and MinMax
  `LipschitzNet`s (GloRo only). Weights are sometimes on a grid of 1/4, which makes exact
  ties between scores likely.
- `properties(n, m)`: `GeneratedProperty(network, prop, text)`: a valid IR property and
  the text of a .prop file that `spec.load` lowers to exactly that network and property.
- `scores(m)`: float32 score vectors (torch tensors (m,)), ties included.

Every strategy validates its arguments and raises `hypothesis.errors.InvalidArgument`
naming the bad value.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from torch import nn

from checkers.semantics import VACUOUS, float32_box, float32_interval, in_part
from spec import canon, ir

__all__ = ["GeneratedProperty", "float32_inside", "inputs_in", "networks", "properties", "scores"]

_GRID = 16  # properties use multiples of 1/16: exact in binary and in decimal text


def _f32(v: float) -> float:
    return float(np.float32(v))


def _step(v: float, toward: float, k: int = 1) -> float:
    x = np.float32(v)
    for _ in range(k):
        x = np.nextafter(x, np.float32(toward))
    return float(x)


def float32_inside(lo: float, hi: float, lo_strict: bool = False, hi_strict: bool = False) -> tuple[float, float]:
    """The least and greatest float32 values in the interval (lo > hi when it holds none), exactly: the
    coordinate test of `checkers.semantics.float32_box` (`float32_interval`)."""
    return float32_interval(lo, hi, lo_strict, hi_strict)


def _coordinate(a: float, b: float) -> st.SearchStrategy[float]:
    """float32 values in [a, b]: the ends, their float32 neighbours inside, 0, the middle, and anything."""
    special = {a, b, _f32((a + b) / 2)}
    if a < 0.0 < b:
        special.add(0.0)
    for k in (1, 2):
        special.update(v for v in (_step(a, b, k), _step(b, a, k)) if a <= v <= b)
    return st.one_of(st.sampled_from(sorted(special)), st.floats(a, b, width=32))


def _point_ok(part: ir.RegionPart, x: Sequence[float]) -> bool:
    return bool(in_part(part, torch.tensor([list(x)], dtype=torch.float32))[0])


def _on_face(part: ir.RegionPart, lows: list[float], highs: list[float]) -> st.SearchStrategy[tuple[float, ...]]:
    """Points on (or a float32 step off) one of the part's half-space faces."""

    @st.composite
    def draw(d: st.DrawFn) -> tuple[float, ...]:
        x = [d(_coordinate(a, b)) for a, b in zip(lows, highs, strict=True)]
        h = d(st.sampled_from(part.halfspaces))
        i, c = d(st.sampled_from(h.coeffs))
        rest = sum(cj * x[j] for j, cj in h.coeffs if j != i)
        v = min(max(_f32((h.bound - rest) / c), lows[i]), highs[i])
        x[i] = d(st.sampled_from([v, _step(v, math.inf), _step(v, -math.inf)]))
        return tuple(x)

    return draw()


def _part_points(part: ir.RegionPart, bound: float) -> st.SearchStrategy[tuple[float, ...]] | None:
    n = len(part.box.lower)
    cut = ir.Box((-bound,) * n, (bound,) * n, (False,) * n, (False,) * n)
    box = float32_box(replace(part, box=part.box.intersect(cut)))
    if box is None:  # no float32 point (within the bound)
        return None
    lows, highs = list(box.lower), list(box.upper)
    inside = replace(part, predicted=None)
    coords = st.tuples(*(_coordinate(a, b) for a, b in zip(lows, highs, strict=True)))
    corners = st.tuples(*(st.sampled_from([a, b]) for a, b in zip(lows, highs, strict=True)))
    options = [coords, corners] + ([_on_face(part, lows, highs)] * 2 if part.halfspaces else [])
    return st.one_of(options).filter(lambda x: _point_ok(inside, x))


def inputs_in(region: ir.Region | ir.RegionPart | ir.Box, *, bound: float = 1e3) -> st.SearchStrategy[tuple[float, ...]]:
    """Float32 points in `region` (see the module docstring); an infinite side is cut at +-`bound`.

    Raises InvalidArgument when the region holds no float32 point (within the bound), as found by
    `checkers.semantics.float32_box` (the test every checker makes).
    """
    if not isinstance(bound, int | float) or not math.isfinite(bound) or bound <= 0:
        raise InvalidArgument(f"bound={bound!r} must be a finite number > 0")
    if isinstance(region, ir.Box):
        parts: tuple[ir.RegionPart, ...] = (ir.RegionPart(region),)
    elif isinstance(region, ir.RegionPart):
        parts = (region,)
    elif isinstance(region, ir.Region):
        parts = region.parts
    else:
        raise InvalidArgument(f"region={region!r} must be an ir.Region, ir.RegionPart or ir.Box")
    found = [s for s in (_part_points(p, bound) for p in parts) if s is not None]
    if not found:
        raise InvalidArgument(f"region={region!r} holds no float32 point within the bound {bound!r} ({VACUOUS}; "
                              "there is nothing to draw)")
    return st.one_of(found)


# ---------------------------------------------------------------- networks


def _sizes(name: str, value: tuple[int, int], least: int) -> tuple[int, int]:
    if (not isinstance(value, tuple) or len(value) != 2 or not all(isinstance(v, int) for v in value)
            or not least <= value[0] <= value[1]):
        raise InvalidArgument(f"{name}={value!r} must be a pair (lo, hi) of integers with {least} <= lo <= hi")
    return value


def _fill(layer: nn.Linear, gen: torch.Generator, scale: float, grid: bool) -> None:
    with torch.no_grad():
        bound = scale / layer.in_features**0.5
        for p in (layer.weight, layer.bias):
            values = (torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
            p.copy_((values * 4).round() / 4 if grid else values)


def networks(n_inputs: int, n_outputs: int, *, activations: Sequence[str] = ("relu", "minmax"),
             depth: tuple[int, int] = (1, 2), width: tuple[int, int] = (2, 6)) -> st.SearchStrategy[nn.Module]:
    """Small random float32 models (B, n_inputs) -> (B, n_outputs), in eval mode.

    Args:
        activations: "relu" (an nn.Sequential of Linear and ReLU) and/or "minmax" (a LipschitzNet
            with MinMax layers; hidden widths are made even).
        depth: the range of hidden layers; width: the range of hidden widths.
    """
    for name, v in (("n_inputs", n_inputs), ("n_outputs", n_outputs)):
        if not isinstance(v, int) or v < 1:
            raise InvalidArgument(f"{name}={v!r} must be a positive integer")
    bad = [a for a in activations if a not in ("relu", "minmax")]
    if bad or not activations:
        raise InvalidArgument(f"activations={activations!r} must name 'relu' and/or 'minmax'")
    lo_d, hi_d = _sizes("depth", depth, 0)
    lo_w, hi_w = _sizes("width", width, 1)

    @st.composite
    def draw(d: st.DrawFn) -> nn.Module:
        act = d(st.sampled_from(list(activations)))
        hidden = d(st.lists(st.integers(lo_w, hi_w), min_size=lo_d, max_size=hi_d))
        if act == "minmax":
            hidden = [w + w % 2 for w in hidden]
        seed = d(st.integers(0, 2**31 - 1))
        scale = d(st.sampled_from([0.5, 1.0, 2.0]))
        grid = d(st.booleans())
        return build_network(n_inputs, hidden, n_outputs, act, seed, scale, grid)

    return draw()


def build_network(n_inputs: int, hidden: Sequence[int], n_outputs: int, activation: str, seed: int,
                  scale: float = 1.0, grid: bool = False) -> nn.Module:
    """The model `networks` draws for these parameters (deterministic in `seed`)."""
    from checkers.lipschitz.layers import Linear as LLinear
    from checkers.lipschitz.layers import MinMax
    from checkers.lipschitz.network import LipschitzNet

    gen = torch.Generator().manual_seed(seed)
    sizes = [n_inputs, *hidden, n_outputs]
    minmax = activation == "minmax"
    linears = [(LLinear if minmax else nn.Linear)(a, b) for a, b in itertools.pairwise(sizes)]
    for lin in linears:
        _fill(lin, gen, scale, grid)
    body: list[nn.Module] = []
    for lin in linears[:-1]:
        body += [lin, MinMax() if minmax else nn.ReLU()]
    if minmax:
        return LipschitzNet((n_inputs,), body, linears[-1])
    return nn.Sequential(*body, linears[-1]).eval()


# ---------------------------------------------------------------- scores


def scores(m: int, *, ties: bool = True, bound: float = 100.0) -> st.SearchStrategy[torch.Tensor]:
    """Float32 score vectors (m,) with values in [-bound, bound]; with `ties`, equal scores are common."""
    if not isinstance(m, int) or m < 1:
        raise InvalidArgument(f"m={m!r} must be a positive integer")
    if not isinstance(bound, int | float) or not math.isfinite(bound) or bound <= 0:
        raise InvalidArgument(f"bound={bound!r} must be a finite number > 0")
    value = st.floats(-bound, bound, width=32)
    if not ties:
        return st.lists(value, min_size=m, max_size=m).map(lambda v: torch.tensor(v, dtype=torch.float32))

    @st.composite
    def draw(d: st.DrawFn) -> torch.Tensor:
        pool = d(st.lists(value, min_size=1, max_size=m))
        near = [_step(pool[0], math.inf), _step(pool[0], -math.inf)]
        picks = d(st.lists(st.sampled_from(pool + near), min_size=m, max_size=m))
        return torch.tensor(picks, dtype=torch.float32)

    return draw()


# ---------------------------------------------------------------- properties


@dataclass(frozen=True)
class GeneratedProperty:
    """A network declaration and one property on it, as IR and as the text of a .prop file."""

    network: ir.Network
    prop: ir.Property
    text: str


def _num(v: float) -> str:
    return repr(float(v))


def _terms(coeffs: Sequence[tuple[int, float]], var: str) -> str:
    out = ""
    for k, (i, c) in enumerate(coeffs):
        sign = "-" if c < 0 else "+"
        out += (("- " if c < 0 else "") if k == 0 else f" {sign} ") + f"{_num(abs(c))} * {var}[{i}]"
    return out


@functools.lru_cache(maxsize=4096)  # one strategy object per range: Hypothesis validates each new one
def _grid(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.integers(math.ceil(lo * _GRID), math.floor(hi * _GRID)).map(lambda k: k / _GRID)


@functools.lru_cache(maxsize=256)
def _coeffs(n: int, least: int) -> st.SearchStrategy[tuple[tuple[int, float], ...]]:
    nonzero = st.sampled_from([-2.0, -1.0, -0.5, 0.25, 0.5, 1.0, 1.5])
    return st.lists(st.tuples(st.integers(0, n - 1), nonzero), min_size=least, max_size=min(n, 3),
                    unique_by=lambda t: t[0]).map(lambda ts: tuple(sorted(ts)))


@st.composite
def _part(d: st.DrawFn, n: int, lo: float, hi: float) -> tuple[ir.RegionPart, str]:
    lower, upper, ls, us, text = [lo] * n, [hi] * n, [False] * n, [False] * n, []
    for i in d(st.lists(st.integers(0, n - 1), max_size=n, unique=True)):
        a, b = sorted(d(st.lists(_grid(lo, hi), min_size=2, max_size=2, unique=True)))
        sa, sb = d(st.booleans()), d(st.booleans())
        lower[i], upper[i], ls[i], us[i] = a, b, sa, sb
        text.append(f"x[{i}] in {'(' if sa else '['}{_num(a)}, {_num(b)}{')' if sb else ']'}")
    halfspaces = []
    if n >= 2 and d(st.booleans()):
        coeffs = d(_coeffs(n, 2))
        least = sum(c * (lower[i] if c > 0 else upper[i]) for i, c in coeffs)  # the closed box's minimum
        above = (math.floor(least * _GRID) + 1) / _GRID  # > least: the part is not empty
        bound, strict = d(_grid(above, max(1.0, least + 1.0))), d(st.booleans())
        halfspaces.append(ir.HalfSpace(coeffs, bound, strict))
        text.append(f"{_terms(coeffs, 'x')} {'<' if strict else '<='} {_num(bound)}")
    box = ir.Box(tuple(lower), tuple(upper), tuple(ls), tuple(us))
    return ir.RegionPart(box, tuple(halfspaces)), " and ".join(text) or f"x[0] in [{_num(lo)}, {_num(hi)}]"


@st.composite
def _atom(d: st.DrawFn, m: int, linear: bool) -> tuple[ir.Atom, str]:
    if linear and d(st.integers(0, 3)) == 0:
        coeffs = d(_coeffs(m, 1))
        bound, strict = d(_grid(-4.0, 4.0)), d(st.booleans())
        atom = canon.output_atom(dict(coeffs), bound, strict)
        text = f"{_terms(coeffs, 'y')} {'<' if strict else '<='} {_num(bound)}"
    else:
        hi, lo = d(st.lists(st.integers(0, m - 1), min_size=2, max_size=2, unique=True))
        strict = d(st.booleans())
        atom = canon.output_atom({lo: 1.0, hi: -1.0}, 0.0, strict)  # y[hi] > y[lo]: y[lo] - y[hi] < 0
        text = f"y[{hi}] {'>' if strict else '>='} y[{lo}]"
    assert not isinstance(atom, bool)  # never constant: every atom has a nonzero coefficient
    return atom, text


def properties(n_inputs: int, n_outputs: int, *, kinds: Sequence[str] = ("ordering", "robust"),
               domain: tuple[float, float] = (-1.0, 1.0), linear: bool = True, max_parts: int = 2,
               max_disjuncts: int = 2, name: str = "p") -> st.SearchStrategy[GeneratedProperty]:
    """Random valid properties on a network `net : real[n_inputs] -> real[n_outputs]` with domain x[*] in `domain`.

    Args:
        kinds: "ordering" (regions of boxes, strict and non-strict sides, half-spaces, and a DNF
            of score comparisons), "robust" (local robustness at 1 to 3 points, l2 or linf) and
            "topk" (relaxed top-k robustness at points) and "affinity" (`robust within {..}, {..}` at
            points: disjoint label sets, not always covering every label).
        linear: allow `Linear` output constraints (y[0] - 2 * y[1] <= 0.5) in orderings.
        Numbers are multiples of 1/16, so the text is exact.
    """
    for label, v in (("n_inputs", n_inputs), ("n_outputs", n_outputs)):
        if not isinstance(v, int) or v < (1 if label == "n_inputs" else 2):
            raise InvalidArgument(f"{label}={v!r} must be an integer >= {1 if label == 'n_inputs' else 2}")
    bad = [k for k in kinds if k not in ("ordering", "robust", "topk", "affinity")]
    if bad or not kinds:
        raise InvalidArgument(f"kinds={kinds!r} must name 'ordering', 'robust', 'topk' and/or 'affinity'")
    lo, hi = domain
    if not (math.isfinite(lo) and math.isfinite(hi) and math.ceil(lo * _GRID) < math.floor(hi * _GRID)):
        raise InvalidArgument(f"domain={domain!r} must be a finite interval holding two multiples of 1/{_GRID}")
    for label, v in (("max_parts", max_parts), ("max_disjuncts", max_disjuncts)):
        if not isinstance(v, int) or v < 1:
            raise InvalidArgument(f"{label}={v!r} must be a positive integer")
    if not name.isidentifier():
        raise InvalidArgument(f"name={name!r} must be an identifier")
    net = ir.Network("net", (n_inputs,), (n_outputs,), tuple(f"y[{j}]" for j in range(n_outputs)),
                     tuple(f"x[{i}]" for i in range(n_inputs)),
                     ir.Box((lo,) * n_inputs, (hi,) * n_inputs, (False,) * n_inputs, (False,) * n_inputs))
    head = f"network net : real[{n_inputs}] -> real[{n_outputs}]\n  domain x[*] in [{_num(lo)}, {_num(hi)}]\n"

    # built once: a strategy is validated on its first draw, which costs more than the draw
    kind_s = st.sampled_from(list(kinds))
    parts_s = st.lists(_part(n_inputs, lo, hi), min_size=1, max_size=max_parts)
    conjs_s = st.lists(st.lists(_atom(n_outputs, linear), min_size=1, max_size=2), min_size=1, max_size=max_disjuncts)
    points_s = st.lists(st.tuples(*[_grid(lo, hi)] * n_inputs), min_size=1, max_size=3)
    eps_s = st.sampled_from([1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2])
    norm_s = st.sampled_from(list(ir.Norm))
    k_s = st.integers(1, n_outputs - 1)
    # affinity: some labels (a permutation's prefix) cut into consecutive non-empty groups
    perm_s = st.permutations(range(n_outputs))
    cuts_s = st.integers(1, n_outputs).flatmap(
        lambda size: st.tuples(st.just(size), st.frozensets(st.integers(1, size - 1)) if size > 1 else st.just(frozenset())))

    @st.composite
    def draw(d: st.DrawFn) -> GeneratedProperty:
        kind = d(kind_s)
        if kind == "ordering":
            parts = d(parts_s)
            conjs = d(conjs_s)
            region = ir.Region(tuple(dict.fromkeys(p for p, _ in parts)))
            dnf = canon.dnf_any(canon.dnf_all(canon.dnf_of(a) for a, _ in c) for c in conjs)
            req: ir.Requirement = canon.ordering(dnf)
            body = (f"  when {' or '.join(t for _, t in parts)}\n"
                    f"  require {' or '.join(' and '.join(t for _, t in c) for c in conjs)}\n")
        else:
            points = d(points_s)
            eps = d(eps_s)
            norm = d(norm_s)
            rkind: ir.RobustKind = ir.Local()
            top = ""
            if kind == "topk":
                k = d(k_s)
                rkind, top = ir.TopK(k), f"top {k} "
            elif kind == "affinity":
                perm, (size, cuts) = d(perm_s), d(cuts_s)
                ends = [0, *sorted(cuts), size]
                sets = tuple(tuple(sorted(perm[a:b])) for a, b in itertools.pairwise(ends))
                rkind = ir.Affinity(sets)
                top = "within " + ", ".join("{" + ", ".join(f"y[{j}]" for j in g) + "}" for g in sets) + " "
            region = ir.Region((ir.RegionPart(net.domain),))
            req = ir.Robust(rkind, eps, norm, tuple(points))
            at = ", ".join("[" + ", ".join(_num(v) for v in p) + "]" for p in points)
            body = f"  robust {top}eps {_num(eps)} norm {norm.value} at {at}\n"
        prop = ir.Property(name, "net", region, req)
        return GeneratedProperty(net, prop, f"{head}property {name}:\n{body}")

    return draw()
