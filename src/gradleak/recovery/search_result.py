"""What a 1-D scalar search returns, before it becomes a LabelEstimate."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ScalarSolution:
    """Best t = 1 / mu found, its relative family residual and the residual it may have.

    ``threshold`` is `noise.acceptance_threshold` at t. ``alternatives`` holds other local
    solutions as (t, residual / threshold) that also fit, so the caller can refuse an ambiguous
    answer instead of picking one silently.
    """

    inv_scale: float
    residual: float
    threshold: float
    evaluations: int
    alternatives: tuple[tuple[float, float], ...] = ()
    notes: dict[str, float | int | str] = field(default_factory=dict)
