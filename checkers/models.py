"""Model files to torch modules: ONNX, and torch checkpoints read without running code.

    >>> module = load_model("net.onnx")          # or "net.pt" / "net.pth"
    >>> scores = module(torch.zeros(1, 5))        # flat (batch, n) -> (batch, m)

Every model takes flat inputs of shape (batch, n) and returns flat scores (batch, m),
in float32. `.onnx` files are imported by `checkers.onnx_import.load_onnx`.

A torch checkpoint (`.pt`, `.pth`) is read ONLY with `torch.load(path, weights_only=True)`:
tensors and plain containers, never a pickled object (a checkpoint holding one, such as a
whole `torch.save(model)`, is refused). Before torch reads it (`read_checkpoint`), the file
is checked by `checkers.userfiles`: a regular file within CERTSPEC_MAX_MODEL_BYTES, in
torch.save's zip format (older formats are refused), whose entries inflate to no more than
that limit; the loaded data may expand to at most MAX_NODES values (shared references
counted each time), and the layers, weights and one sample's activations it declares are
checked against CERTSPEC_MAX_LAYERS and CERTSPEC_MAX_ELEMENTS before a weight is converted
(the layers run on the meta device first). It must be a dict of exactly this form::

    {
        "input_shape": [1, 28, 28],              # one sample's shape (positive ints)
        "layers": [                              # the nn.Sequential, in order
            ["conv2d", 1, 8, 3, 1, 1],           # in_channels, out_channels, kernel, stride, padding
            ["relu"],
            ["flatten"],                         # nn.Flatten(): (batch, ...) -> (batch, k)
            ["linear", 6272, 10],                # in_features, out_features
        ],
        "state_dict": {"0.weight": ..., "0.bias": ..., "3.weight": ..., "3.bias": ...},
    }

`state_dict` keys are `"<k>.weight"` and `"<k>.bias"` for the k-th entry of `layers`
(every linear and conv2d layer has a bias); their shapes must be those the layer
description implies, and there must be no other key. When `input_shape` has more than
one dimension, the module first reshapes each flat sample to it. Its output must be flat:
the last layer is a linear layer or a flatten. `save_model` writes this format.
A dict with a "format" key is a Lipschitz network instead (`checkers.lipschitz.checkpoint`).
Anything else is a `ModelError` naming the file.
"""

from __future__ import annotations

import io
import math
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from checkers.finite import describe_nonfinite
from checkers.onnx_import import MAX_VALUES, Reshape, load_onnx
from checkers.userfiles import MODEL, check_archive, check_elements, check_layers, check_nodes, read_file
from spec import ir
from spec.errors import ModelError, UsageError, printable

CHECKPOINT_SUFFIXES = (".pt", ".pth")
MODEL_SUFFIXES = (".onnx", *CHECKPOINT_SUFFIXES)
_KEYS = ("input_shape", "layers", "state_dict")
_ARITY = {"linear": 2, "conv2d": 5, "relu": 0, "flatten": 0}


@dataclass(frozen=True)
class Model:
    """A loaded model: the module (flat (batch, n) -> (batch, m)) and one sample's input shape."""

    module: nn.Module
    input_shape: tuple[int, ...]

    @property
    def n_inputs(self) -> int:
        return math.prod(self.input_shape)

    def n_outputs(self) -> int:
        """The number of scores, found by running the module on one zero input."""
        with torch.no_grad():
            y = self.module(torch.zeros(1, self.n_inputs))
        if y.dim() != 2 or y.shape[0] != 1:
            raise ModelError(f"the model's output has shape {list(y.shape)} for one input: it must be (1, m)")
        return int(y.shape[1])


def no_model(prop: ir.Property) -> UsageError:
    """The error for a property whose network was given no `--model NAME=PATH` (one wording for every command)."""
    return UsageError(f"property {prop.name} is about network {prop.target}, which has no model: "
                      f"give --model {prop.target}=PATH")


