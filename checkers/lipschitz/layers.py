"""Lipschitz-aware layers: each reports a SOUND l2 Lipschitz bound and a training estimate.

Every layer here implements the `LipschitzLayer` interface:

- `lipschitz_bound()`: a float64 upper bound on the layer's l2 Lipschitz constant, as the
  layer runs (with the weights it actually uses: CHORD's and the normalised layer's
  derived weights, LiResNet's folded kernel). Spectral norms come from
  `checkers.lipschitz.spectral` (Gram iteration with every rounding accounted for), never
  from a raw power iteration. The value is cached with the layer's `WeightState` (where
  its tensors lie, its configuration, and an exact copy of the values), so a changed weight
  is never served a stale constant, whatever changed it (in place, `.data`, a numpy view,
  `load_state_dict`, a new tensor).
- `lipschitz_estimate()`: a differentiable power-iteration estimate (warm-started from a
  stored vector, one step per call) for training; it converges from below.
- `rounding()`: how float32 execution rounds the layer (None: computed exactly, as
  ReLU, MinMax, GroupSort and Flatten are), for `checkers.lipschitz.network.float_error`.

Plain layers (nn.Linear, ReLU, Flatten, Conv2d, AvgPool2d) subclass torch's own, so the
exact verifier (`checkers.plnet`) reads networks built from them.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from checkers.lipschitz.spectral import (
    abs_spectral_upper, conv_matrix, conv_patch_upper, mul_up, power_step, spectral_upper, sqrt_up, up,
)
from spec.errors import ModelError

DENSE_LIMIT = 4096  # a convolution whose input has at most this many values is bounded through its exact matrix


@dataclass(frozen=True)
class Rounding:
    """A layer computed as out = W h + b in float32: `terms` summands per output (bias included),
    `abs_bound` >= || |W| ||_2 and `bias_norm` >= ||b||_2 (float64 upper bounds)."""

    terms: int
    abs_bound: float
    bias_norm: float


def _state_tensors(module: nn.Module) -> list[torch.Tensor]:
    """Every parameter and buffer the module's function depends on (all but the `_pi` training vectors)."""
    out: list[torch.Tensor] = []
    stack: list[nn.Module | None] = [module]
    while stack:  # a direct walk: module.parameters() costs twice as much
        current = stack.pop()
        if current is None:
            continue
        out.extend(p for p in current._parameters.values() if p is not None)
        out.extend(b for name, b in current._buffers.items() if b is not None and name != "_pi")
        stack.extend(current._modules.values())
    return out


def _layout_key(module: nn.Module, tensors: list[torch.Tensor]) -> tuple[Any, ...]:
    """The layer's configuration and where and how its tensors lie (not their values)."""
    describe = getattr(module, "describe", None)
    return (describe() if describe is not None else None, getattr(module, "in_shape", None),
            *((t.data_ptr(), t.shape, t.stride(), t.dtype, t.device) for t in tensors))


def _host_view(t: torch.Tensor) -> Any:
    """A numpy view of a CPU tensor's values (None on other devices or for dtypes numpy lacks)."""
    if t.device.type != "cpu":
        return None
    try:
        return t.detach().numpy()
    except TypeError:  # bfloat16 and the like
        return None


class WeightState:
    """What a module computes with, as last seen, and the values cached for that state.

    `matches(module)` is False after any change, however it was made: an in-place op or optimiser
    step, a new tensor or `load_state_dict`, a changed configuration (the layer's `describe()` and
    traced input shape), and writes that no version counter sees (through `.data` or a numpy view):
    the values themselves are compared with an exact copy (bytewise on the CPU; on a GPU with
    torch.equal, which synchronises, except while a CUDA graph is captured, which replays what it
    captured anyway).
    """

    def __init__(self, module: nn.Module) -> None:
        tensors = _state_tensors(module)
        self.key = _layout_key(module, tensors)
        self.views = [_host_view(t) for t in tensors]  # valid while the layout key holds
        self.values = [t.detach().clone() if v is None else v.tobytes() for t, v in zip(tensors, self.views, strict=True)]
        self.cached: dict[str, Any] = {}

    def matches(self, module: nn.Module) -> bool:
        tensors = _state_tensors(module)
        if self.key != _layout_key(module, tensors):
            return False
        for t, view, value in zip(tensors, self.views, self.values, strict=True):
            if view is not None:
                if view.tobytes() != value:
                    return False
            elif not (t.is_cuda and torch.cuda.is_current_stream_capturing()) and not torch.equal(t.detach(), value):
                return False
        return True


