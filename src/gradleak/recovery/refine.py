"""Refining candidate scalars: safeguarded Gauss-Newton, golden section, sign bisection.

The searches propose candidates; these steps bring each to the precision it can reach, all
candidates at once. Gauss-Newton on the constraint residual converges quadratically where
the true t gives residual 0; golden section handles kinks (where the free entries change);
bisection finds the t where most constrained entries change sign together.
Paper: Wang, Liang & He, ICLR 2024, Sec. 4.2 (the search for mu).
"""

from __future__ import annotations

import numpy as np

from gradleak.families import LabelFamily
from gradleak.recovery.last_layer import LastLayerProblem
from gradleak.recovery.residual import (
    LARGEST_GRADIENT_SCALE,
    Evaluator,
    ResidualState,
    project,
)


def refine(
    state: ResidualState, lower: np.ndarray, upper: np.ndarray, evaluate: Evaluator, iterations: int
) -> ResidualState:
    """Gauss-Newton on the constraint residual, kept inside each bracket, monotone in residual.

    Stops once no candidate improves its residual by more than 0.1 % in a step: the true
    scalar converges quadratically to ~1e-12, spurious minima stall at a positive residual.
    """
    damping = np.ones_like(state.inv_scale)
    for _ in range(iterations):
        slope = evaluate.slope(state)
        curvature = np.einsum("ij,ij->i", slope, slope)
        step = -np.einsum("ij,ij->i", slope, state.deviation) / np.where(
            curvature > 0, curvature, 1.0
        )
        step[~np.isfinite(step)] = 0.0
        trial = evaluate(np.clip(state.inv_scale + damping * step, lower, upper))
        improved = trial.residual < state.residual
        # Relative progress; a candidate that first finds a fit (from no fit, inf) progressed.
        finite = np.isfinite(state.residual)
        with np.errstate(invalid="ignore"):
            gain = np.where(improved & finite, state.residual - trial.residual, 0.0)
        progress = np.divide(gain, state.residual, out=np.zeros_like(gain), where=gain > 0)
        progress = np.where(improved & ~finite, 1.0, progress)
        state = ResidualState(
            *(
                np.where(improved.reshape(-1, *[1] * (new.ndim - 1)), new, old)
                for new, old in zip(trial, state, strict=True)
            )
        )
        damping = np.where(improved, np.minimum(1.0, 2.0 * damping), 0.25 * damping)
        if progress.max() < 1e-3 and damping.min() < 1.0:
            break
    return state


def golden(
    lower: np.ndarray, upper: np.ndarray, evaluate: Evaluator, iterations: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Derivative-free golden-section search in each bracket, for kinked residuals.

    The residual has a kink where the set of free (largest) entries changes; for mixup with a
    small lam that happens within a grid step of the true scalar, where Gauss-Newton stalls.
    """
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = lower.copy(), upper.copy()
    x1, x2 = b - ratio * (b - a), a + ratio * (b - a)
    f1, f2 = evaluate(x1).residual, evaluate(x2).residual
    for _ in range(iterations):
        left = f1 < f2
        a, b = np.where(left, a, x1), np.where(left, x2, b)
        keep, kept = np.where(left, x1, x2), np.where(left, f1, f2)
        probe = np.where(left, b - ratio * (b - a), a + ratio * (b - a))
        value = evaluate(probe).residual
        x1, f1 = np.where(left, probe, keep), np.where(left, value, kept)
        x2, f2 = np.where(left, keep, probe), np.where(left, kept, value)
    first = f1 <= f2
    return np.where(first, x1, x2), np.where(first, f1, f2)


def bisect_crossings(
    grid: ResidualState, crossings: np.ndarray, evaluate: Evaluator, iterations: int = 60
) -> np.ndarray:
    """Bisect each crossing step on "most constrained entries still have their left sign".

    The mask stays the one at the left end, so a change of the free entries inside the step
    (a kink) cannot mislead it; the point where the deviations vanish together is kept.
    """
    family = evaluate.family
    mask = grid.mask[crossings]
    left_sign = np.sign(grid.deviation[crossings])
    a, b = grid.inv_scale[crossings], grid.inv_scale[crossings + 1]
    quorum = 0.5 * mask.sum(axis=1)
    for _ in range(iterations):
        middle = 0.5 * (a + b)
        labels = evaluate(middle).labels
        same = (np.sign(project(labels, mask, family)) == left_sign) & mask
        keep_left = same.sum(axis=1) > quorum
        a, b = np.where(keep_left, middle, a), np.where(keep_left, b, middle)
    return 0.5 * (a + b)


def polish_many(
    problem: LastLayerProblem, family: LabelFamily, inv_scales: np.ndarray
) -> np.ndarray:
    """Gauss-Newton from each scalar inside +-1 % of it (same sign; |t| <= 1 at a known scale,
    <= LARGEST_GRADIENT_SCALE at an unknown one), all at once: a final precision step for
    searches whose own stopping rule is loose. Shapes: (K,) -> (K,)."""
    inv_scales = np.asarray(inv_scales, dtype=np.float64)
    if inv_scales.size == 0:
        return inv_scales
    sign = np.sign(inv_scales)
    largest = 1.0 if problem.scale == "known" else LARGEST_GRADIENT_SCALE
    ends = np.clip(np.abs(inv_scales)[:, None] * np.array([0.99, 1.01]), 1e-300, largest)
    ends = np.sort(sign[:, None] * ends, axis=1)
    evaluate = Evaluator(problem, family)
    state = refine(evaluate(inv_scales), ends[:, 0], ends[:, 1], evaluate, iterations=30)
    return state.inv_scale


def polish(problem: LastLayerProblem, family: LabelFamily, inv_scale: float) -> float:
    """`polish_many` for one scalar."""
    return float(polish_many(problem, family, np.array([inv_scale]))[0])
