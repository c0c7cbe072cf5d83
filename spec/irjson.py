"""The IR as plain JSON data (for `certspec show --json`).

Infinite bounds become the strings "inf" and "-inf" (JSON has no infinity); enums
become their values; every dataclass becomes an object with a "kind" field naming it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any

from spec.ir import Spec


def to_data(value: Any) -> Any:
    """Plain JSON-compatible data for an IR object (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {"kind": type(value).__name__}
        for f in dataclasses.fields(value):
            out[f.name] = to_data(getattr(value, f.name))
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_data(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def spec_data(spec: Spec) -> dict[str, Any]:
    data: dict[str, Any] = to_data(spec)
    return data