class LipschitzLayer(nn.Module, metaclass=ABCMeta):
    """The interface (a mixin placed before the torch base class); `describe` is abstract."""

    def weight_state(self) -> WeightState:
        """The layer's current `WeightState` (a new one, with nothing cached, after any change).

        A frozen layer (`freeze`: the private copy inside a `CertifiedClassifier`) skips the check."""
        state: WeightState | None = self.__dict__.get("_lip_state")
        if state is None or not (self.__dict__.get("_lip_frozen") or state.matches(self)):
            state = WeightState(self)
            self.__dict__["_lip_state"] = state
        return state

    def freeze(self) -> None:
        """Promise that the weights never change again: later uses skip the check (for private copies only)."""
        self.weight_state()
        self.__dict__["_lip_frozen"] = True

    def _cached(self, name: str, compute: Callable[[], Any]) -> Any:
        cached = self.weight_state().cached
        if name not in cached:
            cached[name] = compute()
        return cached[name]

    def lipschitz_bound(self) -> float:
        """A sound float64 upper bound on the l2 Lipschitz constant (cached, invalidated by any weight change)."""
        return float(self._cached("bound", self._compute_bound))

    def rounding(self) -> Rounding | None:
        """The float32 rounding model of the layer (cached), or None when it computes exactly."""
        return self._cached("rounding", self._compute_rounding)  # type: ignore[no-any-return]

    def lipschitz_estimate(self) -> torch.Tensor:
        """A differentiable estimate of the Lipschitz constant for training (from below; not a bound).

        Parameter-free layers return their (exact or sound) constant.
        """
        return torch.tensor(self.lipschitz_bound())

    @abstractmethod
    def describe(self) -> list[Any]:
        """The checkpoint description of the layer (see checkers.lipschitz.checkpoint)."""

    def _compute_bound(self) -> float:
        return 1.0

    def _compute_rounding(self) -> Rounding | None:
        return None


# ---------------------------------------------------------------- 1-Lipschitz, exactly computed


class ReLU(LipschitzLayer, nn.ReLU):
    """max(x, 0): 1-Lipschitz, exact in float."""

    def describe(self) -> list[Any]:
        return ["relu"]


class Flatten(LipschitzLayer, nn.Flatten):
    """(batch, ...) -> (batch, k): an isometry."""

    def describe(self) -> list[Any]:
        return ["flatten"]


class MinMax(LipschitzLayer):
    """MaxMin (Anil et al. 2019): channels split in halves a, b -> (max(a, b), min(a, b)).

    Each output pair is a permutation of an input pair: 1-Lipschitz and gradient-norm preserving.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % 2:
            raise ModelError(f"MinMax needs an even number of channels, got {x.shape[1]}")
        a, b = x.chunk(2, dim=1)
        return torch.cat([torch.maximum(a, b), torch.minimum(a, b)], dim=1)

    def describe(self) -> list[Any]:
        return ["minmax"]


class GroupSort(LipschitzLayer):
    """Sort each group of `group` consecutive channels (descending): a permutation, 1-Lipschitz."""

    def __init__(self, group: int) -> None:
        super().__init__()
        if group < 1:
            raise ModelError(f"GroupSort group size must be >= 1, got {group!r}")
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] % self.group:
            raise ModelError(f"GroupSort({self.group}) needs channels divisible by {self.group}, got {x.shape[1]}")
        grouped = x.reshape(x.shape[0], x.shape[1] // self.group, self.group, *x.shape[2:])
        return grouped.sort(dim=2, descending=True).values.reshape(x.shape)

    def describe(self) -> list[Any]:
        return ["groupsort", self.group]


# ---------------------------------------------------------------- dense layers


def _matrix_estimate(layer: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    buf: torch.Tensor = layer._pi  # type: ignore[assignment]
    if buf.shape != (weight.shape[1],) or buf.device != weight.device:
        buf = torch.randn(weight.shape[1], device=weight.device, dtype=weight.dtype)
    sigma, v = power_step(lambda v: weight @ v, lambda u: weight.T @ u, buf.to(weight.dtype))
    layer._pi = v.detach()
    return sigma


class _Dense(LipschitzLayer):
    """A layer computed as F.linear(x, effective_weight(), bias)."""

    @abstractmethod
    def effective_weight(self) -> torch.Tensor:
        """The (out, in) weight F.linear uses."""

    def _compute_bound(self) -> float:
        with torch.no_grad():
            return spectral_upper(self.effective_weight())

    def _compute_rounding(self) -> Rounding:
        with torch.no_grad():
            w = self.effective_weight()
            b: Any = getattr(self, "bias", None)
            bias = 0.0 if b is None else spectral_upper(b.reshape(1, -1))
            return Rounding(int(w.shape[1]) + 1, abs_spectral_upper(w), bias)

    def lipschitz_estimate(self) -> torch.Tensor:
        return _matrix_estimate(self, self.effective_weight())


class Linear(_Dense, nn.Linear):
    """nn.Linear with a sound spectral-norm bound (Gram iteration)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("_pi", torch.randn(in_features), persistent=False)

    def effective_weight(self) -> torch.Tensor:
        return self.weight

    def describe(self) -> list[Any]:
        return ["linear", self.in_features, self.out_features]


