"""How far float32 execution of a network can drift from its real-valued function.

The verifier proves a property of the real-valued network f (exact arithmetic on the
model's float32 weights). The model runs in float32, so `HOLDS` needs more: for every
float32 input in the region, the float32 scores f32(x) must satisfy the requirement.
`output_error` bounds |f32(x) - f(x)| per output over a box; `row_error` bounds the
same drift of each requirement row G y, and the verifier proves each atom with that
margin added (`ub(g) + row_error < 0`).

The bound is the classical one for floating-point dot products (Higham, "Accuracy and
Stability of Numerical Algorithms", eq. 3.5): computing sum_{i<k} w_i h_i + b in any
order, with or without fused multiply-adds, errs by at most gamma_k (|w| |h| + |b|), with
gamma_k = k u / (1 - k u), u = 2^-24. Propagated through every original affine operation
(`PLNet.ops`): E_out = |M| E_in + gamma_k (|M| H_in + |offset|), where H_in bounds the
magnitude of the float32 input of that operation (interval bounds of the real values,
tightened by the verifier's hidden-layer bounds, plus E_in). ReLU is exact and
1-Lipschitz, so it passes E through, except where the real pre-activation is at most
-E: there both the real and the float32 neuron are exactly 0, and so is the error.
Float32 inputs are exact (E_0 = 0). `u` is raised by 2^-50 to cover the float64
folding of the weights into `PLNet`. gamma_k covers normal numbers: products that underflow
are off by < 2^-150 each (sums of subnormals are exact), so every output adds k 2^-149.
The bound needs every value finite: a box where a sum's magnitude bound reaches 2^126 (its
float32 evaluation could overflow) gets an infinite error, so nothing is proven there.
"""

from __future__ import annotations

import torch

from checkers.bounds import HiddenBounds
from checkers.plnet import PLNet

UNIT_ROUNDOFF = 2.0**-24 + 2.0**-50
UNDERFLOW = 2.0**-149  # per product of an inner product (each underflowing product is off by < 2^-150)
OVERFLOW = 2.0**126  # a magnitude bound from here up may overflow float32 (largest finite ~2^128)


def gamma(k: int) -> float:
    ku = k * UNIT_ROUNDOFF
    return ku / (1.0 - ku)


def output_error(net: PLNet, lower: torch.Tensor, upper: torch.Tensor, hidden: HiddenBounds | None = None) -> torch.Tensor:
    """A bound (B, m) on |f32(x) - f(x)| for every float32 x in each box [lower, upper] (B, n)."""
    _, _, _, err, overflow = _local_errors(net, lower, upper, hidden)
    return err.masked_fill(overflow[:, None], float("inf"))


def _local_errors(net: PLNet, lower: torch.Tensor, upper: torch.Tensor, hidden: HiddenBounds | None) -> tuple[
    list[list[torch.Tensor]], list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor
]:
    """Per op, the rounding error it adds at its output; per hidden layer, real bounds and the
    forward error bound there (to know which neurons are inactive in float32 too); per box,
    whether a float32 value could overflow (then no error bound holds)."""
    lo, hi = lower.to(torch.float64), upper.to(torch.float64)
    err = torch.zeros_like(lo)
    overflow = torch.zeros(lo.shape[0], dtype=torch.bool, device=lo.device)
    local: list[list[torch.Tensor]] = []
    pre_lo, pre_hi = [], []
    last = len(net.ops) - 1
    for k, layer_ops in enumerate(net.ops):
        mine = []
        for op in layer_ops:
            abs_m = op.matrix.abs()
            magnitude = torch.maximum(lo.abs(), hi.abs()) + err
            size = magnitude @ abs_m.T + op.offset.abs()  # bounds every partial sum of the float32 evaluation
            overflow |= ~(size < OVERFLOW).all(dim=1)
            fresh = gamma(op.terms) * size + op.terms * UNDERFLOW
            mine.append(fresh)
            err = err @ abs_m.T + fresh
            centre, radius = (lo + hi) / 2 @ op.matrix.T + op.offset, (hi - lo) / 2 @ abs_m.T
            lo, hi = centre - radius, centre + radius
        local.append(mine)
        if k < last:
            if hidden is not None:
                lo, hi = torch.maximum(lo, hidden.lower[k]), torch.minimum(hi, hidden.upper[k])
            pre_lo.append(lo - err)
            pre_hi.append(hi + err)
            err = torch.where(hi + err < 0, torch.zeros_like(err), err)
            lo, hi = lo.clamp(min=0), hi.clamp(min=0)
    return local, pre_lo, pre_hi, err, overflow


def row_error(
    net: PLNet, rows: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, hidden: HiddenBounds | None = None,
) -> torch.Tensor:
    """A bound (B, R) on |rows @ (f32(x) - f(x))| for float32 x in each box.

    The output error is the sum over operations of J_k eps_k: eps_k the rounding error an
    operation adds (bounded as above), J_k the Jacobian from that operation's output to
    the rows. Across a ReLU the error passes through the secant slope of relu between the
    real and the float32 pre-activation, which is in [0, 1], and exactly 0 (or 1) where
    both are surely negative (or positive). J_k is bounded in interval arithmetic with
    those slopes, so signs cancel where the activation pattern is fixed.
    """
    local, pre_lo, pre_hi, _, overflow = _local_errors(net, lower, upper, hidden)
    batch = lower.shape[0]
    s_lo = rows.to(torch.float64).expand(batch, -1, -1)
    s_hi = s_lo
    total = torch.zeros(batch, rows.shape[0], dtype=torch.float64)
    for k in range(len(net.ops) - 1, -1, -1):
        if k < len(net.ops) - 1:
            d_lo = (pre_lo[k] > 0).to(torch.float64)[:, None, :]
            d_hi = (pre_hi[k] > 0).to(torch.float64)[:, None, :]
            products = torch.stack([s_lo * d_lo, s_lo * d_hi, s_hi * d_lo, s_hi * d_hi])
            s_lo, s_hi = products.min(dim=0).values, products.max(dim=0).values
        for op, fresh in zip(reversed(net.ops[k]), reversed(local[k]), strict=True):
            magnitude = torch.maximum(s_lo.abs(), s_hi.abs())
            total = total + torch.einsum("brw,bw->br", magnitude, fresh)
            centre, radius = (s_lo + s_hi) / 2 @ op.matrix, (s_hi - s_lo) / 2 @ op.matrix.abs()
            s_lo, s_hi = centre - radius, centre + radius
    return total.masked_fill(overflow[:, None], float("inf"))
