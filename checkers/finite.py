"""Non-finite numbers at the edges: weights that are NaN or infinite, and JSON that must stay JSON.

A model whose weights (parameters or buffers) hold a NaN or an infinity has no real-valued
function for a checker to reason about: `check_finite` makes it a `ModelError` naming the
tensor. It runs where a model is loaded (`checkers.models`, `checkers.onnx_import`, Lipschitz
checkpoints) and where a checker takes a module from Python (`checkers.plnet.from_module`,
the Lipschitz constants, FGP), so no checker ever sees such weights.

Non-finite SCORES at a point are a different matter (finite weights can overflow float32): see
`checkers.semantics` (no verdict rests on them).

JSON has no NaN or infinity: every `--json` writer goes through `dumps`, which writes a
non-finite float as the string "nan", "inf" or "-inf" (as `spec.irjson` writes infinite
bounds) and never emits the invalid tokens NaN / Infinity.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from spec.errors import ModelError

if TYPE_CHECKING:  # torch is imported where it is used: the CLI imports this module before torch
    import torch
    from torch import nn


def nonfinite_tensor(module: nn.Module) -> tuple[str, str] | None:
    """(name, what) of the first parameter or buffer of `module` with a NaN or infinite entry, else None."""
    import torch

    for name, tensor in (*module.named_parameters(), *module.named_buffers()):
        if tensor is None or not tensor.is_floating_point() or tensor.is_meta:
            continue
        bad = ~torch.isfinite(tensor.detach())
        if bool(bad.any()):
            return name, describe_nonfinite(tensor.detach())
    return None


def describe_nonfinite(tensor: torch.Tensor) -> str:
    """'3 NaN and 1 infinite entries, the first at index [0, 2]' for a tensor with non-finite entries."""
    import torch

    t = tensor.detach()
    nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
    first = (~torch.isfinite(t)).nonzero()[0].tolist()
    parts = [f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else ""]
    return f"{' and '.join(p for p in parts if p)} {'entry' if nan + inf == 1 else 'entries'}, the first at index {first}"


def check_finite(module: nn.Module, what: str = "the model") -> None:
    """ModelError naming the first tensor of `module` that holds a NaN or an infinity."""
    found = nonfinite_tensor(module)
    if found is not None:
        name, detail = found
        raise ModelError(f"{what} has non-finite weights: tensor {name!r} holds {detail}; no checker can reason "
                         "about a NaN or infinite weight")


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float (nested in dicts, lists, tuples) as "nan", "inf" or "-inf"."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any, indent: int | None = 1) -> str:
    """JSON text of `value`, non-finite floats as strings (`json_safe`); never NaN or Infinity."""
    return json.dumps(json_safe(value), indent=indent, allow_nan=False)