class _Derived(_Dense):
    """A dense layer whose weight is derived from parameters; the derived weight is cached when not training."""

    def effective_weight(self) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            return self._derive()
        with torch.no_grad():
            return self._cached("weight", self._derive)  # type: ignore[no-any-return]

    @abstractmethod
    def _derive(self) -> torch.Tensor:
        """The weight from the parameters (differentiable)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.effective_weight(), self.bias)  # type: ignore[arg-type]


class ChordLinear(_Derived):
    """CHORD dense layer (Hu et al. 2024): W = L^-1 X with L L^T = X X^T + delta I, so sigma_max(W) < 1.

    The orthogonalisation runs in float64 and W is rounded to float32; the certified bound
    is that of the rounded W as used, not the exact-arithmetic "< 1".
    """

    def __init__(self, in_features: int, out_features: int, delta: float = 1e-4) -> None:
        super().__init__()
        if delta <= 0:
            raise ModelError(f"CHORD delta={delta!r} must be > 0")
        self.in_features, self.out_features, self.delta = in_features, out_features, delta
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.orthogonal_(self.weight)
        self.register_buffer("_pi", torch.randn(in_features), persistent=False)

    def _derive(self) -> torch.Tensor:
        x = self.weight.to(torch.float64)
        wide = x.shape[0] <= x.shape[1]
        x = x if wide else x.T
        eye = torch.eye(x.shape[0], dtype=torch.float64, device=x.device)
        chol = torch.linalg.cholesky(x @ x.T + self.delta * eye)
        w = torch.linalg.solve_triangular(chol, x, upper=False)
        out: torch.Tensor = (w if wide else w.T).to(self.weight.dtype)
        return out

    def describe(self) -> list[Any]:
        return ["chord", self.in_features, self.out_features, self.delta]


class NormalizedLinear(_Derived):
    """A last layer with unit-norm rows, W_i = V_i / ||V_i||: every row difference has norm <= 2."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / math.sqrt(in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.register_buffer("_pi", torch.randn(in_features), persistent=False)

    def _derive(self) -> torch.Tensor:
        out: torch.Tensor = self.weight / self.weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return out

    def describe(self) -> list[Any]:
        return ["normlinear", self.in_features, self.out_features]


# ---------------------------------------------------------------- convolutions and pooling


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def conv_upper(weight: torch.Tensor, in_shape: tuple[int, int, int] | None, stride: tuple[int, int],
               padding: tuple[int, int]) -> float:
    """A sound bound on a zero-padded convolution: the exact operator's Gram bound for small inputs,
    else (or if smaller) the size-independent patch bound."""
    bound = conv_patch_upper(weight, stride)
    if in_shape is not None and math.prod(in_shape) <= DENSE_LIMIT:
        bound = min(bound, spectral_upper(conv_matrix(weight, in_shape, stride, padding)))
    return bound


