"""LipschitzNet: a body of Lipschitz layers and a dense head, with its certification constants.

The network is an `nn.Sequential` (a leading `Reshape` for multi-dimensional inputs, the
body, the head) mapping flat (batch, n) float32 inputs to (batch, m) scores, so every
other checker (the exact verifier included) runs on it unchanged.

`constants(net)` computes, once per state of the weights (cached under the parameters'
identity, storage, version counter and sum), what the GloRo certifier needs:

- `body`: a sound bound on the l2 Lipschitz constant of the body (product of the layers'
  sound bounds, rounded up);
- `table[j, i]` >= ||w_j - w_i||_2 for the head's (effective, float32) weight rows,
  computed from the Gram matrix in float64 with its rounding error added (m x m memory,
  never (batch, features, classes));
- `err0 + err1 * R`: a bound on the l2 norm of the float32 rounding error of the scores at
  any input of l2 norm at most R (see `float_error`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from checkers.finite import check_finite
from checkers.lipschitz.layers import (
    AvgPool2d, Conv2d, Flatten, Linear, LipschitzLayer, ReLU, _Dense,
)
from checkers.lipschitz.spectral import U32, gamma, mul_up, sqrt_up, up
from checkers.onnx_import import Reshape
from spec.errors import ModelError

FLOAT32_SAFETY = 2.0  # the float32 error bound is doubled: slack for kernels that sum in an unusual order
# gamma bounds relative errors of normal numbers; a product that underflows is off by < 2^-150 absolute, and sums
# of subnormals are exact: per layer at most terms * sqrt(outputs) * 2^-150 <= 2^-100 (terms < 2^23 for gamma,
# outputs < 2^50 for any tensor that fits in memory)
_UNDERFLOW = 2.0**-100


class LipschitzNet(nn.Sequential):
    """[Reshape(input_shape)] + body + [head]: flat (batch, n) -> (batch, m) scores.

    Args:
        input_shape: one sample's shape (the body sees (batch, *input_shape)).
        body: Lipschitz layers (`checkers.lipschitz.layers`); their output must be flat.
        head: the last dense layer (Linear, ChordLinear or NormalizedLinear).
    Raises ModelError for a layer with no known Lipschitz bound (never assumed to be 1).
    """

    def __init__(self, input_shape: Sequence[int], body: Sequence[nn.Module], head: nn.Module) -> None:
        shape = tuple(int(d) for d in input_shape)
        lead: list[nn.Module] = [Reshape(shape)] if len(shape) > 1 else []
        super().__init__(*lead, *body, head)
        self.input_shape = shape
        self._lead = len(lead)
        _ = self.body, self.head  # ModelError for a layer with no known bound
        with torch.no_grad():  # trace: convolutions learn their input size; shapes are checked
            try:
                y = self(torch.zeros(1, self.n_inputs))
            except ModelError:
                raise
            except Exception as err:
                raise ModelError(f"the layers do not fit input_shape {list(shape)}: {err}") from None
        if y.dim() != 2:
            raise ModelError(f"the network's output has shape {list(y.shape)}: the body must end flat")
        self.eval()

    @property
    def n_inputs(self) -> int:
        n = 1
        for d in self.input_shape:
            n *= d
        return n

    @property
    def body(self) -> list[LipschitzLayer]:
        """The layers between the input reshape and the head (ModelError if one was replaced by an unknown one)."""
        layers = list(self)[self._lead:-1]
        for k, layer in enumerate(layers):
            if not isinstance(layer, LipschitzLayer):
                raise ModelError(f"body layer {k} ({layer!r}) has no known Lipschitz bound: use the layers of "
                                 "checkers.lipschitz.layers")
        return layers  # type: ignore[return-value]

    @property
    def head(self) -> _Dense:
        head = self[-1]
        if not isinstance(head, _Dense):
            raise ModelError(f"the head ({head!r}) must be a Linear, ChordLinear or NormalizedLinear layer")
        return head

    def body_bound(self) -> float:
        """A sound upper bound on the body's l2 Lipschitz constant (product of cached layer bounds)."""
        return mul_up(*(layer.lipschitz_bound() for layer in self.body))

    def body_estimate(self) -> torch.Tensor:
        """The differentiable training estimate of the body's Lipschitz constant (from below)."""
        out = torch.ones((), device=self.head.effective_weight().device)
        for layer in self.body:
            out = out * layer.lipschitz_estimate()
        return out

    def describe(self) -> list[list[object]]:
        return [layer.describe() for layer in [*self.body, self.head]]


