"""A brute-force oracle for guards: every ranking (with and without ties) of up to 7 labels.

Independent of checkers.guard: rankings are enumerated, requirements are evaluated with
integer levels, satisfiability is also asked of Z3. Rankings are in decision order (level 0
is the decision: the highest score for argmax, the lowest for argmin).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch
import z3

from spec import ir


@functools.cache
def weak_orders(m: int) -> np.ndarray:
    """Every ranking of m labels with ties allowed: (W, m) int levels, 0 best (ordered set partitions)."""
    out = []
    for levels in itertools.product(range(m), repeat=m):
        used = sorted(set(levels))
        if used == list(range(len(used))):
            out.append(levels)
    return np.array(out, dtype=np.int64)


def _scores(levels: np.ndarray, decide: ir.Decide) -> np.ndarray:
    """Raw scores realising the levels: higher for better levels under argmax, lower under argmin."""
    return -levels if decide is ir.Decide.ARGMAX else levels


def meets(req: ir.Ordering, values: np.ndarray) -> np.ndarray:
    """(W,) bool: does each score row (W, m) meet the requirement (Order atoms only)?"""
    out = np.zeros(values.shape[0], dtype=bool)
    for conj in req.disjuncts:
        ok = np.ones(values.shape[0], dtype=bool)
        for atom in conj:
            assert isinstance(atom, ir.Order)
            hi, lo = values[:, atom.hi], values[:, atom.lo]
            ok &= hi > lo if atom.strict else hi >= lo
        out |= ok
    return out


def z3_satisfiable(reqs: list[ir.Ordering], m: int) -> bool:
    """Can real scores meet every requirement? (Z3, linear real arithmetic.)"""
    y = [z3.Real(f"y{i}") for i in range(m)]
    solver = z3.Solver()
    for req in reqs:
        disjuncts = []
        for conj in req.disjuncts:
            atoms = []
            for atom in conj:
                assert isinstance(atom, ir.Order)
                atoms.append(y[atom.hi] > y[atom.lo] if atom.strict else y[atom.hi] >= y[atom.lo])
            disjuncts.append(z3.And(*atoms))
        solver.add(z3.Or(*disjuncts) if disjuncts else z3.BoolVal(False))
    return bool(solver.check() == z3.sat)


class Oracle:
    """What a guard must do with the active requirements `reqs` on m labels."""

    def __init__(self, reqs: list[ir.Ordering], m: int, decide: ir.Decide) -> None:
        self.m, self.decide = m, decide
        levels = weak_orders(m)
        ok = np.ones(levels.shape[0], dtype=bool)
        for req in reqs:
            ok &= meets(req, _scores(levels, decide))
        self.levels = levels[ok]
        self.strict = self.levels[(np.sort(self.levels, axis=1) == np.arange(m)).all(axis=1)]

    @property
    def satisfiable(self) -> bool:
        return len(self.levels) > 0

    def can_keep_first(self, top: int) -> bool:
        """Does a satisfying ranking have `top` alone first (strict rankings when there are any)?"""
        pool = self.strict if len(self.strict) else self.levels
        alone = (pool[:, top] == 0) & ((pool == 0).sum(axis=1) == 1)
        return bool(alone.any())

    def best_strict(self, rank: np.ndarray) -> list[int]:
        """The satisfying strict ranking with the lexicographically smallest sequence of original ranks."""
        m = self.m
        weights = m ** (m - 1 - self.strict)  # label at level k weighs m**(m-1-k)
        codes = (weights * rank[None, :]).sum(axis=1)
        best = self.strict[int(np.argmin(codes))]
        return [int(label) for label in np.argsort(best)]


def decision_ranks(y: torch.Tensor, decide: ir.Decide) -> np.ndarray:
    """Rank of each label (0 = the decision), ties to the lowest index."""
    s = y if decide is ir.Decide.ARGMAX else -y
    order = sorted(range(len(s)), key=lambda i: (-float(s[i]), i))
    rank = np.empty(len(s), dtype=np.int64)
    rank[order] = np.arange(len(s))
    return rank


def expected_values(y: torch.Tensor, out: torch.Tensor, decide: ir.Decide) -> torch.Tensor:
    """The scores a re-ranking must give: y's sorted values in out's order, shifted to strict steps.

    Labels with equal output scores are read as a tie block (they keep the block's first value).
    Each step goes down to the next float below the one before (when the value is not already
    lower), but finite values stay finite: no position goes below the float that leaves one
    finite float for each strict step after it (counted up from the most negative finite float).
    Uses torch.nextafter, not the guard's arithmetic.
    """
    s, t = (y, out) if decide is ir.Decide.ARGMAX else (-y, -out)
    values = torch.sort(s, descending=True).values
    order = sorted(range(len(t)), key=lambda i: (-float(t[i]), i))
    strict = [k > 0 and bool(t[order[k]] != t[order[k - 1]]) for k in range(len(order))]
    down = torch.tensor(-math.inf, dtype=s.dtype)
    up = torch.tensor(math.inf, dtype=s.dtype)

    def floor(k: int) -> torch.Tensor:
        value = torch.tensor(torch.finfo(s.dtype).min, dtype=s.dtype)
        for _ in range(sum(strict[k + 1:])):
            value = torch.nextafter(value, up)
        return value

    w = [torch.maximum(values[0], floor(0))]
    for k in range(1, len(order)):
        if not strict[k]:
            w.append(w[-1])
        else:
            w.append(torch.maximum(torch.minimum(values[k], torch.nextafter(w[-1], down)), floor(k)))
    result = torch.empty_like(s)
    for k, label in enumerate(order):
        result[label] = w[k]
    return result if decide is ir.Decide.ARGMAX else -result