class _ConvBase(LipschitzLayer):
    """Shared by Conv2d and the LiResNet block: the traced input shape and the conv bounds."""

    in_shape: tuple[int, int, int] | None = None

    @abstractmethod
    def _conv_params(self) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """(weight, stride, padding) of the convolution the layer computes."""

    def _check_shape(self, x: torch.Tensor) -> None:
        shape = (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))
        if self.in_shape is None:
            self.in_shape = shape
        elif shape != self.in_shape:
            raise ModelError(f"{type(self).__name__} was bounded for inputs {list(self.in_shape)}, got {list(shape)}")

    def _compute_bound(self) -> float:
        with torch.no_grad():
            weight, stride, padding = self._conv_params()
            return conv_upper(weight, self.in_shape, stride, padding)

    def _compute_rounding(self) -> Rounding:
        with torch.no_grad():
            weight, stride, padding = self._conv_params()
            bias = getattr(self, "bias", None)
            bnorm = 0.0 if bias is None else spectral_upper(bias.reshape(1, -1))
            if self.in_shape is not None:  # the bias is added at every output position
                _, h, w = self.in_shape
                positions = ((h + 2 * padding[0] - weight.shape[2]) // stride[0] + 1) * (
                    (w + 2 * padding[1] - weight.shape[3]) // stride[1] + 1)
                bnorm = mul_up(bnorm, sqrt_up(float(positions)))
            else:
                raise ModelError(f"{type(self).__name__} has not seen an input yet: its input size is unknown")
            terms = int(weight[0].numel()) + 1
            return Rounding(terms, conv_upper(weight.abs(), self.in_shape, stride, padding), bnorm)

    def lipschitz_estimate(self) -> torch.Tensor:
        weight, stride, padding = self._conv_params()
        if self.in_shape is None:
            raise ModelError(f"{type(self).__name__} has not seen an input yet: its input size is unknown")
        out_shape = F.conv2d(torch.zeros(1, *self.in_shape, device=weight.device), weight.detach(), None,
                             stride, padding).shape
        extra = tuple(self.in_shape[i + 1] - ((out_shape[i + 2] - 1) * stride[i] - 2 * padding[i]
                                              + weight.shape[i + 2]) for i in range(2))
        buf: torch.Tensor = self._pi  # type: ignore[has-type]
        if tuple(buf.shape) != (1, *self.in_shape):
            buf = torch.randn(1, *self.in_shape, device=weight.device)
        sigma, v = power_step(lambda v: F.conv2d(v, weight, None, stride, padding),
                              lambda u: F.conv_transpose2d(u, weight, None, stride, padding, extra), buf)
        self._pi = v.detach()
        return sigma


class Conv2d(_ConvBase, nn.Conv2d):
    """A zero-padded convolution with a sound bound: the exact operator's bound for inputs of at most
    DENSE_LIMIT values, else the patch bound sqrt(ceil(k/s)^2) ||W reshaped||_2."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__(in_channels, out_channels, kernel, stride=stride, padding=padding)
        self.register_buffer("_pi", torch.zeros(0), persistent=False)

    def _conv_params(self) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        return self.weight, _pair(self.stride), _pair(self.padding)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_shape(x)
        return super().forward(x)

    def describe(self) -> list[Any]:
        return ["conv2d", self.in_channels, self.out_channels, self.kernel_size[0], self.stride[0], self.padding[0]]


class LiResNetBlock(_ConvBase):
    """LiResNet block (Hu et al. 2023): x -> act(conv(x; I + V) + b), the skip folded into the centre tap.

    One linear convolution carries identity plus residual, so its bound is that of the
    combined operator (not 1 + ||V||). Stride 1, 'same' zero padding, odd kernel.
    """

    def __init__(self, channels: int, kernel: int = 3, activation: str = "minmax") -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ModelError(f"LiResNet kernel size must be odd, got {kernel!r}")
        if activation not in ("minmax", "relu"):
            raise ModelError(f"LiResNet activation must be 'minmax' or 'relu', got {activation!r}")
        self.channels, self.kernel, self.activation = channels, kernel, activation
        self.weight = nn.Parameter(torch.randn(channels, channels, kernel, kernel) * (0.1 / (channels * kernel)))
        self.bias = nn.Parameter(torch.zeros(channels))
        identity = torch.zeros(channels, channels, kernel, kernel)
        identity[torch.arange(channels), torch.arange(channels), kernel // 2, kernel // 2] = 1.0
        self.register_buffer("identity", identity, persistent=False)
        self.register_buffer("_pi", torch.zeros(0), persistent=False)
        self.act: nn.Module = MinMax() if activation == "minmax" else nn.ReLU()

    def folded(self) -> torch.Tensor:
        identity: torch.Tensor = self.identity  # type: ignore[assignment]
        out: torch.Tensor = identity.to(self.weight.dtype) + self.weight
        return out

    def _conv_params(self) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        return self.folded(), (1, 1), (self.kernel // 2, self.kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_shape(x)
        return self.act(  # type: ignore[no-any-return]
            F.conv2d(x, self.folded(), self.bias, 1, self.kernel // 2))

    def describe(self) -> list[Any]:
        return ["liresnet", self.channels, self.kernel, self.activation]


class AvgPool2d(LipschitzLayer, nn.AvgPool2d):
    """Average pooling without padding: ||A||_2 <= sqrt(||A||_1 ||A||_inf) = sqrt(ceil(kh/sh) ceil(kw/sw) / (kh kw)).

    Non-overlapping pooling (stride = kernel) gives 1/k, not 1; overlap raises it.
    """

    def __init__(self, kernel: int, stride: int | None = None) -> None:
        super().__init__(kernel, stride=stride if stride is not None else kernel)

    def _sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return _pair(self.kernel_size), _pair(self.stride)

    def _compute_bound(self) -> float:
        (kh, kw), (sh, sw) = self._sizes()
        overlap = math.ceil(kh / sh) * math.ceil(kw / sw)
        return sqrt_up(up(overlap / (kh * kw)))

    def _compute_rounding(self) -> Rounding:
        (kh, kw), _ = self._sizes()
        return Rounding(kh * kw + 1, self._compute_bound(), 0.0)

    def describe(self) -> list[Any]:
        (k, _), (s, _) = self._sizes()
        return ["avgpool", k, s]
