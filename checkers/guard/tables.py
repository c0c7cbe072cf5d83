"""Safe-ordering properties compiled to the tensors a guard runs on.

Everything the guard needs at run time is a tensor here (moved with the module to a
device); this module is the only place that reads the IR. Scores are handled in *decision
space*: s = y for an argmax network, s = -y for an argmin one, so "a ranks before b" is
always s[a] > s[b]. An `Order(hi, lo)` atom (y[hi] > y[lo]) becomes the edge hi -> lo for
argmax and lo -> hi for argmin: "the tail must rank before the head".

What cannot be enforced by re-ranking is a `GuardError` naming the property: a `Linear`
atom (such as `COC < 1500`), and a robustness requirement. A property whose requirement is
always true is dropped; one whose requirement is false (no satisfiable disjunct) is kept:
where it is active the guard abstains.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from spec import ir
from spec.errors import GuardError, Span

Edge = tuple[int, int, bool]  # (tail, head, strict): s[tail] > s[head], or >= when not strict
DEFAULT_MAX_COMBINATIONS = 256


TABLE_MAX_LABELS = 6
ENGINES = ("auto", "table", "greedy")


@dataclass(frozen=True)
class GuardOptions:
    """How hard the guard tries, and how.

    max_combinations: at most this many combinations of disjuncts (one per active
    property) are tried per input by the greedy engine and the tie fallback. When an
    input's active properties have more, only the first ones (in a fixed order) are tried,
    and if none can be satisfied the guard abstains with reason `CAP` (it does not claim
    the properties are unsatisfiable).
    engine: how the strict ranking is found. "table" checks every permutation of the
    labels at once (exact and complete, no cap; up to 6 labels: 720 permutations);
    "greedy" runs one stable topological sort per combination of disjuncts (any number of
    labels); "auto" takes "table" up to 6 labels. Both give the same ranking.
    """

    max_combinations: int = DEFAULT_MAX_COMBINATIONS
    engine: str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise GuardError(f"engine={self.engine!r} must be one of {', '.join(map(repr, ENGINES))}")
        if isinstance(self.max_combinations, bool) or not isinstance(self.max_combinations, int):
            raise GuardError(f"max_combinations={self.max_combinations!r} must be an integer")
        if not 1 <= self.max_combinations <= 1 << 16:
            raise GuardError(f"max_combinations={self.max_combinations!r} must be in 1..65536")


@dataclass(frozen=True)
class GuardPlan:
    """The properties of one network in decision space, before they become tensors."""

    network: ir.Network
    names: tuple[str, ...]  # the guarded properties (always-true ones dropped)
    parts: tuple[tuple[int, ir.RegionPart], ...]  # (property index, part)
    disjuncts: tuple[tuple[int, tuple[Edge, ...]], ...]  # (property index, edges), satisfiable ones only
    max_slots: int  # at most this many properties are active at once
    combinations: int  # combinations of disjuncts tried per input
    options: GuardOptions

    @property
    def n_properties(self) -> int:
        return len(self.names)


def _fail(prop: ir.Property, message: str, spans: Mapping[str, Span] | None) -> GuardError:
    span = spans.get(prop.name) if spans else None
    return GuardError(f"property {prop.name}: {message}", span)


def _edges(conj: tuple[ir.Atom, ...], prop: ir.Property, net: ir.Network,
           spans: Mapping[str, Span] | None) -> tuple[Edge, ...]:
    out: list[Edge] = []
    for atom in conj:
        if isinstance(atom, ir.Linear):
            raise _fail(prop, f"`{ir.atom_str(atom)}` (normalised units) compares scores with a constant; a guard "
                        "only re-ranks scores, so it can enforce comparisons between labels but not this: verify it "
                        "instead (certspec verify), or leave the property out of the guard", spans)
        if net.decide is ir.Decide.ARGMAX:
            out.append((atom.hi, atom.lo, atom.strict))
        else:
            out.append((atom.lo, atom.hi, atom.strict))
    return tuple(sorted(set(out)))


def satisfiable(edges: Sequence[Edge], m: int) -> bool:
    """Can scores meet every edge? Exactly when no cycle goes through a strict edge."""
    reach = [[i == j for j in range(m)] for i in range(m)]
    for a, b, _ in edges:
        reach[a][b] = True
    for k, i, j in itertools.product(range(m), repeat=3):  # Floyd-Warshall order: k outermost
        if reach[i][k] and reach[k][j]:
            reach[i][j] = True
    return not any(strict and reach[b][a] for a, b, strict in edges)


def _overlap(p: ir.RegionPart, q: ir.RegionPart) -> bool:
    """Could one input be in both parts? (boxes and predicted sets only: an over-approximation)."""
    for lo1, hi1, lo2, hi2 in zip(p.box.lower, p.box.upper, q.box.lower, q.box.upper, strict=True):
        if max(lo1, lo2) > min(hi1, hi2):
            return False
    return not (p.predicted is not None and q.predicted is not None and not set(p.predicted) & set(q.predicted))


def _co_active(parts: Sequence[tuple[int, ir.RegionPart]], count: int) -> list[set[int]]:
    """For each property, the properties that may be active at the same input (itself included)."""
    near = [{p} for p in range(count)]
    for (p, a), (q, b) in itertools.combinations(parts, 2):
        if p != q and _overlap(a, b):
            near[p].add(q)
            near[q].add(p)
    return near


def plan(properties: Sequence[ir.Property], network: ir.Network, options: GuardOptions | None = None,
         spans: Mapping[str, Span] | None = None) -> GuardPlan:
    """Check that every property can be guarded on `network` and put it in decision space.

    Raises GuardError (with the span from `spans[name]` when given) for a property about
    another network, a robustness property, or an output comparison with a constant.
    """
    options = options or GuardOptions()
    names: list[str] = []
    parts: list[tuple[int, ir.RegionPart]] = []
    disjuncts: list[tuple[int, tuple[Edge, ...]]] = []
    counts: list[int] = []
    seen: set[str] = set()
    for prop in properties:
        if prop.name in seen:
            raise _fail(prop, "is given twice", spans)
        seen.add(prop.name)
        if prop.target != network.name:
            raise _fail(prop, f"is about {prop.target!r}, not the guarded network {network.name!r}", spans)
        req = prop.requirement
        if not isinstance(req, ir.Ordering):
            raise _fail(prop, "is a robustness property; a guard enforces safe-ordering requirements only", spans)
        conjs = [_edges(conj, prop, network, spans) for conj in req.disjuncts]
        if any(not c for c in conjs):
            continue  # always true: nothing to enforce
        index = len(names)
        names.append(prop.name)
        parts.extend((index, part) for part in prop.region.parts)
        kept = [c for c in dict.fromkeys(conjs) if satisfiable(c, network.n_outputs)]
        disjuncts.extend((index, c) for c in kept)
        counts.append(len(kept))
    near = _co_active(parts, len(names))
    slots = max((len(s) for s in near), default=1)
    bound = max((math.prod(max(counts[q], 1) for q in s) for s in near), default=1)
    return GuardPlan(network, tuple(names), tuple(parts), tuple(disjuncts), max(slots, 1),
                     max(1, min(bound, options.max_combinations)), options)


# ---------------------------------------------------------------- tensors


def _outward32(values: Sequence[float], up: bool) -> torch.Tensor:
    """float64 bounds rounded to float32 so that, for a float32 x, x >= lower32 iff x >= lower (up=True)."""
    exact = torch.tensor(values, dtype=torch.float64)
    near = exact.to(torch.float32)
    if up:
        return torch.where(near.double() < exact, torch.nextafter(near, torch.tensor(math.inf)), near)
    return torch.where(near.double() > exact, torch.nextafter(near, torch.tensor(-math.inf)), near)


def _box_tensors(boxes: Sequence[ir.Box], n: int) -> dict[str, torch.Tensor]:
    """Closed bounds equivalent to each box, strict sides moved to the next float (exact for such inputs)."""
    lower = torch.tensor([b.lower for b in boxes], dtype=torch.float64).reshape(len(boxes), n)
    upper = torch.tensor([b.upper for b in boxes], dtype=torch.float64).reshape(len(boxes), n)
    ls = torch.tensor([b.lower_strict for b in boxes], dtype=torch.bool).reshape(len(boxes), n)
    us = torch.tensor([b.upper_strict for b in boxes], dtype=torch.bool).reshape(len(boxes), n)
    lower64 = torch.where(ls, torch.nextafter(lower, torch.tensor(math.inf, dtype=torch.float64)), lower)
    upper64 = torch.where(us, torch.nextafter(upper, torch.tensor(-math.inf, dtype=torch.float64)), upper)
    flat_lo, flat_hi = lower64.flatten().tolist(), upper64.flatten().tolist()
    lower32 = _outward32(flat_lo, up=True).reshape(len(boxes), n)
    upper32 = _outward32(flat_hi, up=False).reshape(len(boxes), n)
    big32, big64 = torch.finfo(torch.float32).max, torch.finfo(torch.float64).max
    return {  # a column (Q * n, 1), infinite bounds as the largest finite float (see regions.in_boxes)
        "box_lower64": lower64.clamp(-big64, big64).reshape(-1, 1),
        "box_upper64": upper64.clamp(-big64, big64).reshape(-1, 1),
        "box_lower32": lower32.clamp(-big32, big32).reshape(-1, 1),
        "box_upper32": upper32.clamp(-big32, big32).reshape(-1, 1),
    }


def _split18(c: float) -> tuple[float, float, float]:
    """c = c1 + c2 + c3 exactly, each with at most 18 significant bits (so c_k * x is exact for x of 35 bits)."""
    parts = []
    rest = c
    for _ in range(2):
        if rest == 0.0:
            parts.append(0.0)
            continue
        mant, exp = math.frexp(rest)
        head = math.ldexp(math.trunc(mant * 2**18), exp - 18)
        parts.append(head)
        rest -= head  # exact: head is rest truncated
    parts.append(rest)
    return parts[0], parts[1], parts[2]


def _halfspace_tensors(parts: Sequence[tuple[int, ir.RegionPart]], n: int) -> dict[str, torch.Tensor]:
    rows = [(q, h) for q, (_, part) in enumerate(parts) for h in part.halfspaces]
    width = max((len(h.coeffs) for _, h in rows), default=1)
    index = torch.zeros(len(rows), width, dtype=torch.long)
    coeff = torch.zeros(3, len(rows), width, dtype=torch.float64)
    for r, (_, h) in enumerate(rows):
        for j, (i, c) in enumerate(h.coeffs):
            index[r, j] = i
            for k, piece in enumerate(_split18(c)):
                coeff[k, r, j] = piece
    member = torch.zeros(len(rows), len(parts))
    for r, (q, _) in enumerate(rows):
        member[r, q] = 1.0
    return {
        "hs_index": index, "hs_coeff": coeff, "hs_member": member,
        "hs_bound": torch.tensor([h.bound for _, h in rows], dtype=torch.float64),
        "hs_strict": torch.tensor([h.strict for _, h in rows], dtype=torch.bool),
    }


def _blocks(edges: tuple[Edge, ...]) -> list[tuple[frozenset[int], frozenset[int], bool]]:
    """Edges grouped into blocks (A, B, strict): every label of A before every label of B."""
    heads: dict[tuple[int, bool], set[int]] = {}
    for a, b, strict in edges:
        heads.setdefault((a, strict), set()).add(b)
    tails: dict[tuple[frozenset[int], bool], set[int]] = {}
    for (a, strict), bs in heads.items():
        tails.setdefault((frozenset(bs), strict), set()).add(a)
    return sorted(((frozenset(a), bs, strict) for (bs, strict), a in tails.items()),
                  key=lambda blk: (sorted(blk[0]), sorted(blk[1]), blk[2]))


def _padded(sets: Sequence[Sequence[int]]) -> torch.Tensor:
    """Label sets as rows of indices, each padded by repeating its first label (min and max unchanged)."""
    width = max((len(s) for s in sets), default=1)
    return torch.tensor([[*s, *([s[0]] * (width - len(s)))] for s in sets], dtype=torch.long).reshape(len(sets), width)


def _check_tensors(gp: GuardPlan) -> dict[str, torch.Tensor]:
    """Pairs (one label before another) and wide blocks, strict ones first, and their disjuncts.

    A disjunct holds iff every pair and block of it holds; `disj_checks` lists them (pairs
    numbered first, then blocks).
    """
    d_count = len(gp.disjuncts)
    pairs: dict[Edge, int] = {}
    wide: dict[tuple[tuple[int, ...], tuple[int, ...], bool], int] = {}
    member: list[tuple[str, tuple[object, ...], int]] = []
    for d, (_, edges) in enumerate(gp.disjuncts):
        for a_set, b_set, strict in _blocks(edges):
            if len(a_set) == 1 and len(b_set) == 1:
                key = (next(iter(a_set)), next(iter(b_set)), strict)
                pairs.setdefault(key, 0)
                member.append(("pair", key, d))
            else:
                wkey = (tuple(sorted(a_set)), tuple(sorted(b_set)), strict)
                wide.setdefault(wkey, 0)
                member.append(("wide", wkey, d))
    pair_list = sorted(pairs, key=lambda e: (not e[2], e))
    wide_list = sorted(wide, key=lambda w: (not w[2], w))
    where: dict[tuple[str, tuple[object, ...]], int] = {("pair", k): i for i, k in enumerate(pair_list)}
    where.update({("wide", k): len(pair_list) + i for i, k in enumerate(wide_list)})
    checks: list[list[int]] = [[] for _ in range(d_count)]
    for kind, found, d in member:
        checks[d].append(where[(kind, found)])
    return {
        "pair_tail": torch.tensor([e[0] for e in pair_list], dtype=torch.long),
        "pair_head": torch.tensor([e[1] for e in pair_list], dtype=torch.long),
        "pair_strict": torch.tensor([e[2] for e in pair_list], dtype=torch.bool),
        "wide_tail": _padded([w[0] for w in wide_list]),
        "wide_head": _padded([w[1] for w in wide_list]),
        "wide_strict": torch.tensor([w[2] for w in wide_list], dtype=torch.bool),
        "disj_checks": _padded(checks),  # (D, C) the checks of each disjunct
    }


def use_table(gp: GuardPlan) -> bool:
    """Does the guard rank with the permutation table (see GuardOptions.engine)?"""
    m, engine = gp.network.n_outputs, gp.options.engine
    if engine == "table" and m > TABLE_MAX_LABELS:
        raise GuardError(f"engine='table' handles up to {TABLE_MAX_LABELS} labels; network {gp.network.name} has {m}")
    return engine == "table" or (engine == "auto" and m <= TABLE_MAX_LABELS)


def _permutation_tensors(gp: GuardPlan) -> dict[str, torch.Tensor]:
    """Every strict ranking of the labels, its weight for the lexicographic measure, and the properties it breaks."""
    m = gp.network.n_outputs
    perms = list(itertools.permutations(range(m)))  # labels, best first
    bad = torch.zeros(gp.n_properties, len(perms))
    by_prop: dict[int, list[tuple[Edge, ...]]] = {p: [] for p in range(gp.n_properties)}
    for p, edges in gp.disjuncts:
        by_prop[p].append(edges)
    weight = torch.zeros(m, len(perms), dtype=torch.float64)
    for k, order in enumerate(perms):
        position = {label: i for i, label in enumerate(order)}
        for label, i in position.items():
            weight[label, k] = float(m ** (m - 1 - i))  # label at position i weighs m**(m-1-i)
        for p, conjs in by_prop.items():
            if not any(all(position[a] < position[b] for a, b, _ in c) for c in conjs):
                bad[p, k] = 1.0
    return {"perm_order": torch.tensor(perms, dtype=torch.long).reshape(len(perms), m), "perm_weight": weight,
            "perm_bad": bad}


def tensors(gp: GuardPlan) -> dict[str, torch.Tensor]:
    """Every table of the guard, by name (the buffers of `GuardLayer`)."""
    net = gp.network
    n, m, count = net.n_inputs, net.n_outputs, gp.n_properties
    parts = [part for _, part in gp.parts]
    out = _box_tensors([p.box for p in parts], n)
    out.update(_halfspace_tensors(gp.parts, n))
    part_prop = torch.zeros(len(parts), count)
    allowed = torch.ones(m, len(parts), dtype=torch.bool)
    for q, (p, part) in enumerate(gp.parts):
        part_prop[q, p] = 1.0
        if part.predicted is not None:
            allowed[:, q] = False
            allowed[list(part.predicted), q] = True
    out.update({"part_prop": part_prop, "part_allowed": allowed})
    out.update(_check_tensors(gp))
    edges = torch.zeros(len(gp.disjuncts) + 1, m, m)  # the last one is empty: "no property in this slot"
    strict = torch.zeros(len(gp.disjuncts) + 1, m, m, dtype=torch.bool)
    ndisj = torch.zeros(count, dtype=torch.long)
    first = torch.zeros(count, dtype=torch.long)
    for d, (p, es) in enumerate(gp.disjuncts):
        if ndisj[p] == 0:
            first[p] = d
        ndisj[p] += 1
        for a, b, s in es:
            edges[d, a, b] += 1.0
            strict[d, a, b] |= s
    d_count = len(gp.disjuncts)  # index d_count: a disjunct that never holds (for a false requirement)
    if use_table(gp):
        out.update(_permutation_tensors(gp))
    out.update({
        "prop_disj": _padded([list(range(int(first[p]), int(first[p] + ndisj[p]))) or [d_count]
                              for p in range(count)]),
        "edges": edges, "edges_strict": strict, "prop_first": first, "prop_count": ndisj,
    })
    return out
