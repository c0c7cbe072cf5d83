"""The guard as torch modules: `GuardLayer` (scores in, guarded scores out) and `Guarded` (a model wrapped).

Output: (B, m + 1) scores in the model's dtype: the m guarded scores, then a bottom score
that is the decision exactly when the guard abstains (+inf for an argmax network, -inf for
argmin; otherwise the opposite infinity). When it abstains the m scores are the model's own.
`explain` returns the same with the flags: abstained, reason, active properties.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from checkers.guard import ranking, regions
from checkers.guard.tables import GuardOptions, GuardPlan, plan, tensors
from spec import ir
from spec.errors import Span, UsageError


class Reason(enum.IntEnum):
    """Why the guard returned what it did, per input (GuardResult.reason)."""

    UNCHANGED = 0  # every active property already holds: the scores are returned as they are
    RERANKED = 1  # re-ranked (and minimally shifted) so that every active property holds
    UNSATISFIABLE = 2  # abstained: no ranking satisfies the active properties (all combinations tried)
    CAP = 3  # abstained: none of the combinations tried works, and not all could be tried
    NONFINITE = 4  # abstained: a score to re-rank is inf or NaN
    UNVERIFIED = 5  # abstained: the re-ranked scores failed the final exact check (never expected)


@dataclass(frozen=True)
class GuardResult:
    """What the guard did to a batch: every tensor's first dimension is the batch."""

    scores: torch.Tensor  # (B, m) guarded scores (the model's scores where abstained)
    bottom: torch.Tensor  # (B,) the extra bottom score
    abstained: torch.Tensor  # (B,) bool
    reason: torch.Tensor  # (B,) int8, a `Reason`
    active: torch.Tensor  # (B, P) bool, properties in `GuardLayer.names` order
    original: torch.Tensor  # (B, m) the scores before the guard

    def output(self) -> torch.Tensor:
        """(B, m + 1): what `forward` returns."""
        return torch.cat([self.scores, self.bottom.unsqueeze(1)], dim=1)


