"""Guarded models on disk: a torch checkpoint that `torch.load(path, weights_only=True)` reads.

The file holds plain data only (dicts, lists, strings, numbers, one uint8 tensor)::

    {
        "format": "certspec-guard", "version": 1,
        "network": {...},                  # the IR Network, as `spec.irjson.to_data` writes it
        "properties": [{...}, ...],        # the guarded IR properties, the same way
        "options": {"max_combinations": 256},
        "model": {"suffix": ".onnx", "bytes": <uint8 tensor>},   # the model file itself
    }

Loading rebuilds the IR (checked with `spec.ir.validate`), recompiles the guard, and reads
the model bytes with `checkers.models.open_model` (ONNX through the onnx package, torch
checkpoints with weights_only=True): nothing in the file can run code. Anything malformed is
a `ModelError` naming the file.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from checkers.guard.layer import Guarded, GuardLayer
from checkers.guard.tables import GuardOptions
from checkers.models import MODEL_SUFFIXES, Model, open_model, read_checkpoint, save_model
from checkers.userfiles import MODEL, limit, over_limit, read_file
from spec import ir
from spec.errors import ModelError, SpecError, printable
from spec.irjson import to_data

FORMAT, VERSION = "certspec-guard", 1


def _floats(v: Any) -> tuple[float, ...]:
    if not isinstance(v, list) or not all(isinstance(e, (int, float, str)) and not isinstance(e, bool) for e in v):
        raise ModelError(f"expected a list of numbers, got {v!r}")
    return tuple(_float(e) for e in v)


def _float(v: Any) -> float:
    if isinstance(v, str) and v in ("inf", "-inf"):
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        raise ModelError(f"expected a number, got {v!r}")
    return float(v)


def _typed(kind: type, what: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise ModelError(f"expected {what}, got {v!r}")
        return v
    return check


def _many(item: Callable[[Any], Any]) -> Callable[[Any], tuple[Any, ...]]:
    def check(v: Any) -> tuple[Any, ...]:
        if not isinstance(v, list):
            raise ModelError(f"expected a list, got {v!r}")
        return tuple(item(e) for e in v)
    return check


def _optional(item: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else item(v)


def _node(cls: type, fields: dict[str, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    def build(v: Any) -> Any:
        if not isinstance(v, dict) or v.get("kind") != cls.__name__ or set(v) != {"kind", *fields}:
            raise ModelError(f"expected a {cls.__name__} with fields {sorted(fields)}, got {v!r}"[:300])
        return cls(**{name: read(v[name]) for name, read in fields.items()})
    return build


_INT, _BOOL, _STR = _typed(int, "an integer"), _typed(bool, "a boolean"), _typed(str, "a string")
_BOX = _node(ir.Box, {"lower": _floats, "upper": _floats, "lower_strict": _many(_BOOL), "upper_strict": _many(_BOOL)})


def _coeff(v: Any) -> tuple[int, float]:
    if not isinstance(v, list) or len(v) != 2:
        raise ModelError(f"expected a pair [index, coefficient], got {v!r}")
    return _INT(v[0]), _float(v[1])


def _decide(v: Any) -> ir.Decide:
    if v not in ("argmax", "argmin"):
        raise ModelError(f"expected 'argmax' or 'argmin', got {v!r}")
    return ir.Decide(v)


_COEFFS = _many(_coeff)
_HALF = _node(ir.HalfSpace, {"coeffs": _COEFFS, "bound": _float, "strict": _BOOL})
_PART = _node(ir.RegionPart, {"box": _BOX, "halfspaces": _many(_HALF), "predicted": _optional(_many(_INT))})
_ORDER = _node(ir.Order, {"hi": _INT, "lo": _INT, "strict": _BOOL})
_PROPERTY = _node(ir.Property, {
    "name": _STR, "target": _STR, "region": _node(ir.Region, {"parts": _many(_PART)}),
    "requirement": _node(ir.Ordering, {"disjuncts": _many(_many(_ORDER))}), "description": _optional(_STR),
})
_NORM = _optional(_node(ir.Normalization, {"mean": _floats, "range": _floats}))
_NETWORK = _node(ir.Network, {
    "name": _STR, "input_shape": _many(_INT), "output_shape": _many(_INT), "labels": _many(_STR),
    "input_names": _many(_STR), "domain": _BOX,
    "decide": _decide,
    "input_norm": _NORM, "output_norm": _NORM,
})


def _model_bytes(guarded: Guarded, model_file: str | Path | None) -> tuple[str, bytes]:
    if model_file is not None:
        path = Path(model_file)
        if path.suffix.lower() not in MODEL_SUFFIXES:
            raise ModelError(f"{path}: unknown model format {path.suffix!r}: use .onnx, .pt or .pth")
        return path.suffix.lower(), read_file(path, MODEL)
    if guarded.source is not None:
        return guarded.source
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        save_model(guarded.model, (guarded.guard.n_inputs,), path)
        return ".pt", path.read_bytes()


def save_guard(guarded: Guarded, path: str | Path, model_file: str | Path | None = None) -> None:
    """Write a guarded model; its network is stored as `model_file`'s bytes (default: the file it was
    loaded from, else `checkers.models.save_model`'s format, for a plain Linear/Conv2d/ReLU model)."""
    suffix, data = _model_bytes(guarded, model_file)
    layer = guarded.guard
    checkpoint = {
        "format": FORMAT, "version": VERSION,
        "network": to_data(layer.network),
        "properties": [to_data(p) for p in layer.properties],
        "options": {"max_combinations": layer.options.max_combinations},
        "model": {"suffix": suffix, "bytes": torch.frombuffer(bytearray(data), dtype=torch.uint8)},
    }
    torch.save(checkpoint, Path(path))


