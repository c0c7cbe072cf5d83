"""One verdict type for every checker.

`VIOLATED` carries a `Witness` that was replayed on the real torch model in float32: its
input lies in the property's region (checked exactly, in float64 on float32 values) and
its float32 outputs violate the requirement (evaluated exactly on those outputs).
`HOLDS` is only reported with a proof that covers float32 execution (see
`checkers.floaterror`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(enum.Enum):
    HOLDS = "holds"
    VIOLATED = "violated"
    UNKNOWN = "unknown"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class Witness:
    """An input (float32 values, flat, normalised units) and the float32 scores it gives."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    part: int  # the index of the region part it lies in


@dataclass(frozen=True)
class Verdict:
    status: Status
    witness: Witness | None = None
    reason: str = ""
    stats: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if (self.status is Status.VIOLATED) != (self.witness is not None):
            raise ValueError("a VIOLATED verdict needs a witness, and only it has one")