class GuardLayer(nn.Module):
    """Enforces safe-ordering properties on scores (see `checkers.guard` for the guarantees)."""

    box_lower64: torch.Tensor
    box_upper64: torch.Tensor
    box_lower32: torch.Tensor
    box_upper32: torch.Tensor
    hs_index: torch.Tensor
    hs_coeff: torch.Tensor
    hs_member: torch.Tensor
    hs_bound: torch.Tensor
    hs_strict: torch.Tensor
    part_prop: torch.Tensor
    part_allowed: torch.Tensor
    pair_tail: torch.Tensor
    pair_head: torch.Tensor
    pair_strict: torch.Tensor
    pair_member: torch.Tensor
    wide_tail: torch.Tensor
    wide_head: torch.Tensor
    wide_strict: torch.Tensor
    wide_member: torch.Tensor
    disj_prop: torch.Tensor
    edges: torch.Tensor
    edges_strict: torch.Tensor
    prop_first: torch.Tensor
    prop_count: torch.Tensor
    edges_flat: torch.Tensor
    indegree: torch.Tensor

    def __init__(self, properties: Sequence[ir.Property], network: ir.Network, options: GuardOptions | None = None,
                 spans: dict[str, Span] | None = None) -> None:
        super().__init__()
        self.options = options or GuardOptions()
        self.plan: GuardPlan = plan(properties, network, self.options, spans)
        self.properties = tuple(properties)
        self.network = network
        self.names = self.plan.names
        self.n_inputs, self.n_outputs = network.n_inputs, network.n_outputs
        self.argmin = network.decide is ir.Decide.ARGMIN
        self.slots, self.count = self.plan.max_slots, self.plan.combinations
        for name, value in tensors(self.plan).items():
            self.register_buffer(name, value)
        m = self.n_outputs
        self.register_buffer("edges_flat", self.edges.reshape(-1, m))
        self.register_buffer("indegree", self.edges.sum(dim=1))
        self.n_pairs, self.n_wide = int(self.pair_tail.shape[0]), int(self.wide_strict.shape[0])
        self.n_halfspaces = int(self.hs_bound.shape[0])
        self.has_predicted = bool((~self.part_allowed).any())

    # ------------------------------------------------------------ pieces

    def _check(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.n_inputs or not x.is_floating_point():
            raise UsageError(f"the guard takes float inputs of shape (batch, {self.n_inputs}), got {x.dtype} "
                             f"{list(x.shape)}")
        if y.dim() != 2 or y.shape[1] != self.n_outputs or y.shape[0] != x.shape[0] or not y.is_floating_point():
            raise UsageError(f"the guard takes float scores of shape ({x.shape[0]}, {self.n_outputs}), got {y.dtype} "
                             f"{list(y.shape)}")

    def active(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """(B, P) bool: which properties' preconditions hold (s: the original scores, decision space)."""
        if x.dtype == torch.float64:
            inside = regions.in_boxes(x, self.box_lower64, self.box_upper64)
        else:
            inside = regions.in_boxes(x, self.box_lower32, self.box_upper32)
        if self.n_halfspaces:
            met = regions.in_halfspaces(x, self.hs_index, self.hs_coeff, self.hs_bound, self.hs_strict)
            inside = inside & ((~met).to(torch.float32) @ self.hs_member == 0)
        if self.has_predicted:
            inside = inside & self.part_allowed[s.argmax(dim=1)]
        return inside.to(torch.float32) @ self.part_prop > 0

    def satisfied(self, s: torch.Tensor) -> torch.Tensor:
        """(B, P) bool: does each property's requirement hold on scores s (decision space)? Exact."""
        fails = torch.zeros(s.shape[0], self.disj_prop.shape[0], device=s.device)
        if self.n_pairs:
            a, b = s[:, self.pair_tail], s[:, self.pair_head]
            ok = torch.where(self.pair_strict, a > b, a >= b)
            fails = fails + (~ok).to(torch.float32) @ self.pair_member
        if self.n_wide:
            se = s.unsqueeze(1)
            low = torch.where(self.wide_tail, se, torch.inf).amin(dim=2)
            high = torch.where(self.wide_head, se, -torch.inf).amax(dim=2)
            ok = torch.where(self.wide_strict, low > high, low >= high)
            fails = fails + (~ok).to(torch.float32) @ self.wide_member
        return (fails == 0).to(torch.float32) @ self.disj_prop > 0

    def _correct(self, s: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Re-rank the rows that need it: (new scores, reason) for each row."""
        values, rank = ranking.ranks(s)
        chosen, valid, complete = ranking.combinations(active, self.prop_first, self.prop_count, self.slots,
                                                       self.count, empty=self.edges.shape[0] - 1)
        found, order = ranking.strict_order(self.edges_flat, self.indegree, chosen, valid, rank)
        tied = torch.zeros_like(order, dtype=torch.bool)
        miss = (~found).nonzero().squeeze(1)
        if ranking.tracing() or miss.numel() > 0:
            f2, o2, t2 = ranking.tied_order(self.edges, self.edges_strict, chosen[miss], valid[miss], rank[miss])
            found = found.index_copy(0, miss, f2)
            order = order.index_copy(0, miss, o2)
            tied = tied.index_copy(0, miss, t2)
        finite = torch.isfinite(s).all(dim=1)
        new = ranking.assign(values, order, tied)
        good = found & finite & (self.satisfied(new) | ~active).all(dim=1)
        reason = torch.where(good, int(Reason.RERANKED), int(Reason.UNVERIFIED))
        reason = torch.where(~found, torch.where(complete, int(Reason.UNSATISFIABLE), int(Reason.CAP)), reason)
        reason = torch.where(~finite, int(Reason.NONFINITE), reason)
        return torch.where(good.unsqueeze(1), new, s), reason.to(torch.int8)

    # ------------------------------------------------------------ entry points

    def explain(self, x: torch.Tensor, y: torch.Tensor) -> GuardResult:
        """Guard the scores y (B, m) of inputs x (B, n), with every flag."""
        self._check(x, y)
        s = -y if self.argmin else y
        batch = s.shape[0]
        reason = torch.zeros(batch, dtype=torch.int8, device=s.device)
        if not self.names:
            active = torch.zeros(batch, 0, dtype=torch.bool, device=s.device)
            out = s
        else:
            active = self.active(x, s)
            need = (active & ~self.satisfied(s)).any(dim=1).nonzero().squeeze(1)
            out = s
            if ranking.tracing() or need.numel() > 0:
                fixed, why = self._correct(s[need], active[need])
                out = s.index_copy(0, need, fixed)
                reason = reason.index_copy(0, need, why)
        abstained = reason >= int(Reason.UNSATISFIABLE)
        bottom = torch.where(abstained, torch.inf, -torch.inf).to(s.dtype)
        if self.argmin:
            out, bottom = -out, -bottom
        return GuardResult(out, bottom, abstained, reason, active, y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.explain(x, y).output()


class Guarded(nn.Module):
    """A model (flat (B, n) inputs to (B, m) scores) and its guard: (B, n) -> (B, m + 1)."""

    def __init__(self, model: nn.Module, guard: GuardLayer) -> None:
        super().__init__()
        self.model = model
        self.guard = guard

    def explain(self, x: torch.Tensor) -> GuardResult:
        return self.guard.explain(x, self.model(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.guard.explain(x, self.model(x)).output()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The decision per input (B,), or m where the guard abstains."""
        result = self.explain(x)
        m = self.guard.n_outputs
        label = result.scores.argmin(dim=1) if self.guard.argmin else result.scores.argmax(dim=1)
        return torch.where(result.abstained, m, label)