@dataclass(frozen=True)
class Constants:
    """What certification needs, for one state of the weights (see the module docstring)."""

    body: float
    table: torch.Tensor  # (m, m) float64, >= ||w_j - w_i||_2
    err0: float
    err1: float
    n_inputs: int
    max_norm: float = math.inf  # no float32 overflow at inputs of l2 norm at most this (see float_error)


def pair_table(weight: torch.Tensor) -> torch.Tensor:
    """(m, m) float64 upper bounds on ||w_j - w_i||_2 (exactly 0 on the diagonal).

    ||w_j - w_i||^2 = ||w_j||^2 + ||w_i||^2 - 2 w_j.w_i, each computed in float64 with absolute
    error at most gamma_{d+1} (||w_j||^2 + ||w_i||^2 + 2 |w_j|.|w_i|) <= 2 gamma_{d+1} (||w_j||^2 + ||w_i||^2)
    (|w_j|.|w_i| <= (||w_j||^2 + ||w_i||^2) / 2), so that much is added before the square root.
    """
    w = weight.detach().to(dtype=torch.float64)
    sq = (w * w).sum(dim=1)
    dist = sq[:, None] + sq[None, :] - 2.0 * (w @ w.T)
    g = 4.0 * gamma(w.shape[1] + 3)
    dist = dist + g * (sq[:, None] + sq[None, :]) + 1e-300
    table = dist.clamp_min(0.0).sqrt() * (1 + 4 * 2.0**-53)
    table.fill_diagonal_(0.0)
    return table


def float_error(net: LipschitzNet) -> tuple[float, float, float]:
    """(err0, err1, max_norm): ||scores_float32(x) - scores_real(x)||_2 <= err0 + err1 * R whenever
    ||x||_2 <= R <= max_norm.

    Walks the layers keeping: K, a bound on the Lipschitz constant so far; H = K R + Z, a
    bound on the norm of the real hidden vector (Z >= its value at x = 0: Z' = K_l Z + ||b_l||,
    activations map 0 to 0 and do not grow norms); and E = e0 + e1 R, the accumulated error.
    A rounding layer (out = W h + b in float32, `Rounding`) adds at most
    gamma_terms (|| |W| || (H + E) + ||b||) (u = 2^-24, times FLOAT32_SAFETY) and scales E by its bound;
    an exactly computed layer (ReLU, MinMax, GroupSort, Flatten) only scales E by its bound.
    Each rounding layer also adds 2^-100 to e0 for products that underflow (`_UNDERFLOW`).
    Assumption (stated): every output of a dense or convolutional layer is an inner product
    summed in some order in float32 (true of CPU matmul and direct/im2col convolution, and of
    CUDA with TF32 disabled, which the certifier enforces); FFT/Winograd convolution is not covered.
    The bound needs every float32 value to stay finite: each partial sum of a rounding layer is at
    most || |W| || (H + E) + ||b|| (Cauchy-Schwarz on |w_row| . |h|), kept below 2^126 (a partial sum
    and its rounding stay finite), which gives max_norm (rounded down; 0 when the weights alone overflow).
    """
    k_pre, z, e0, e1, max_norm = 1.0, 0.0, 0.0, 0.0, math.inf
    for layer in [*net.body, net.head]:
        k = layer.lipschitz_bound()
        r = layer.rounding()
        if r is None:
            e0, e1, z = mul_up(k, e0), mul_up(k, e1), mul_up(k, z)
        else:
            room = 2.0**126 - up(mul_up(r.abs_bound, up(z + e0)) + r.bias_norm)
            slope = mul_up(r.abs_bound, up(k_pre + e1))
            max_norm = min(max_norm, max(0.0, room / slope * (1 - 1e-12)) if slope > 0 else math.inf)
            g = mul_up(gamma(r.terms, U32), FLOAT32_SAFETY)
            e0 = up(mul_up(k, e0) + mul_up(g, up(mul_up(r.abs_bound, up(z + e0)) + r.bias_norm)) + _UNDERFLOW)
            e1 = up(mul_up(k, e1) + mul_up(g, r.abs_bound, up(k_pre + e1)))
            z = up(mul_up(k, z) + r.bias_norm)
        k_pre = mul_up(k_pre, k)
    return e0, e1, max_norm


