"""Checkpoints of LipschitzNets, read with `torch.load(weights_only=True)` like every model file.

A Lipschitz checkpoint is a dict with a "format" key (the plain format of
`checkers.models` has none)::

    {
        "format": "certspec-lipschitz-1",
        "input_shape": [64],
        "layers": [["chord", 64, 128, 0.0001], ["minmax"], ..., ["linear", 128, 10]],  # body, then the head
        "state_dict": {...},            # LipschitzNet.state_dict(): tensors only
    }

Layer descriptions: ["linear", in, out], ["chord", in, out, delta], ["normlinear", in, out],
["conv2d", in_ch, out_ch, kernel, stride, padding], ["liresnet", channels, kernel, "minmax"|"relu"],
["avgpool", kernel, stride], ["minmax"], ["groupsort", group], ["relu"], ["flatten"].
Anything else is a ModelError naming the layer; nothing in a checkpoint runs code.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from checkers.finite import describe_nonfinite
from checkers.lipschitz.layers import (
    AvgPool2d, ChordLinear, Conv2d, Flatten, GroupSort, Linear, LiResNetBlock, MinMax, NormalizedLinear, ReLU,
)
from checkers.lipschitz.network import LipschitzNet
from checkers.userfiles import check_elements, check_layers
from spec.errors import ModelError

FORMAT = "certspec-lipschitz-1"
_KEYS = {"format", "input_shape", "layers", "state_dict"}
# kind -> (constructor, argument kinds: "i" positive int, "n" int >= 0, "f" positive float, "a" activation name)
_KINDS: dict[str, tuple[Any, str]] = {
    "linear": (Linear, "ii"), "chord": (ChordLinear, "iif"), "normlinear": (NormalizedLinear, "ii"),
    "conv2d": (Conv2d, "iiiin"), "liresnet": (LiResNetBlock, "iia"), "avgpool": (AvgPool2d, "ii"),
    "minmax": (MinMax, ""), "groupsort": (GroupSort, "i"), "relu": (ReLU, ""), "flatten": (Flatten, ""),
}


def _arg(k: int, kind: str, code: str, value: Any) -> Any:
    ok = {
        "i": isinstance(value, int) and not isinstance(value, bool) and value >= 1,
        "n": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "f": isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
        "a": value in ("minmax", "relu"),
    }[code]
    if not ok:
        want = {"i": "an integer >= 1", "n": "an integer >= 0", "f": "a number > 0", "a": "'minmax' or 'relu'"}[code]
        raise ModelError(f"layer {k} ({kind}): argument {value!r} must be {want}")
    return value


def _parse(k: int, spec: Any) -> tuple[str, list[Any]]:
    """(kind, checked arguments) of layer description k."""
    if not isinstance(spec, (list, tuple)) or not spec or not isinstance(spec[0], str):
        raise ModelError(f"layer {k}: expected a list such as ['linear', 64, 10], got {spec!r}")
    kind, args = spec[0], list(spec[1:])
    if kind not in _KINDS:
        raise ModelError(f"layer {k}: unknown kind {kind!r} (known: {', '.join(_KINDS)})")
    codes = _KINDS[kind][1]
    if len(args) != len(codes):
        raise ModelError(f"layer {k}: {kind} takes {len(codes)} arguments, got {args!r}")
    return kind, [_arg(k, kind, c, a) for c, a in zip(codes, args, strict=True)]


def _layer(k: int, spec: Any) -> nn.Module:
    kind, args = _parse(k, spec)
    return _KINDS[kind][0](*args)  # type: ignore[no-any-return]


def _check_sizes(shape: list[int], parsed: list[tuple[str, list[Any]]]) -> None:
    """ModelError when a layer's tensors, all of them, or one sample's activations would hold more values than
    CERTSPEC_MAX_ELEMENTS allows: checked from the descriptions, before any layer is built (building one
    allocates its weights, and the network runs once on a sample when it is assembled)."""
    dims, total = list(shape), math.prod(shape)
    check_elements(total, f"input_shape {list(shape)}")
    for k, (kind, args) in enumerate(parsed):
        size = 0
        if kind in ("linear", "chord", "normlinear"):
            size = args[0] * args[1] + (min(args[0], args[1]) ** 2 if kind == "chord" else 0)  # chord: its Gram matrix
            dims = [args[1]]
        elif kind in ("conv2d", "liresnet"):
            cin, cout, kernel, stride, pad = args if kind == "conv2d" else (args[0], args[0], args[1], 1, args[1] // 2)
            size = cin * cout * kernel * kernel * (2 if kind == "liresnet" else 1)  # liresnet: its identity too
            if len(dims) == 3:
                dims = [cout, *((d + 2 * pad - kernel) // stride + 1 for d in dims[1:])]
        elif kind == "avgpool" and len(dims) == 3:
            dims = [dims[0], *((d - args[0]) // args[1] + 1 for d in dims[1:])]
        elif kind == "flatten":
            dims = [math.prod(dims)]
        check_elements(size, f"layer {k} ({kind})'s weights")
        check_elements(math.prod(max(d, 1) for d in dims), f"layer {k} ({kind})'s output for one input "
                                                           f"(shape {dims})")
        total += size
    check_elements(total, f"the network's {len(parsed)} layers' weights")


def is_lipschitz_checkpoint(data: Any) -> bool:
    return isinstance(data, dict) and "format" in data


def build(data: dict[str, Any]) -> LipschitzNet:
    """The LipschitzNet a checkpoint dict describes; ModelError for anything malformed."""
    if data.get("format") != FORMAT:
        raise ModelError(f"unknown checkpoint format {data.get('format')!r} (expected {FORMAT!r})")
    if set(data) != _KEYS:
        raise ModelError(f"a Lipschitz checkpoint has exactly the keys {sorted(_KEYS)}, got {sorted(map(str, data))}")
    shape, specs, state = data["input_shape"], data["layers"], data["state_dict"]
    if not isinstance(shape, (list, tuple)) or not shape or not all(isinstance(d, int) and d >= 1 for d in shape):
        raise ModelError(f"input_shape must be a non-empty list of positive integers, got {shape!r}")
    if not isinstance(specs, (list, tuple)) or len(specs) < 1:
        raise ModelError("layers must be a non-empty list (the body, then the head)")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError("state_dict must be a dict of tensors")
    sparse = [k for k, v in state.items() if v.layout != torch.strided]  # they load, and most operators refuse them
    if sparse:
        raise ModelError(f"state_dict[{sparse[0]!r}] is a {state[sparse[0]].layout} tensor: a checkpoint's weights "
                         "must be dense")
    check_layers(len(specs))
    parsed = [_parse(k, s) for k, s in enumerate(specs)]
    _check_sizes(list(shape), parsed)
    layers = [_KINDS[kind][0](*args) for kind, args in parsed]
    net = LipschitzNet(shape, layers[:-1], layers[-1])
    want = net.state_dict()
    missing, extra = sorted(set(want) - set(state)), sorted(set(map(str, state)) - set(want))
    if missing or extra:
        raise ModelError(f"state_dict does not fit the layers: missing {missing}, unexpected {extra}")
    for key, tensor in want.items():
        if tuple(state[key].shape) != tuple(tensor.shape) or not state[key].is_floating_point():
            raise ModelError(f"state_dict[{key!r}] has shape {list(state[key].shape)}, the layer needs "
                             f"{list(tensor.shape)} (floating point)")
        as32 = state[key].detach().to(torch.float32)  # the network runs in float32: 1e300 is an infinity there
        if not bool(torch.isfinite(as32).all()):
            raise ModelError(f"state_dict[{key!r}] holds {describe_nonfinite(as32)} (in float32): a model's weights "
                             "must be finite")
    net.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return net.eval()


def save_lipschitz(net: LipschitzNet, path: str | Path) -> None:
    """Write `net` as a checkpoint that `checkers.models.load_model` reads back."""
    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in net.state_dict().items()}
    torch.save({"format": FORMAT, "input_shape": list(net.input_shape), "layers": net.describe(),
                "state_dict": state}, Path(path))
