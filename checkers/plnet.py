"""Piecewise-linear networks: the form every bound and the exact encoding read.

`PLNet` is f(x) = A_L relu(... relu(A_1 x + c_1) ...) + c_L in float64, flat inputs and
outputs. `from_module` folds the affine layers of a torch model (Linear, Conv2d, average
pooling, inference batch norm, flatten/reshape, constant shifts) into the A_k by probing
each layer on the unit basis, and keeps `ops`, the original affine operations with their
row lengths, for the float32 error bound (`checkers.floaterror`). A layer that is not
affine or ReLU (MaxPool, a sigmoid, an unknown module) is a ModelError, never a guess, and so
is a NaN or infinite weight (`checkers.finite.check_finite`, naming the tensor) or a folded
product of weights that overflows float64.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from checkers.finite import check_finite
from checkers.onnx_import import Reshape, Shift
from spec.errors import ModelError

AFFINE_LAYERS = (
    nn.Linear, nn.Conv2d, nn.Conv1d, nn.AvgPool2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.Flatten, nn.Unflatten,
    nn.Identity, nn.Dropout, Shift, Reshape,
)


@dataclass(frozen=True)
class AffineOp:
    """One original affine operation: out = matrix @ in + offset (float64), as run in float32.

    `terms` is the longest dot product (nonzeros in a row of `matrix`, plus one for the
    offset) that float32 execution sums.
    """

    matrix: torch.Tensor
    offset: torch.Tensor
    terms: int


@dataclass(frozen=True)
class PLNet:
    """Affine layers (weights (out, in), biases (out,), float64) with ReLU between them.

    `ops[k]` lists the original affine operations folded into layer k, in order.
    """

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    ops: tuple[tuple[AffineOp, ...], ...]

    @property
    def n_inputs(self) -> int:
        return int(self.weights[0].shape[1])

    @property
    def n_outputs(self) -> int:
        return int(self.weights[-1].shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued (float64) evaluation on a batch (B, n) -> (B, m)."""
        h = x.to(torch.float64)
        for k, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T + b
            if k < len(self.weights) - 1:
                h = torch.relu(h)
        return h


def _leaves(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def _probe(layer: nn.Module, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
    """The affine map of `layer` on samples of `shape`: (matrix, offset, output shape)."""
    n = 1
    for d in shape:
        n *= d
    layer64 = copy.deepcopy(layer).to(torch.float64).eval()
    with torch.no_grad():
        basis = torch.cat([torch.zeros(1, n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)])
        out = layer64(basis.reshape(n + 1, *shape))
    out_shape = tuple(out.shape[1:])
    flat = out.reshape(n + 1, -1)
    offset = flat[0]
    return (flat[1:] - offset).T.contiguous(), offset.clone(), out_shape


def _rounding_ops(layer: nn.Module, matrix: torch.Tensor, offset: torch.Tensor) -> list[AffineOp]:
    """The operations float32 rounds in `layer`, for the error bound (none for reshapes).

    Batch norm runs as (x - mean) then a scale and a shift whose factor float32 computes
    with a square root and a division: two operations, the second with 5 roundings.
    """
    if isinstance(layer, nn.Flatten | nn.Unflatten | nn.Identity | nn.Dropout | Reshape):
        return []
    if isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
        mean = layer.running_mean
        if mean is None:
            raise ModelError("the verifier cannot bound batch norm without running statistics")
        size = matrix.shape[1]  # flat size of the layer's input: channels times positions
        centred = -mean.to(torch.float64).repeat_interleave(size // mean.numel())
        return [
            AffineOp(torch.eye(size, dtype=torch.float64), centred, 2),
            AffineOp(matrix, offset - matrix @ centred, 5),
        ]
    terms = int((matrix != 0).sum(dim=1).max().item()) + 1 if matrix.numel() else 1
    return [AffineOp(matrix, offset, terms)]


def from_module(module: nn.Module, input_shape: tuple[int, ...]) -> PLNet:
    """Fold a torch model (a Sequential of affine layers and ReLUs) into a PLNet.

    Args:
        module: the model; it is read, not changed.
        input_shape: the shape of one sample (without the batch dimension).
    """
    check_finite(module)
    n = 1
    for d in input_shape:
        n *= d
    shape = tuple(input_shape)
    weights: list[torch.Tensor] = []
    biases: list[torch.Tensor] = []
    ops: list[tuple[AffineOp, ...]] = []
    cur_ops: list[AffineOp] = []
    a, c = torch.eye(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
    for layer in _leaves(module):
        if isinstance(layer, nn.ReLU):
            weights.append(a)
            biases.append(c)
            ops.append(tuple(cur_ops))
            width = a.shape[0]
            a, c, cur_ops = torch.eye(width, dtype=torch.float64), torch.zeros(width, dtype=torch.float64), []
            continue
        if not isinstance(layer, AFFINE_LAYERS):
            raise ModelError(f"the verifier cannot bound layer {type(layer).__name__}: only affine layers and ReLU")
        matrix, offset, shape = _probe(layer, shape)
        cur_ops.extend(_rounding_ops(layer, matrix, offset))
        a, c = matrix @ a, matrix @ c + offset
    weights.append(a)
    biases.append(c)
    ops.append(tuple(cur_ops))
    for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
            raise ModelError(f"the affine layers folded into layer {k} of the network overflow float64 (their "
                             "product of weights is not finite): the verifier cannot bound it")
    return PLNet(tuple(weights), tuple(biases), tuple(ops))