def constants(net: LipschitzNet) -> Constants:
    """The certification constants of `net`, recomputed whenever any layer changes (see `WeightState`)."""
    layers = [*net.body, net.head]
    key = (net.input_shape, *((layer, layer.weight_state()) for layer in layers))  # compared by identity
    cached: tuple[tuple[Any, ...], Constants] | None = net.__dict__.get("_constants_cache")
    if cached is None or cached[0] != key:
        check_finite(net, "the network")  # a NaN or infinite weight has no finite Lipschitz bound
        with torch.no_grad():
            table = pair_table(net.head.effective_weight())
        e0, e1, max_norm = float_error(net)
        cached = (key, Constants(net.body_bound(), table, e0, e1, net.n_inputs, max_norm))
        net.__dict__["_constants_cache"] = cached
    return cached[1]


def _convert(k: int, layer: nn.Module) -> nn.Module:
    """A plain torch layer as the Lipschitz layer computing the same function (weights copied)."""
    if isinstance(layer, LipschitzLayer):
        return layer
    new: nn.Module
    if isinstance(layer, nn.ReLU):
        return ReLU()
    if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) == (1, -1):
        return Flatten()
    if isinstance(layer, nn.Linear):
        new = Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    elif (isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.dilation == (1, 1)
          and layer.padding_mode == "zeros" and isinstance(layer.padding, tuple)
          and len(set(layer.kernel_size)) == 1 and len(set(layer.stride)) == 1 and len(set(layer.padding)) == 1
          and layer.bias is not None):
        new = Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0], layer.padding[0])
    elif (isinstance(layer, nn.AvgPool2d) and layer.padding in (0, (0, 0)) and not layer.ceil_mode
          and isinstance(layer.kernel_size, int) and isinstance(layer.stride, int)):
        return AvgPool2d(layer.kernel_size, layer.stride)
    else:
        raise ModelError(f"layer {k} ({layer!r}) has no known Lipschitz bound: the certifier supports Linear, "
                         "Conv2d (square, zero padding, with bias), ReLU, Flatten, AvgPool2d and the layers of "
                         "checkers.lipschitz.layers")
    new.load_state_dict(layer.state_dict())
    return new


def as_lipschitz(module: nn.Module, input_shape: Sequence[int]) -> LipschitzNet:
    """`module` (a LipschitzNet, or an nn.Sequential of supported layers) as a LipschitzNet.

    A leading Reshape to `input_shape` is dropped; the last layer must be dense (the head).
    """
    if isinstance(module, LipschitzNet):
        return module
    if not isinstance(module, nn.Sequential):
        raise ModelError(f"the certifier needs an nn.Sequential of known layers, got {type(module).__name__}")
    layers = list(module)
    if layers and isinstance(layers[0], Reshape):
        input_shape = layers[0].shape
        layers = layers[1:]
    if not layers or not isinstance(layers[-1], nn.Linear):
        raise ModelError("the certifier needs a model whose last layer is linear (the head of the bottom logit)")
    converted = [_convert(k, layer) for k, layer in enumerate(layers)]
    return LipschitzNet(input_shape, converted[:-1], converted[-1])


def sqrt_dim(n: int) -> float:
    """An upper bound on sqrt(n): the l_inf-to-l2 factor (||d||_2 <= sqrt(n) ||d||_inf)."""
    return sqrt_up(float(n))
