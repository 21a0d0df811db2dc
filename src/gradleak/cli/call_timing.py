"""Warm and first-call timing of a recovery, as `gradleak recover` reports it.

The first call in a fresh process pays one-time costs (lazy imports, kernel and allocator
warm-up) that can be ten to a hundred times the recovery itself; a server attacking many
updates pays them once. Both numbers are reported, the warm one as the recovery's cost.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

Result = TypeVar("Result")

#: Warm calls timed at most, and the seconds they may take together (at least one runs).
WARM_CALLS = 5
WARM_BUDGET_SECONDS = 1.0


@dataclass(frozen=True)
class CallTiming:
    """Seconds of the first call and the median of ``warm_calls`` calls after it."""

    first_seconds: float
    warm_seconds: float
    warm_calls: int

    def line(self) -> str:
        """``recovery time 0.71 ms warm (median of 5 calls); first call 7.2 ms (...)``."""
        return (
            f"recovery time {duration(self.warm_seconds)} warm (median of {self.warm_calls} "
            f"calls); first call {duration(self.first_seconds)} (includes one-time warm-up)"
        )


def duration(seconds: float) -> str:
    """``0.71 ms`` below a second, ``3.42 s`` from one."""
    return f"{1e3 * seconds:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def timed_calls(
    call: Callable[[], Result],
    *,
    warm_calls: int = WARM_CALLS,
    budget_seconds: float = WARM_BUDGET_SECONDS,
) -> tuple[Result, CallTiming]:
    """The first call's result, and its time with the median of up to ``warm_calls`` more
    (at least one; no more once they have taken ``budget_seconds`` together)."""
    start = time.perf_counter()
    result = call()
    first = time.perf_counter() - start
    warm: list[float] = []
    while len(warm) < max(warm_calls, 1) and (not warm or sum(warm) < budget_seconds):
        start = time.perf_counter()
        call()
        warm.append(time.perf_counter() - start)
    return result, CallTiming(first, statistics.median(warm), len(warm))