def open_model(path: str | Path) -> Model:
    """Load a `.onnx`, `.pt` or `.pth` model with its input shape; ModelError for any problem."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        module, shape = load_onnx(path)
        return Model(module, tuple(shape))
    if suffix in CHECKPOINT_SUFFIXES:
        return _load_checkpoint(path)
    raise ModelError(f"{path}: unknown model format {path.suffix or '(no suffix)'!r}: use .onnx, .pt or .pth")


def load_model(path: str | Path) -> nn.Module:
    """The torch module of a model file: flat (batch, n) inputs to (batch, m) float32 scores."""
    return open_model(path).module


# ---------------------------------------------------------------- checkpoints


def read_checkpoint(path: str | Path) -> Any:
    """The data of a torch checkpoint, read with weights_only=True after its format and sizes are checked
    (`checkers.userfiles`: a regular file within CERTSPEC_MAX_MODEL_BYTES, a zip archive whose entries
    inflate to no more than that, data that expands to at most MAX_NODES values); ModelError otherwise."""
    name = printable(str(path))
    raw = read_file(path, MODEL)
    check_archive(raw, name)
    try:
        data = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        raise ModelError(f"{name}: {_unpickling_message(str(err))}") from None
    except Exception as err:  # a truncated or corrupt archive: torch raises RuntimeError and others
        raise ModelError(f"{name}: not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    check_nodes(data, name)
    return data


def _load_checkpoint(path: Path) -> Model:
    data = read_checkpoint(path)
    try:
        return _build(data)
    except ModelError as err:
        raise ModelError(f"{printable(str(path))}: {err.message}") from None


def _unpickling_message(text: str) -> str:
    """A one-line reason from torch's long weights_only error."""
    detail = text.split("WeightsUnpickler error:", 1)[-1].strip() if "WeightsUnpickler error:" in text else ""
    detail = " ".join(detail.split("\n\n", 1)[0].split())
    found = re.search(r"Unsupported global: GLOBAL (\S+)", detail)
    if found:
        return (
            f"refused: the checkpoint holds a pickled object ({found.group(1)}), not only tensors and plain "
            "containers; certspec reads checkpoints with weights_only=True: save a dict of input_shape, layers "
            "and state_dict (see checkers.models)"
        )
    return f"not a readable torch checkpoint ({detail or 'the weights-only unpickler failed'})"


def _int(value: Any, what: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ModelError(f"{what} must be an integer >= {least}, got {value!r}")
    return value


def _shape(value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ModelError(f"input_shape must be a non-empty list of positive integers, got {value!r}")
    shape = tuple(_int(d, "each input_shape dimension") for d in value)
    if math.prod(shape) > MAX_VALUES:
        raise ModelError(f"input_shape {list(shape)} has more than {MAX_VALUES} values per sample")
    return shape


def _layer(k: int, spec: Any) -> tuple[nn.Module, dict[str, tuple[int, ...]]]:
    """The module of layer description k, and the shapes of the parameters it needs."""
    if not isinstance(spec, (list, tuple)) or not spec or not isinstance(spec[0], str):
        raise ModelError(f"layer {k}: expected a list such as ['linear', 5, 50], got {spec!r}")
    kind, args = spec[0], list(spec[1:])
    if kind not in _ARITY:
        raise ModelError(f"layer {k}: unknown kind {kind!r} (known: {', '.join(_ARITY)})")
    if len(args) != _ARITY[kind]:
        raise ModelError(f"layer {k}: {kind} takes {_ARITY[kind]} integers, got {args!r}")
    if kind == "relu":
        return nn.ReLU(), {}
    if kind == "flatten":
        return nn.Flatten(), {}
    if kind == "linear":
        n_in, n_out = (_int(a, f"layer {k}: linear size") for a in args)
        shapes = {"weight": (n_out, n_in), "bias": (n_out,)}
        return _lazy(lambda: nn.Linear(n_in, n_out)), shapes
    cin, cout, kernel = (_int(a, f"layer {k}: conv2d size") for a in args[:3])
    stride = _int(args[3], f"layer {k}: conv2d stride")
    padding = _int(args[4], f"layer {k}: conv2d padding", least=0)
    shapes = {"weight": (cout, cin, kernel, kernel), "bias": (cout,)}
    return _lazy(lambda: nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding)), shapes


def _lazy(make: Callable[[], nn.Module]) -> nn.Module:
    """The layer built on the meta device: no memory is allocated until its tensors are assigned."""
    with torch.device("meta"):
        return make()


def _check_sizes(layers: list[nn.Module], expected: dict[str, tuple[int, ...]], shape: tuple[int, ...]) -> None:
    """ModelError when a weight, all of them, or one sample's output of a layer would hold more values than
    CERTSPEC_MAX_ELEMENTS allows (a tiny file can declare a 10^5 x 10^5 layer, or a padding of 10^5 on a
    1 x 1 image). The layers are still on the meta device: they run on a meta sample, allocating nothing."""
    for key, want in expected.items():
        check_elements(math.prod(want), f"state_dict[{key!r}] (shape {list(want)})")
    check_elements(sum(math.prod(w) for w in expected.values()), f"the model's {len(expected)} weight tensors")
    x = torch.empty(1, *shape, device="meta")
    for k, layer in enumerate(layers):
        try:
            x = layer(x)
        except Exception:  # the layers do not compose: the real run names the misfit
            return
        check_elements(math.prod(x.shape[1:]), f"layer {k}'s output for one input (shape {list(x.shape[1:])})")


def _build(data: Any) -> Model:
    from checkers.lipschitz.checkpoint import build, is_lipschitz_checkpoint

    if is_lipschitz_checkpoint(data):  # a LipschitzNet (checkers.lipschitz.checkpoint): its own, separate format
        net = build(data)
        return Model(net, net.input_shape)
    if not isinstance(data, dict) or set(data) != set(_KEYS):
        got = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ModelError(
            f"a checkpoint must be a dict with exactly the keys {list(_KEYS)} (see checkers.models), got {got}"
        )
    shape = _shape(data["input_shape"])
    specs, state = data["layers"], data["state_dict"]
    if not isinstance(specs, (list, tuple)) or not specs:
        raise ModelError("layers must be a non-empty list of layer descriptions")
    check_layers(len(specs))
    if not isinstance(state, dict):
        raise ModelError(f"state_dict must be a dict of tensors, got {type(state).__name__}")
    layers, expected = [], {}
    for k, spec in enumerate(specs):
        layer, shapes = _layer(k, spec)
        layers.append(layer)
        expected.update({f"{k}.{name}": s for name, s in shapes.items()})
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(map(str, state)) - set(expected))
    if missing or extra:
        raise ModelError(f"state_dict does not fit the layers: missing {missing}, unexpected {extra}")
    _check_sizes(layers, expected, shape)  # before a tensor of the file is read or converted
    for key, want in expected.items():
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise ModelError(f"state_dict[{key!r}] must be a floating-point tensor")
        if tensor.layout != torch.strided:  # sparse tensors load too, and most operators refuse them
            raise ModelError(f"state_dict[{key!r}] is a {tensor.layout} tensor: a checkpoint's weights must be dense")
        if tuple(tensor.shape) != want:
            raise ModelError(f"state_dict[{key!r}] has shape {list(tensor.shape)}, the layer needs {list(want)}")
        as32 = tensor.detach().to(torch.float32)  # the model runs in float32: 1e300 is an infinity there
        if not bool(torch.isfinite(as32).all()):
            raise ModelError(f"state_dict[{key!r}] holds {describe_nonfinite(as32)} (in float32): a model's weights "
                             "must be finite")
    body = nn.Sequential(*layers)
    body.load_state_dict({k: state[k].detach().to(torch.float32).clone() for k in expected}, assign=True)
    module = nn.Sequential(Reshape(shape), *body) if len(shape) > 1 else body
    module.eval()
    model = Model(module, shape)
    try:
        model.n_outputs()
    except ModelError:
        raise
    except Exception as err:  # the layers do not compose on this input shape
        raise ModelError(f"the layers do not fit input_shape {list(shape)}: {err}") from None
    return model


