"""Guards: safe-ordering properties compiled into a layer that corrects a model's scores at run time.

    >>> import spec
    >>> from checkers.guard import compile_guard
    >>> from checkers.models import load_model
    >>> loaded = spec.load_file("examples/acasxu/acasxu.prop")
    >>> props = [loaded.property(f"phi{i}") for i in (2, 3, 4)]
    >>> guarded = compile_guard(props, load_model("net.onnx"), loaded.network("acas"))
    >>> out = guarded(x)                  # (B, 5 + 1): the guarded scores and a bottom score
    >>> result = guarded.explain(x)       # the same, with .abstained, .reason, .active

For each input x with scores y (ALGORITHMS.md section 2):
1. Active set: the properties whose precondition holds at x (boxes, half-spaces, their
   disjunctions) and at the ORIGINAL prediction (`predicted in {...}`), decided exactly.
2. If y already meets every active requirement, through any of its disjuncts, y is returned
   unchanged (bit for bit).
3. Otherwise the guard re-ranks: among all rankings that meet every active requirement (one
   disjunct per property, combinations tried in a fixed order, at most
   `GuardOptions.max_combinations`), it takes the lexicographically smallest sequence of
   original ranks. So the original top label stays on top whenever some satisfying ranking
   allows it, then the second is the best possible, and so on: this is the measure of
   minimal change. Rankings are strict; labels are tied only when no strict ranking
   satisfies the properties (cycles of non-strict comparisons).
4. The new scores are y's own values, sorted, given to the labels in that order, then shifted
   down by the least amount that makes every step strict (w_k = min(v_k, next float below
   w_{k-1})): a permutation of y plus a minimal shift, exact in the scores' dtype, so that
   `y[a] > y[b]` really holds for the returned float32 tensor. Finite scores stay finite:
   where values crowd the most negative float (`[FLT_MAX] * 5` under argmin) the lowest
   labels are lifted to the lowest floats that keep the steps strict (`ranking.assign`).
5. The result is checked exactly against every active requirement; the guard abstains (a
   bottom score that becomes the decision, and a flag) when no ranking satisfies the active
   properties (Reason.UNSATISFIABLE), when the combination cap stopped the search
   (Reason.CAP), or when a score to re-rank is not finite.
Argmin networks are handled in decision order: "first" is the lowest score.
Linear requirements on outputs (`COC < 1500`) cannot be enforced by re-ranking: compiling one
is a `GuardError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from checkers.guard.io import load_guard, save_guard
from checkers.guard.layer import Guarded, GuardLayer, GuardResult, Reason
from checkers.guard.tables import GuardOptions
from spec import ir
from spec.errors import Span

__all__ = [
    "GuardLayer", "GuardOptions", "GuardResult", "Guarded", "Reason", "compile_guard", "compile_layer", "load_guard",
    "save_guard",
]


def compile_layer(properties: Sequence[ir.Property], network: ir.Network, options: GuardOptions | None = None,
                  spans: dict[str, Span] | None = None) -> GuardLayer:
    """The guard alone: `layer(x, y)` guards scores y (B, m) of inputs x (B, n)."""
    return GuardLayer(properties, network, options, spans)


def compile_guard(properties: Sequence[ir.Property], model: nn.Module, network: ir.Network,
                  options: GuardOptions | None = None, spans: dict[str, Span] | None = None) -> Guarded:
    """Wrap `model` (flat (B, n) inputs to (B, m) scores) so that it enforces `properties`.

    Raises GuardError for a property that cannot be guarded (its span from `spans[name]`).
    """
    return Guarded(model.eval(), compile_layer(properties, network, options, spans))
