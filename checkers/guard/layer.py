"""The guard as torch modules: `GuardLayer` (scores in, guarded scores out) and `Guarded` (a model wrapped).

Output: (B, m + 1) scores in the model's dtype: the m guarded scores, then a bottom score
that is the decision exactly when the guard abstains (+inf for an argmax network, -inf for
argmin; otherwise the opposite infinity). When it abstains the m scores are the model's own,
except that none may tie the bottom score: a NaN becomes the opposite infinity and the bottom's
infinity becomes the largest finite value, so argmax (argmin) of the output is the bottom score.
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

    scores: torch.Tensor  # (B, m) guarded scores (the model's, NaN and the bottom's infinity moved, where abstained)
    bottom: torch.Tensor  # (B,) the extra bottom score
    abstained: torch.Tensor  # (B,) bool
    reason: torch.Tensor  # (B,) int8, a `Reason`
    active: torch.Tensor  # (B, P) bool, properties in `GuardLayer.names` order
    original: torch.Tensor  # (B, m) the scores before the guard

    def output(self) -> torch.Tensor:
        """(B, m + 1): what `forward` returns."""
        return torch.cat([self.scores, self.bottom.unsqueeze(1)], dim=1)


FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)  # what the guard's arithmetic handles


def _names(dtypes: Sequence[torch.dtype]) -> str:
    return ", ".join(str(d) for d in dtypes[:-1]) + f" or {dtypes[-1]}"


def _tracing() -> bool:
    """Traced (torch.export, torch.compile, TorchScript or ONNX export): the dtype and device checks are
    left out of the graph (the shapes are still checked, as the traced graph needs them)."""
    return ranking.tracing() or bool(torch.onnx.is_in_onnx_export())


def check_inputs(x: torch.Tensor, n: int, device: torch.device) -> None:
    """UsageError unless x is a float tensor (batch, n) on `device`: what the guard (and a guarded model) takes."""
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"the guard takes inputs as a torch.Tensor of shape (batch, {n}), got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != n or not x.is_floating_point():
        raise UsageError(f"the guard takes float inputs of shape (batch, {n}), got {x.dtype} {list(x.shape)}")
    if _tracing():
        return
    if x.dtype not in FLOAT_DTYPES:
        raise UsageError(f"the guard takes inputs of dtype {_names(FLOAT_DTYPES)}, got {x.dtype}")
    if x.device != device:
        raise UsageError(f"the inputs are on {x.device}, the guard on {device}: move them with x.to({str(device)!r}) "
                         "(or the guard with guard.to(...))")


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
    wide_tail: torch.Tensor
    wide_head: torch.Tensor
    wide_strict: torch.Tensor
    disj_checks: torch.Tensor
    prop_disj: torch.Tensor
    edges: torch.Tensor
    edges_strict: torch.Tensor
    prop_first: torch.Tensor
    prop_count: torch.Tensor
    edges_flat: torch.Tensor
    perm_order: torch.Tensor
    perm_weight: torch.Tensor
    perm_bad: torch.Tensor
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
        self.strict_pairs, self.strict_wide = int(self.pair_strict.sum()), int(self.wide_strict.sum())
        self.n_parts, self.n_halfspaces = int(self.part_prop.shape[0]), int(self.hs_bound.shape[0])
        self.has_predicted = bool((~self.part_allowed).any())
        one_part_each = self.part_prop.shape[0] == self.part_prop.shape[1]
        self.use_table = hasattr(self, "perm_order")
        self.parts_are_properties = bool(one_part_each and torch.equal(self.part_prop, torch.eye(self.n_parts)))

    # ------------------------------------------------------------ pieces

    def _check(self, x: torch.Tensor, y: torch.Tensor) -> None:
        check_inputs(x, self.n_inputs, self.edges.device)
        self._check_scores(y, x.shape[0])

    def _check_scores(self, y: torch.Tensor, batch: int) -> None:
        """UsageError unless y is float scores (batch, m) on the guard's device."""
        if not isinstance(y, torch.Tensor):
            raise UsageError(f"the guard takes scores as a torch.Tensor of shape (batch, {self.n_outputs}), got "
                             f"{type(y).__name__}")
        if y.dim() != 2 or y.shape[1] != self.n_outputs or y.shape[0] != batch or not y.is_floating_point():
            shape = f"({batch}, {self.n_outputs})" if batch >= 0 else f"(batch, {self.n_outputs})"
            raise UsageError(f"the guard takes float scores of shape {shape}, got {y.dtype} {list(y.shape)}")
        if _tracing():
            return
        if y.dtype not in FLOAT_DTYPES:
            raise UsageError(f"the guard takes scores of dtype {_names(FLOAT_DTYPES)}, got {y.dtype}")
        if y.device != self.edges.device:
            raise UsageError(f"the scores are on {y.device}, the guard on {self.edges.device}: move them with "
                             f"y.to({str(self.edges.device)!r}) (or the guard with guard.to(...))")

    def active(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """(B, P) bool: which properties' preconditions hold (s: the original scores, decision space)."""
        self._check(x, s)
        return self._active_t(x, s).t()

    def _active_t(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """`active`, transposed: (P, B)."""
        xt = x.t().contiguous()
        if x.dtype == torch.float64:
            inside = regions.in_boxes(xt, self.box_lower64, self.box_upper64, self.n_parts)
        else:
            inside = regions.in_boxes(xt, self.box_lower32, self.box_upper32, self.n_parts)
        if self.n_halfspaces:
            met = regions.in_halfspaces(x, self.hs_index, self.hs_coeff, self.hs_bound, self.hs_strict)
            inside = inside & ((~met).to(torch.float32) @ self.hs_member == 0).t()
        if self.has_predicted:
            inside = inside & self.part_allowed[s.argmax(dim=1)].t()
        if self.parts_are_properties:
            return inside
        return self.part_prop.t() @ inside.to(torch.float32) > 0

    def satisfied(self, s: torch.Tensor) -> torch.Tensor:
        """(B, P) bool: does each property's requirement hold on scores s (decision space)? Exact."""
        self._check_scores(s, s.shape[0] if isinstance(s, torch.Tensor) and s.dim() == 2 else -1)
        return self._satisfied_t(s.t().contiguous()).t()

    def _satisfied_t(self, st: torch.Tensor) -> torch.Tensor:
        """`satisfied` in batch-last layout: scores (m, B) -> (P, B)."""
        checks = []
        batch = st.shape[1]
        if self.n_pairs:
            a, b = st.index_select(0, self.pair_tail), st.index_select(0, self.pair_head)
            k = self.strict_pairs
            checks += [a[:k] > b[:k], a[k:] >= b[k:]]
        if self.n_wide:
            kw, wa, wb, k = self.n_wide, self.wide_tail.shape[1], self.wide_head.shape[1], self.strict_wide
            low = st.index_select(0, self.wide_tail.flatten()).view(kw, wa, batch).amin(dim=1)
            high = st.index_select(0, self.wide_head.flatten()).view(kw, wb, batch).amax(dim=1)
            checks += [low[:k] > high[:k], low[k:] >= high[k:]]
        (d_count, width), (p_count, depth) = self.disj_checks.shape, self.prop_disj.shape
        never = torch.zeros(1, batch, device=st.device)  # the disjunct of a false requirement
        if checks:
            ok = torch.cat(checks, dim=0).to(torch.float32)
            holds = ok.index_select(0, self.disj_checks.flatten()).view(d_count, width, batch).amin(dim=1)
            never = torch.cat([holds, never], dim=0)
        return never.index_select(0, self.prop_disj.flatten()).view(p_count, depth, batch).amax(dim=1) > 0

    def _combinations(self, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return ranking.combinations(active, self.prop_first, self.prop_count, self.slots, self.count,
                                    empty=self.edges.shape[0] - 1)

    def _correct(self, s: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Re-rank the rows that need it: (new scores, reason) for each row."""
        m = self.n_outputs
        values, rank = ranking.ranks(s)
        if self.use_table:
            found, order = ranking.table_order(active, rank, self.perm_order, self.perm_weight, self.perm_bad)
            chosen = valid = None
            complete = torch.ones_like(found)
        else:
            chosen, valid, complete = self._combinations(active)
            found, order = ranking.strict_order(self.edges_flat, self.indegree, chosen, valid, rank, m)
        tied = torch.zeros_like(order, dtype=torch.bool)
        if ranking.tracing():  # one graph for every input: no data-dependent shapes, no empty tensors
            if chosen is None or valid is None:
                chosen, valid, complete = self._combinations(active)
            f2, o2, t2 = ranking.tied_order(self.edges, self.edges_strict, chosen, valid, rank, m)
            order = torch.where(found.unsqueeze(1), order, o2)
            tied = ~found.unsqueeze(1) & t2
            found = found | f2
        else:  # the fallback only for the rows the strict pass could not rank
            miss = (~found).nonzero().squeeze(1)
            if miss.numel() > 0:
                if chosen is None or valid is None:
                    c2, v2, complete2 = self._combinations(active[miss])
                    complete = complete.index_copy(0, miss, complete2)
                else:
                    c2, v2 = chosen[miss], valid[miss]
                f2, o2, t2 = ranking.tied_order(self.edges, self.edges_strict, c2, v2, rank[miss], m)
                found = found.index_copy(0, miss, f2)
                order = order.index_copy(0, miss, o2)
                tied = tied.index_copy(0, miss, t2)
        finite = torch.isfinite(s).all(dim=1)
        new = ranking.assign(values, order, tied, self.n_outputs)
        good = found & finite & torch.isfinite(new).all(dim=1) & (self._satisfied_t(new.t().contiguous()).t()
                                                                  | ~active).all(dim=1)
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
            active_t = self._active_t(x, s)
            active = active_t.t()
            out = s
            st = s.t().contiguous()
            if ranking.tracing():  # every row through the same graph; the unneeded results are discarded
                needs = (active_t & ~self._satisfied_t(st)).any(dim=0)
                fixed, why = self._correct(s, active)
                out = torch.where(needs.unsqueeze(1), fixed, s)
                reason = torch.where(needs, why, reason)
            else:  # only the rows with an active property, then only those that need it (usually few)
                rows = active_t.any(dim=0).nonzero().squeeze(1)
                every = rows.numel() == batch
                sub_st, sub_active_t = (st, active_t) if every else (st[:, rows], active_t[:, rows])
                need = (sub_active_t & ~self._satisfied_t(sub_st)).any(dim=0).nonzero().squeeze(1)
                if need.numel() > 0:
                    need = need if every else rows[need]
                    fixed, why = self._correct(s[need], active[need])
                    out = s.index_copy(0, need, fixed)
                    reason = reason.index_copy(0, need, why)
        abstained = reason >= int(Reason.UNSATISFIABLE)
        bottom = torch.where(abstained, torch.inf, -torch.inf).to(s.dtype)
        top = torch.finfo(s.dtype).max
        # Abstained rows keep the model's scores, but none may tie or beat the bottom score under
        # argmax: NaN (which torch.argmax takes as the largest) goes to -inf, +inf to the largest float.
        below = torch.where(torch.isnan(s), -torch.inf, torch.clamp(s, max=top))
        out = torch.where(abstained.unsqueeze(1), below, out)
        if self.argmin:
            out, bottom = -out, -bottom
        # Rows left as they were return the model's own tensor bit for bit (negation can drop a NaN's sign).
        out = torch.where((reason == int(Reason.UNCHANGED)).unsqueeze(1), y, out)
        return GuardResult(out, bottom, abstained, reason, active, y)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.explain(x, y).output()


class Guarded(nn.Module):
    """A model (flat (B, n) inputs to (B, m) scores) and its guard: (B, n) -> (B, m + 1)."""

    def __init__(self, model: nn.Module, guard: GuardLayer) -> None:
        super().__init__()
        self.model = model
        self.guard = guard
        self.source: tuple[str, bytes] | None = None  # (suffix, bytes) of the model file, for saving

    def explain(self, x: torch.Tensor) -> GuardResult:
        check_inputs(x, self.guard.n_inputs, self.guard.edges.device)  # before the model sees x
        return self.guard.explain(x, self.model(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.explain(x).output()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The decision per input (B,), or m where the guard abstains."""
        result = self.explain(x)
        m = self.guard.n_outputs
        label = result.scores.argmin(dim=1) if self.guard.argmin else result.scores.argmax(dim=1)
        return torch.where(result.abstained, m, label)