# ---------------------------------------------------------------- saving


def _describe(k: int, layer: nn.Module) -> list[Any]:
    if isinstance(layer, nn.ReLU):
        return ["relu"]
    if isinstance(layer, nn.Flatten) and (layer.start_dim, layer.end_dim) == (1, -1):
        return ["flatten"]
    if isinstance(layer, nn.Linear) and layer.bias is not None:
        return ["linear", layer.in_features, layer.out_features]
    if (
        isinstance(layer, nn.Conv2d)
        and layer.bias is not None
        and layer.kernel_size[0] == layer.kernel_size[1]
        and layer.stride[0] == layer.stride[1]
        and isinstance(layer.padding, tuple)
        and layer.padding[0] == layer.padding[1]
        and layer.dilation == (1, 1)
        and layer.groups == 1
        and layer.padding_mode == "zeros"
    ):
        return ["conv2d", layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0],
                layer.padding[0]]
    raise ModelError(
        f"layer {k} ({layer!r}) cannot be saved: supported are nn.Linear and square nn.Conv2d (with bias, "
        "no dilation or groups), nn.ReLU and nn.Flatten()"
    )


def save_model(module: nn.Module, input_shape: Sequence[int], path: str | Path) -> None:
    """Write an nn.Sequential of Linear/Conv2d/ReLU/Flatten layers as a checkpoint `load_model` reads.

    A leading `Reshape` to `input_shape` (as `load_model` adds) is dropped.
    """
    shape = _shape(list(input_shape))
    if not isinstance(module, nn.Sequential):
        raise ModelError(f"save_model needs an nn.Sequential, got {type(module).__name__}")
    layers = list(module)
    if layers and isinstance(layers[0], Reshape) and tuple(layers[0].shape) == shape:
        layers = layers[1:]
    if not layers:
        raise ModelError("save_model needs at least one layer")
    described, state = [], {}
    for k, layer in enumerate(layers):
        described.append(_describe(k, layer))
        for name, tensor in layer.state_dict().items():
            state[f"{k}.{name}"] = tensor.detach().to(torch.float32).clone()
    torch.save({"input_shape": list(shape), "layers": described, "state_dict": state}, Path(path))