def _read(path: Path) -> dict[str, Any]:
    try:  # checked first (a regular file, a zip whose entries inflate within the limit), then weights_only
        data = read_checkpoint(path)
    except ModelError as err:  # its own words when the file is missing or over a limit
        detail = err.message.removeprefix(f"{printable(str(path))}: ")
        if detail == "no such file" or "CERTSPEC_" in detail:
            raise
        raise ModelError(f"{path}: not a readable guard checkpoint ({detail[:300]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path}: not a certspec guard checkpoint (no format {FORMAT!r})")
    if data.get("version") != VERSION:
        raise ModelError(f"{path}: guard checkpoint version {data.get('version')!r}; this certspec reads {VERSION}")
    expected = {"format", "version", "network", "properties", "options", "model"}
    if set(data) != expected:
        raise ModelError(f"{path}: a guard checkpoint has exactly the keys {sorted(expected)}, got {sorted(data)}")
    return data


def _model(path: Path, entry: Any, network: ir.Network) -> tuple[Model, tuple[str, bytes]]:
    if not isinstance(entry, dict) or set(entry) != {"suffix", "bytes"} or entry["suffix"] not in MODEL_SUFFIXES:
        raise ModelError(f"{path}: the model entry must be {{'suffix': one of {list(MODEL_SUFFIXES)}, 'bytes': ...}}")
    blob = entry["bytes"]
    if not isinstance(blob, torch.Tensor) or blob.dtype != torch.uint8 or blob.dim() != 1:
        raise ModelError(f"{path}: the model bytes must be a 1-d uint8 tensor")
    if blob.numel() > limit(MODEL.limit):  # a view can claim more bytes than its storage holds
        raise ModelError(f"{path}: " + over_limit("its model", blob.numel(), MODEL.limit, "bytes"))
    data = blob.numpy().tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / f"model{entry['suffix']}"
        model_path.write_bytes(data)
        try:
            model = open_model(model_path)
            m = model.n_outputs()
        except ModelError as err:
            raise ModelError(f"{path}: its model: {err.message}") from None
    if model.n_inputs != network.n_inputs or m != network.n_outputs:
        raise ModelError(f"{path}: its model maps {model.n_inputs} inputs to {m} scores, but network "
                         f"{network.name} is real[{network.n_inputs}] -> real[{network.n_outputs}]")
    return model, (entry["suffix"], data)


def load_guard(path: str | Path) -> Guarded:
    """Read a guarded model written by `save_guard` (or `certspec guard`); ModelError for any problem."""
    path = Path(path)
    data = _read(path)
    try:
        network = _NETWORK(data["network"])
        props = _many(_PROPERTY)(data["properties"])
        ir.validate(ir.Spec(networks=(network,), properties=props))
        options = data["options"]
        if not isinstance(options, dict) or set(options) != {"max_combinations"}:
            raise ModelError(f"options must be {{'max_combinations': int}}, got {options!r}")
        layer = GuardLayer(props, network, GuardOptions(_INT(options["max_combinations"])))
    except SpecError as err:
        raise ModelError(f"{path}: {err.message}") from None
    model, source = _model(path, data["model"], network)
    guarded = Guarded(model.module, layer)
    guarded.source = source
    return guarded
