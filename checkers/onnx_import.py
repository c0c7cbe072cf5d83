"""ONNX models to torch modules, through the `onnx` package only (no code is executed).

A network is imported as a `torch.nn.Sequential` that takes flat inputs of shape
(batch, n) and returns flat scores (batch, m): the chain of the ONNX graph, each node
turned into the torch layer that computes it. Only chain-shaped graphs are imported
(each node reads the previous node's output and constants); an operator outside
`SUPPORTED`, or a branch, is a `ModelError` naming the node and the operator.

The file is parsed from its bytes as a protobuf message: nothing is unpickled, no other
file is opened (tensors stored as external data are refused, wherever their location
points: beside the model, outside its folder or absolute; external data is never read),
and no operator runs. The file itself is read by `checkers.userfiles.read_file` (a regular
file within CERTSPEC_MAX_MODEL_BYTES).
The first input dimension is the batch (fixed at 1 or symbolic); each sample of the
module's batch is computed as the ONNX graph computes a batch of one. The per-sample
shape is followed through the chain so that every layer is checked against its input.
Sizes are checked before they are allocated, against CERTSPEC_MAX_ELEMENTS
(`checkers.userfiles`): each tensor's declared dims, and each node's output for one sample,
computed first on the meta device. Absurd attributes are refused: strides, dilations and
kernel shapes below 1, negative pads, and Conv pads at least as wide as the dilated kernel
(outputs that would read only padding: pads 11585 on a 1 x 1 input asked for 4 GB), and
so are attributes an operator does not define (`_ATTRIBUTES`: one the import would ignore
may change what the node computes) or of another type than its definition's, constant
operands that are not float32 (ONNX computes an operator in one type; a Reshape's shape
must be integers) and inputs other than float32 (the module computes in float32, so a
float16 or float64 network's scores would not be its own).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from checkers.userfiles import MODEL, check_elements, read_file
from spec.errors import ModelError

MIN_OPSET = 7  # older opsets broadcast Add/Sub by an `axis` attribute: another semantics
MAX_VALUES = 1 << 26  # values in one input sample; a larger declared shape is refused
_DOMAINS = ("", "ai.onnx")
_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


class Shift(nn.Module):
    """x + offset, with a constant offset broadcast over the batch (ONNX Add/Sub of a constant)."""

    offset: torch.Tensor

    def __init__(self, offset: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("offset", offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offset


class Reshape(nn.Module):
    """Reshape every sample to `shape` (the batch dimension is kept)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class ConcatConst(nn.Module):
    """Concatenate constants (leading dimension 1, repeated over the batch) before and after x along `dim`."""

    head: torch.Tensor | None
    tail: torch.Tensor | None

    def __init__(self, head: torch.Tensor | None, tail: torch.Tensor | None, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("head", head)
        self.register_buffer("tail", tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x]
        if self.head is not None:
            parts.insert(0, self.head.expand(x.shape[0], *self.head.shape[1:]))
        if self.tail is not None:
            parts.append(self.tail.expand(x.shape[0], *self.tail.shape[1:]))
        return torch.cat(parts, dim=self.dim)


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _tensor(array: np.ndarray) -> torch.Tensor:
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused by the layer check
        return torch.from_numpy(np.array(array, dtype=np.float32, copy=True))


def _nonfinite(nan: np.ndarray, inf: np.ndarray) -> str:
    """'1 NaN entry, the first at index [0, 1]' (the wording of checkers.finite.describe_nonfinite)."""
    n_nan, n_inf = int(nan.sum()), int(inf.sum())
    first = [int(i) for i in np.argwhere(nan | inf)[0]]
    parts = [f"{n_nan} NaN" if n_nan else "", f"{n_inf} infinite" if n_inf else ""]
    return f"{' and '.join(p for p in parts if p)} {'entry' if n_nan + n_inf == 1 else 'entries'}, the first at index {first}"


def _full(shape: tuple[int, ...]) -> list[int]:
    """The ONNX shape of a batch of one sample of `shape`."""
    return [1, *shape]


class _Importer:
    def __init__(self, model: onnx.ModelProto, name: str) -> None:
        self.name = name
        self.graph = model.graph
        opset = max((o.version for o in model.opset_import if o.domain in _DOMAINS), default=0)
        if opset < MIN_OPSET:
            raise ModelError(f"{name}: opset {opset} is older than {MIN_OPSET}, the oldest certspec imports")
        if self.graph.sparse_initializer:
            raise ModelError(f"{name}: sparse initializers are not supported")
        self.consts = {t.name: self.array(t) for t in self.graph.initializer}
        for index, node in enumerate(self.graph.node):
            if node.op_type == "Constant" and node.domain in _DOMAINS:
                self.consts[node.output[0]] = self.constant(node, index)
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ModelError(f"{name}: expected one input tensor, found {len(inputs)}: {[i.name for i in inputs]}")
        tensor_type = inputs[0].type.tensor_type
        label = f"{name}: input {inputs[0].name!r}"
        if tensor_type.elem_type not in _FLOATS:
            raise ModelError(f"{label} is not a floating-point tensor")
        if tensor_type.elem_type != onnx.TensorProto.FLOAT:  # the module computes in float32: another dtype differs
            kind = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
            raise ModelError(f"{label} is {kind}: certspec computes networks in float32, as their witnesses are "
                             "checked; convert the model to float32")
        dims = list(tensor_type.shape.dim)
        if len(dims) < 2:
            raise ModelError(f"{label} has rank {len(dims)}: certspec needs a batch dimension first, e.g. [1, n]")
        for k, d in enumerate(dims[1:], start=1):
            if d.dim_value <= 0:
                what = repr(d.dim_param) if d.dim_param else "unknown"
                raise ModelError(f"{label}: dimension {k} is {what}; only the first (the batch) may be symbolic")
        self.shape: tuple[int, ...] = tuple(d.dim_value for d in dims[1:])
        if math.prod(self.shape) > MAX_VALUES:
            raise ModelError(f"{label} has shape {list(self.shape)}: more than {MAX_VALUES} values per sample")
        self.input_shape = self.shape
        self.current = inputs[0].name
        self.layers: list[nn.Module] = [Reshape(self.shape)]

    def array(self, tensor: onnx.TensorProto) -> np.ndarray:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:  # never read (see above)
            raise ModelError(f"{self.name}: tensor {tensor.name!r} is stored in an external file, which is not read")
        if any(d < 0 for d in tensor.dims):
            raise ModelError(f"{self.name}: tensor {tensor.name!r} has negative dimensions {list(tensor.dims)}")
        try:
            check_elements(math.prod(tensor.dims), f"tensor {tensor.name!r} (dims {list(tensor.dims)})")
        except ModelError as err:
            raise ModelError(f"{self.name}: {err.message}") from None
        try:
            array = np.asarray(numpy_helper.to_array(tensor))
        except Exception as err:  # a malformed tensor: wrong data size, unknown type...
            raise ModelError(f"{self.name}: tensor {tensor.name!r} cannot be read ({err})") from None
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            detail = _nonfinite(np.isnan(array), np.isinf(array))
            raise ModelError(f"{self.name}: tensor {tensor.name!r} holds {detail}: a model's weights must be finite")
        return array

    def constant(self, node: onnx.NodeProto, index: int) -> np.ndarray:
        a = _attrs(node)
        if "value" in a:
            return self.array(a["value"])
        for key in ("value_float", "value_floats", "value_int", "value_ints"):
            if key in a:  # integers stay integers: a shape, never an operand of arithmetic (ONNX types them so)
                return np.array(a[key], dtype=np.int64 if key.startswith("value_int") else np.float32)
        raise self.error(node, index, f"a Constant given by {sorted(a)} is not supported")

    def error(self, node: onnx.NodeProto, index: int, message: str) -> ModelError:
        label = node.name or f"#{index}"
        return ModelError(f"{self.name}: node {label!r} ({node.op_type}): {message}")

    def run(self) -> nn.Sequential:
        for index, node in enumerate(self.graph.node):
            if node.op_type == "Constant" and node.domain in _DOMAINS:
                continue
            handler = _HANDLERS.get(node.op_type) if node.domain in _DOMAINS else None
            if handler is None:
                op = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
                raise self.error(node, index, f"operator {op!r} is not supported (supported: {', '.join(SUPPORTED)})")
            variables = [x for x in node.input if x and x not in self.consts]
            if not variables:
                raise self.error(node, index, "the node reads only constants: fold them before the import")
            if variables != [self.current]:
                raise self.error(
                    node, index, f"the graph branches here: the node reads {variables}, not only the output "
                    f"{self.current!r} of the node before; certspec imports chain-shaped networks only",
                )
            if node.op_type not in ("Add", "Concat") and node.input[0] != self.current:
                raise self.error(node, index, f"the network's tensor {self.current!r} must be the first operand")
            consts = [self.consts[x] for x in node.input if x in self.consts]
            known = _ATTRIBUTES.get(node.op_type, {})
            unknown = sorted(a.name for a in node.attribute if a.name not in known)
            if unknown:  # an attribute the import would ignore may change what the node computes
                raise self.error(node, index, f"unknown attribute(s) {unknown} for {node.op_type} (known: "
                                 f"{', '.join(known) or 'none'})")
            for a in node.attribute:
                if a.type != known[a.name]:  # onnx.checker refuses it too; the import would misread it
                    raise self.error(node, index, f"attribute {a.name} is of type "
                                     f"{onnx.AttributeProto.AttributeType.Name(a.type)}, but {node.op_type} defines it "
                                     f"as {onnx.AttributeProto.AttributeType.Name(known[a.name])}")
            # ONNX computes an operator in one type: a shape is int64, every other operand float32 like the input
            want, what = (("iu", "its shape must be integers") if node.op_type == "Reshape"
                          else ("f", "its constant operands must be float32, as the network's input is"))
            odd = sorted({str(c.dtype) for c in consts if c.dtype.kind not in want or (want == "f" and c.dtype != np.float32)})
            if odd:
                raise self.error(node, index, f"{what}, got {odd}")
            try:
                with np.errstate(over="ignore"):  # an overflow to inf (Gemm's alpha) is refused just below
                    layer = handler(self, node, consts)
            except (ValueError, KeyError, IndexError, TypeError) as err:
                raise self.error(node, index, str(err)) from None
            for name, t in (*layer.named_parameters(), *layer.named_buffers()):  # finite constants can still
                if t is not None and not bool(torch.isfinite(t).all()):  # overflow float32 (1e300, Gemm's alpha)
                    detail = _nonfinite(torch.isnan(t).numpy(), torch.isinf(t).numpy())
                    raise self.error(node, index, f"its {name} (from {[x for x in node.input if x in self.consts]}) "
                                     f"holds {detail} in float32: a model's weights must be finite")
            try:  # the output's size first, on the meta device (nothing allocated)
                check_elements(math.prod(_meta_shape(layer, self.shape)), "its output for one input")
            except ModelError as err:
                raise self.error(node, index, err.message) from None
            try:
                with torch.no_grad():
                    out = layer(torch.zeros(_full(self.shape)))
            except (ValueError, RuntimeError, IndexError) as err:
                raise self.error(node, index, f"does not fit its input of shape {_full(self.shape)}: {err}") from None
            self.shape = tuple(out.shape[1:])
            self.layers.append(layer)
            self.current = node.output[0]
        outputs = [o.name for o in self.graph.output]
        if outputs != [self.current]:
            raise ModelError(f"{self.name}: the graph output {outputs} is not the end of its chain")
        declared = [d.dim_value for d in self.graph.output[0].type.tensor_type.shape.dim][1:]
        if declared and all(d > 0 for d in declared) and math.prod(declared) != math.prod(self.shape):
            raise ModelError(f"{self.name}: the output is declared {declared} per sample, the chain computes "
                             f"{list(self.shape)}")
        self.layers.append(nn.Flatten())
        return nn.Sequential(*self.layers).eval()


def _meta_shape(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """One sample's output shape of `layer`, computed on the meta device; () when it does not run there
    (the real run then says why)."""
    tensors = {name: t.to("meta") for name, t in (*layer.named_parameters(), *layer.named_buffers())}
    try:
        with torch.no_grad():
            out = torch.func.functional_call(layer, tensors, (torch.empty(_full(shape), device="meta"),))
    except Exception:  # any misfit: reported by the real run
        return ()
    return tuple(out.shape[1:])


def _need(consts: list[np.ndarray], count: int, op: str) -> list[np.ndarray]:
    if len(consts) != count:
        raise ValueError(f"{op} needs {count} constant operand(s), got {len(consts)}")
    return consts


def _rank(imp: _Importer, rank: int, op: str) -> None:
    if len(imp.shape) + 1 != rank:
        raise ValueError(f"{op} needs an input of rank {rank}, got shape {_full(imp.shape)}")


def _linear(weight: np.ndarray, bias: np.ndarray | None) -> nn.Linear:
    """y = x @ weight.T + bias, weight of shape (out, in), bias of shape (out,)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.weight = nn.Parameter(_tensor(weight))
    if bias is not None:
        layer.bias = nn.Parameter(_tensor(bias))
    return layer


def _matmul(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    (w,) = _need(consts, 1, "MatMul")
    if w.ndim != 2:
        raise ValueError(f"MatMul needs a constant 2-d right operand, got shape {list(w.shape)}")
    return _linear(w.T, None)


def _gemm(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    a = _attrs(node)
    if a.get("transA", 0):
        raise ValueError("transA=1 is not supported: the network's tensor must be the untransposed A")
    _rank(imp, 2, "Gemm")
    if len(consts) not in (1, 2) or consts[0].ndim != 2:
        raise ValueError("Gemm needs a constant 2-d B operand and at most a constant C")
    w = (consts[0] if a.get("transB", 0) else consts[0].T) * a.get("alpha", 1.0)
    bias = None
    if len(consts) == 2:  # C broadcasts to (1, N): a scalar, (N,), (1, N) or (1, 1)
        bias = np.broadcast_to(consts[1] * a.get("beta", 1.0), (1, w.shape[0])).reshape(-1)
    return _linear(w, bias)


def _offset(imp: _Importer, c: np.ndarray) -> torch.Tensor:
    """The per-sample offset of a constant added to the batch-of-one tensor, or a ValueError."""
    rank = len(imp.shape) + 1
    if c.ndim > rank or (c.ndim == rank and c.shape[0] != 1):
        raise ValueError(f"the constant of shape {list(c.shape)} broadcasts over the batch of {_full(imp.shape)}")
    return _tensor(c[0] if c.ndim == rank else c)


def _shift(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    offset = _offset(imp, _need(consts, 1, node.op_type)[0])
    return Shift(-offset if node.op_type == "Sub" else offset)


def _flatten(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    full, axis = _full(imp.shape), int(_attrs(node).get("axis", 1))
    if not -len(full) <= axis <= len(full):
        raise ValueError(f"axis {axis} is out of range for shape {full}")
    if math.prod(full[: axis + len(full) if axis < 0 else axis]) != 1:  # the batch of one would grow
        raise ValueError(f"axis={axis} on shape {full} folds sample dimensions into the batch")
    return nn.Flatten()


def _reshape(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    (shape,) = _need(consts, 1, "Reshape")
    full, dims = _full(imp.shape), [int(d) for d in shape.reshape(-1)]
    if 0 in dims and _attrs(node).get("allowzero", 0):
        raise ValueError("allowzero=1 with a 0 in the shape is not supported")
    if any(d == 0 and i >= len(full) for i, d in enumerate(dims)) or dims.count(-1) > 1 or min(dims, default=0) < -1:
        raise ValueError(f"reshape of {full} to {dims} is not valid")
    target = [full[i] if d == 0 else d for i, d in enumerate(dims)]
    n, known = math.prod(full), math.prod(d for d in target if d != -1)
    if -1 in target and known > 0 and n % known == 0:
        target[target.index(-1)] = n // known
    if math.prod(target) != n or -1 in target:
        raise ValueError(f"reshape of {full} to {dims} does not keep the number of values")
    if len(target) < 2 or target[0] != 1:
        raise ValueError(f"reshape of {full} to {dims} does not keep the batch dimension first")
    return Reshape(tuple(target[1:]))


def _relu(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    return nn.ReLU()


def _pads(a: dict[str, Any]) -> tuple[int, int]:
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode(errors="replace") if isinstance(auto_pad, bytes) else str(auto_pad)
    if auto_pad not in ("NOTSET", "VALID"):
        raise ValueError(f"auto_pad={auto_pad} is not supported: export with explicit pads")
    pads = [int(p) for p in a.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4:
        raise ValueError(f"pads {pads} are not those of a 2-d operator")
    if min(pads) < 0:
        raise ValueError(f"negative pads {pads} are not supported")
    if pads[:2] != pads[2:]:
        raise ValueError(f"asymmetric pads {pads} are not supported")
    return pads[0], pads[1]


def _pair(a: dict[str, Any], key: str, default: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """A 2-d kernel_shape, strides or dilations attribute: two integers >= 1."""
    value = tuple(int(v) for v in a.get(key, default))
    if len(value) != 2:
        raise ValueError(f"{key}={list(value)}: only 2-d operators are supported")
    if min(value) < 1:
        raise ValueError(f"{key}={list(value)} must be at least 1")
    return value[0], value[1]


def _check_pads(pads: tuple[int, int], kernel: tuple[int, int], dilation: tuple[int, int]) -> None:
    """A pad at least as wide as the (dilated) kernel adds outputs that read nothing but the padding (a
    100-byte file with pads 11585 on a 1 x 1 input asks for 4 GB): refused as absurd."""
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    if any(p >= e for p, e in zip(pads, extent, strict=True)):
        raise ValueError(f"pads {list(pads)} are not smaller than the kernel's extent {extent}: the outputs past "
                         "it would read only padding")


def _conv(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    a = _attrs(node)
    _rank(imp, 4, "Conv")
    if len(consts) not in (1, 2) or consts[0].ndim != 4:
        raise ValueError("Conv needs a constant 4-d weight (2-d convolution) and at most a constant bias")
    w, groups = consts[0], int(a.get("group", 1))
    kernel = _pair(a, "kernel_shape", (w.shape[2], w.shape[3]))
    if kernel != w.shape[2:]:
        raise ValueError(f"kernel_shape {list(kernel)} does not match the weight's shape {list(w.shape)}")
    pads, dilation = _pads(a), _pair(a, "dilations")
    _check_pads(pads, kernel, dilation)
    if groups < 1:
        raise ValueError(f"group={groups} must be at least 1")
    conv = nn.Conv2d(
        w.shape[1] * groups, w.shape[0], kernel, stride=_pair(a, "strides"), padding=pads,
        dilation=dilation, groups=groups, bias=len(consts) == 2,
    )
    conv.weight = nn.Parameter(_tensor(w))
    if len(consts) == 2:
        conv.bias = nn.Parameter(_tensor(consts[1]))
    return conv


def _batchnorm(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    scale, bias, mean, var = _need(consts, 4, "BatchNormalization")
    a, rank = _attrs(node), len(imp.shape) + 1
    if a.get("training_mode", 0) or a.get("spatial", 1) != 1 or len([o for o in node.output if o]) > 1:
        raise ValueError("only inference-mode, spatial batch normalization is supported")
    if rank not in (2, 3, 4):
        raise ValueError(f"batch normalization of shape {_full(imp.shape)} is not supported")
    kind = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
    bn = kind(scale.shape[0], eps=float(a.get("epsilon", 1e-5)))
    bn.weight = nn.Parameter(_tensor(scale))
    bn.bias = nn.Parameter(_tensor(bias))
    bn.running_mean = _tensor(mean)
    bn.running_var = _tensor(var)
    return bn.eval()


def _pool(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    a = _attrs(node)
    _rank(imp, 4, node.op_type)
    if "kernel_shape" not in a:
        raise ValueError("kernel_shape is missing")
    if a.get("ceil_mode", 0):
        raise ValueError("ceil_mode=1 is not supported")
    kernel, stride, dilation = _pair(a, "kernel_shape"), _pair(a, "strides"), _pair(a, "dilations")
    if node.op_type == "MaxPool":
        return nn.MaxPool2d(kernel, stride, padding=_pads(a), dilation=dilation)
    if dilation != (1, 1):
        raise ValueError("AveragePool with dilations is not supported")
    return nn.AvgPool2d(kernel, stride, padding=_pads(a), count_include_pad=bool(a.get("count_include_pad", 0)))


def _concat(imp: _Importer, node: onnx.NodeProto, consts: list[np.ndarray]) -> nn.Module:
    rank, axis = len(imp.shape) + 1, int(_attrs(node).get("axis", 0))  # axis is required: 0 is refused
    axis = axis + rank if axis < 0 else axis
    if not 1 <= axis < rank:
        raise ValueError(f"Concat along axis {axis} of shape {_full(imp.shape)}: only a sample axis is supported")
    names = list(node.input)
    where = names.index(imp.current)
    if any(c.ndim != rank or c.shape[0] != 1 for c in consts):
        raise ValueError(f"constants of shapes {[list(c.shape) for c in consts]} do not fit {_full(imp.shape)}")
    head = [imp.consts[x] for x in names[:where] if x]
    tail = [imp.consts[x] for x in names[where + 1 :] if x]
    return ConcatConst(
        _tensor(np.concatenate(head, axis)) if head else None, _tensor(np.concatenate(tail, axis)) if tail else None,
        axis,
    )


_I, _F, _S, _INTS = (onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.STRING,
                     onnx.AttributeProto.INTS)
_POOL = {"auto_pad": _S, "ceil_mode": _I, "dilations": _INTS, "kernel_shape": _INTS, "pads": _INTS, "strides": _INTS}
_ATTRIBUTES: dict[str, dict[str, int]] = {  # per operator, the attributes of its ONNX definition (opset >= 7), typed
    "Add": {}, "Sub": {}, "MatMul": {}, "Relu": {},
    "AveragePool": {**_POOL, "count_include_pad": _I},
    "MaxPool": {**_POOL, "storage_order": _I},
    "BatchNormalization": {"epsilon": _F, "is_test": _I, "momentum": _F, "spatial": _I, "training_mode": _I},
    "Concat": {"axis": _I}, "Flatten": {"axis": _I}, "Reshape": {"allowzero": _I},
    "Conv": {"auto_pad": _S, "dilations": _INTS, "group": _I, "kernel_shape": _INTS, "pads": _INTS, "strides": _INTS},
    "Gemm": {"alpha": _F, "beta": _F, "broadcast": _I, "transA": _I, "transB": _I},
}
_HANDLERS = {
    "Add": _shift,
    "AveragePool": _pool,
    "BatchNormalization": _batchnorm,
    "Concat": _concat,
    "Conv": _conv,
    "Flatten": _flatten,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MaxPool": _pool,
    "Relu": _relu,
    "Reshape": _reshape,
    "Sub": _shift,
}
SUPPORTED = tuple(sorted(_HANDLERS))


def load_onnx(path: str | Path) -> tuple[nn.Sequential, tuple[int, ...]]:
    """The torch module of an ONNX file, and the shape of one input sample.

    The module maps (batch, n) flat inputs to (batch, m) scores in float32.
    Raises ModelError for an unreadable file, an unsupported operator, or a branch.
    """
    path = Path(path)
    data = read_file(path, MODEL)  # a regular file within CERTSPEC_MAX_MODEL_BYTES (checkers.userfiles)
    try:  # a protobuf message, parsed from bytes: no external data, no other format
        model = onnx.load_model_from_string(data)
    except Exception as err:  # protobuf's DecodeError and others
        raise ModelError(f"{path}: not a readable ONNX model ({err})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelError(f"{path}: not a readable ONNX model (no graph in {len(data)} bytes)")
    try:
        importer = _Importer(model, str(path))
        module = importer.run()
    except ModelError:
        raise
    except Exception as err:  # a malformed model the checks above missed: still a model error
        raise ModelError(f"{path}: cannot be imported ({type(err).__name__}: {err})") from None
    return module, importer.input_shape


def n_inputs(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
