"""Timing shared by the benchmarks: the best of several runs, contenders interleaved."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def best_times(fns: Sequence[Callable[[], object]], repeat: int, warmup: bool = False) -> list[float]:
    """The best of `repeat` wall-clock timings of each function, run interleaved (so that a
    change in the machine's load hits every contender alike); `warmup`: run each once first."""
    if warmup:
        for fn in fns:
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best
