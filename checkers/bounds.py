"""Sound bounds on a PLNet over batches of input boxes, in float64 real arithmetic.

- `hidden_bounds`: pre-activation bounds of every hidden layer, from linear lower and
  upper functions of the input propagated forward (the DeepPoly/CROWN relaxation:
  an unstable ReLU lies under the chord u/(u-l) (z - l) and over a z, a in {0, 1}).
- `spec_upper_bounds`: upper bounds of linear functions of the outputs, `G y + g`, by
  back-substitution (CROWN) through the same relaxation, using `hidden_bounds`.

Soundness claim: for every real x in the box, the real network's pre-activations lie in
[lower, upper] and every row of G f(x) + g is at most the returned bound, up to float64
rounding of the bound computation itself (relative 1e-15, far below the float32 margin
of `checkers.floaterror`, which the verifier adds on top). Shapes: boxes (B, n).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from checkers.plnet import PLNet


@dataclass(frozen=True)
class HiddenBounds:
    """lower[k], upper[k]: (B, width_k) bounds of the k-th hidden pre-activation."""

    lower: tuple[torch.Tensor, ...]
    upper: tuple[torch.Tensor, ...]


def _concretize(w: torch.Tensor, b: torch.Tensor, centre: torch.Tensor, radius: torch.Tensor, upper: bool) -> torch.Tensor:
    """min (or max) over the box of w x + b; w (B, n, k) (input-major), b (B, k), centre/radius (B, n)."""
    mid = torch.bmm(centre[:, None, :], w)[:, 0] + b
    spread = torch.bmm(radius[:, None, :], w.abs())[:, 0]
    return mid + spread if upper else mid - spread


def _relaxation(lo: torch.Tensor, up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per neuron: upper slope, upper intercept, lower slope (relu(z) in [a z, s z + t])."""
    active, inactive = lo >= 0, up <= 0
    unstable = ~(active | inactive)
    denom = torch.where(unstable, up - lo, torch.ones_like(up))
    chord = torch.where(unstable, up / denom, torch.zeros_like(up))
    up_slope = torch.where(active, torch.ones_like(up), chord)
    up_int = torch.where(unstable, -chord * lo, torch.zeros_like(up))
    low_slope = torch.where(active | (unstable & (up > -lo)), torch.ones_like(up), torch.zeros_like(up))
    return up_slope, up_int, low_slope


def hidden_bounds(net: PLNet, lower: torch.Tensor, upper: torch.Tensor) -> HiddenBounds:
    """Bounds of each hidden pre-activation over the boxes [lower, upper] (B, n)."""
    centre, radius = (lower + upper) / 2, (upper - lower) / 2
    batch, n = lower.shape
    # linear functions of x kept input-major: lw (B, n, width) so each layer is one GEMM
    eye = torch.eye(n, dtype=torch.float64).expand(batch, n, n)
    zero = torch.zeros(batch, n, dtype=torch.float64)
    lw, lb, uw, ub = eye, zero, eye, zero
    lows, ups = [], []
    for w, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        wp, wn = w.clamp(min=0).T, w.clamp(max=0).T
        zlw, zuw = lw @ wp + uw @ wn, uw @ wp + lw @ wn
        zlb, zub = lb @ wp + ub @ wn + b, ub @ wp + lb @ wn + b
        lo = _concretize(zlw, zlb, centre, radius, upper=False)
        up = _concretize(zuw, zub, centre, radius, upper=True)
        lows.append(lo)
        ups.append(up)
        up_slope, up_int, low_slope = _relaxation(lo, up)
        lw, lb = zlw * low_slope[:, None, :], zlb * low_slope
        uw, ub = zuw * up_slope[:, None, :], zub * up_slope + up_int
    return HiddenBounds(tuple(lows), tuple(ups))


def _backward(
    net: PLNet, depth: int, lower: torch.Tensor, upper: torch.Tensor, lam: torch.Tensor, const: torch.Tensor,
    lows: tuple[torch.Tensor, ...] | list[torch.Tensor], ups: tuple[torch.Tensor, ...] | list[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper bounds of lam @ h_depth + const (B, R), back-substituted to the input.

    lam (B, R, width of hidden layer `depth`, post-ReLU); layers below use lows/ups.
    Returns the bounds and the input coefficients (B, R, n).
    """
    for k in range(depth - 1, -1, -1):
        up_slope, up_int, low_slope = _relaxation(lows[k], ups[k])
        pos, neg = lam.clamp(min=0), lam.clamp(max=0)
        const = const + torch.einsum("brw,bw->br", pos, up_int)
        lam = pos * up_slope[:, None, :] + neg * low_slope[:, None, :]
        const = const + lam @ net.biases[k]
        lam = lam @ net.weights[k]
    centre, radius = (lower + upper) / 2, (upper - lower) / 2
    return _concretize(lam.transpose(1, 2), const, centre, radius, upper=True), lam


def crown_hidden_bounds(
    net: PLNet, lower: torch.Tensor, upper: torch.Tensor, inherited: HiddenBounds | None = None,
) -> HiddenBounds:
    """Pre-activation bounds by back-substitution for every layer (tighter, costlier).

    Each layer's bounds are the intersection of the forward bounds of `hidden_bounds`,
    the `inherited` bounds (valid bounds for a box that contains these boxes, such as
    the parent box in branch and bound), and CROWN bounds from the layers below. CROWN
    is only run for neurons that are unstable in some box of the batch: a stable neuron
    is relaxed exactly, so its bounds matter no more.
    """
    forward = hidden_bounds(net, lower, upper)
    lows: list[torch.Tensor] = []
    ups: list[torch.Tensor] = []
    batch = lower.shape[0]
    for k in range(len(net.weights) - 1):
        lo, up = forward.lower[k], forward.upper[k]
        if inherited is not None:
            lo, up = torch.maximum(lo, inherited.lower[k]), torch.minimum(up, inherited.upper[k])
        unstable = ((lo < 0) & (up > 0)).any(dim=0).nonzero().flatten()
        if k > 0 and unstable.numel():
            w, b = net.weights[k][unstable], net.biases[k][unstable]
            lam = torch.cat([w, -w]).expand(batch, -1, -1)
            const = torch.cat([b, -b]).expand(batch, -1)
            bound, _ = _backward(net, k, lower, upper, lam, const, lows, ups)
            count = unstable.numel()
            lo, up = lo.clone(), up.clone()
            lo[:, unstable] = torch.maximum(lo[:, unstable], -bound[:, count:])
            up[:, unstable] = torch.minimum(up[:, unstable], bound[:, :count])
        lows.append(lo)
        ups.append(up)
    return HiddenBounds(tuple(lows), tuple(ups))


def spec_upper_bounds(
    net: PLNet, lower: torch.Tensor, upper: torch.Tensor, rows: torch.Tensor, consts: torch.Tensor,
    hidden: HiddenBounds | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Upper bounds of rows @ f(x) + consts over each box.

    Args:
        rows: (R, m) coefficients on the outputs; consts: (R,).
        hidden: bounds from `hidden_bounds` for these boxes (computed when None).
    Returns:
        bounds (B, R), and the input coefficients (B, R, n) of the linear upper bound
        (a branching heuristic: |coefficient| * width says which input matters).
    """
    hidden = hidden or crown_hidden_bounds(net, lower, upper)
    batch = lower.shape[0]
    lam = (rows @ net.weights[-1]).expand(batch, -1, -1)
    const = (rows @ net.biases[-1] + consts).expand(batch, -1)
    return _backward(net, len(net.weights) - 1, lower, upper, lam, const, hidden.lower, hidden.upper)


def input_sensitivity(net: PLNet, rows: torch.Tensor, lower: torch.Tensor, hidden: HiddenBounds) -> torch.Tensor:
    """A bound (B, n) on sum over rows of |d (rows @ f) / d x_j| anywhere in each box (B, n).

    Interval back-propagation of the Jacobian (ReluVal's "smear"): a ReLU's derivative is
    0 or 1 where the neuron is stable and anywhere in [0, 1] where it is not. A branching
    heuristic only: it says which input can move the outputs most over the box.
    """
    s_lo = (rows @ net.weights[-1]).expand(lower.shape[0], -1, -1)
    s_hi = s_lo
    for k in range(len(net.weights) - 2, -1, -1):
        d_lo = (hidden.lower[k] > 0).to(torch.float64)[:, None, :]
        d_hi = (hidden.upper[k] > 0).to(torch.float64)[:, None, :]
        products = torch.stack([s_lo * d_lo, s_lo * d_hi, s_hi * d_lo, s_hi * d_hi])
        s_lo, s_hi = products.min(dim=0).values, products.max(dim=0).values
        centre, radius = (s_lo + s_hi) / 2 @ net.weights[k], (s_hi - s_lo) / 2 @ net.weights[k].abs()
        s_lo, s_hi = centre - radius, centre + radius
    return torch.maximum(s_lo.abs(), s_hi.abs()).sum(dim=1)
