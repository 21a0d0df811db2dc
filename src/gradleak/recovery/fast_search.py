"""Our default scalar search: a vectorised multi-scale grid, then safeguarded Gauss-Newton.

Paper: Wang, Liang & He, ICLR 2024, Sec. 4.2 search for mu; here the search runs on
t = 1 / mu in [-1, 0) U (0, 1] with a scale-aware residual (see `families`), so there is no
degenerate minimum at |mu| -> infinity and no bound on mu to tune. The grid is logarithmic
near t = 0 (trained nets, p close to y) and near |t| = 1 (saturated softmax of untrained nets).
Candidates are grid minima and grid steps where the constrained entries change sign together
(the true t makes them all zero at once, however narrow its basin). Each candidate is refined
in parallel by Gauss-Newton on the constraint residual, which converges quadratically because
the true t gives residual 0. Only when nothing fits does a fallback spend more: golden section
and sign bisection per bracket (kinks), a fine rescan of the closest brackets and a grid four
times denser. No start point is privileged.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np

from gradleak.recovery.families import (
    Family,
    constrained_mask,
    implied_label_slope,
    implied_labels,
    project,
    relative_residual,
)
from gradleak.recovery.last_layer import LastLayerProblem
from gradleak.recovery.noise import acceptance_threshold, valid_at
from gradleak.recovery.search_result import ScalarSolution

#: Grid points per decade of |t| near 0 (half as many per decade of 1 - |t| near 1).
GRID_DENSITY = 6
#: A fit whose residual is above this fraction of its threshold is only a loose fit: true
#: roots converge far below it (0.003-0.25 of the rounding floor, a tenth of the threshold),
#: while a point on the slope of a kinked valley (where the free entries change, as at a
#: smoothing root under the mixup family) can sit just under a generous threshold.
LOOSE_FIT = 0.1


@cache
def scalar_grid(points_per_decade: int = GRID_DENSITY) -> tuple[np.ndarray, np.ndarray]:
    """Values of t on a multi-scale grid, (negative branch, positive branch), each ascending."""
    near_zero = np.logspace(-9, -1, 8 * points_per_decade + 1)
    middle = np.linspace(0.1, 0.9, 2 * points_per_decade + 1)
    near_one = 1.0 - np.logspace(-1, -14, 13 * points_per_decade // 2 + 1)
    magnitudes = np.unique(np.concatenate([near_zero, middle, near_one, [1.0]]))
    return -magnitudes[::-1].copy(), magnitudes


class _State(NamedTuple):
    """The implied label and its family residual at a batch of scalars. Shapes: (K,), (K, C)."""

    inv_scale: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    mask: np.ndarray
    deviation: np.ndarray
    residual: np.ndarray


class _Evaluator:
    """Evaluates the residual of one problem and family; counts evaluations."""

    def __init__(self, problem: LastLayerProblem, family: Family) -> None:
        self.problem, self.family = problem, family
        self.coupling_norm = float(np.linalg.norm(problem.coupling))
        self.count = 0

    def __call__(self, inv_scale: np.ndarray) -> _State:
        self.count += inv_scale.size
        problem, family = self.problem, self.family
        labels, probs = implied_labels(inv_scale, problem.logit_direction, problem.coupling)
        mask = constrained_mask(labels, family)
        deviation = project(labels, mask, family)
        residual = relative_residual(deviation, inv_scale, self.coupling_norm)
        return _State(inv_scale, labels, probs, mask, deviation, residual)


def _grid_minima(values: np.ndarray) -> np.ndarray:
    """Indices of local minima of a 1-D array, endpoints included."""
    padded = np.concatenate([[np.inf], values, [np.inf]])
    return np.flatnonzero((values <= padded[:-2]) & (values <= padded[2:]))


def _crossings(grid: _State, family: Family, quorum: float = 0.5) -> np.ndarray:
    """Left indices of grid steps where most constrained entries change sign together."""
    mask = grid.mask[:-1]
    right = project(grid.labels[1:], mask, family)
    flips = (np.sign(grid.deviation[:-1]) * np.sign(right) < 0) & mask
    return np.flatnonzero(flips.sum(axis=1) >= quorum * mask.sum(axis=1))


def _refine(
    state: _State, lower: np.ndarray, upper: np.ndarray, evaluate: _Evaluator, iterations: int
) -> _State:
    """Gauss-Newton on the constraint residual, kept inside each bracket, monotone in residual.

    Stops once no candidate improves its residual by more than 0.1 % in a step: the true
    scalar converges quadratically to ~1e-12, spurious minima stall at a positive residual.
    """
    u, c, family = evaluate.problem.logit_direction, evaluate.problem.coupling, evaluate.family
    damping = np.ones_like(state.inv_scale)
    for _ in range(iterations):
        slope = project(implied_label_slope(state.inv_scale, state.probs, u, c), state.mask, family)
        curvature = (slope * slope).sum(axis=1)
        step = -(slope * state.deviation).sum(axis=1) / np.where(curvature > 0, curvature, 1.0)
        trial = evaluate(np.clip(state.inv_scale + damping * step, lower, upper))
        improved = trial.residual < state.residual
        gain = np.where(improved, state.residual - trial.residual, 0.0)
        progress = np.divide(gain, state.residual, out=np.zeros_like(gain), where=gain > 0)
        state = _State(
            *(
                np.where(improved.reshape(-1, *[1] * (new.ndim - 1)), new, old)
                for new, old in zip(trial, state, strict=True)
            )
        )
        damping = np.where(improved, np.minimum(1.0, 2.0 * damping), 0.25 * damping)
        if progress.max() < 1e-3 and damping.min() < 1.0:
            break
    return state


def _golden(
    lower: np.ndarray, upper: np.ndarray, evaluate: _Evaluator, iterations: int = 64
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


def _bisect_crossings(
    grid: _State, crossings: np.ndarray, evaluate: _Evaluator, iterations: int = 60
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
        labels, _ = implied_labels(
            middle, evaluate.problem.logit_direction, evaluate.problem.coupling
        )
        same = (np.sign(project(labels, mask, family)) == left_sign) & mask
        keep_left = same.sum(axis=1) > quorum
        a, b = np.where(keep_left, middle, a), np.where(keep_left, b, middle)
    return 0.5 * (a + b)


def _zoom(
    lower: np.ndarray, upper: np.ndarray, evaluate: _Evaluator, iterations: int, points: int = 48
) -> np.ndarray:
    """Rescan each bracket on a fine geometric grid and refine what it shows.

    A true root can share a grid step with a shallow spurious minimum (two sign changes in one
    step cancel), so the coarse grid sees neither a crossing nor the true basin there.
    """
    fractions = np.linspace(0.0, 1.0, points)
    sign = np.sign(lower)
    logs = np.log(np.abs(lower))[:, None] + fractions * np.log(upper / lower)[:, None]
    fine = evaluate((sign[:, None] * np.exp(logs)).ravel())
    crossings = _crossings(fine, evaluate.family)
    crossings = crossings[crossings % points != points - 1]
    rows = fine.residual.reshape(-1, points)
    minima = np.argmin(rows, axis=1) + points * np.arange(rows.shape[0])
    first = minima - minima % points
    low = np.maximum(minima - 1, first)
    high = np.minimum(minima + 1, first + points - 1)
    grid = fine.inv_scale
    refined = _refine(evaluate(grid[minima]), grid[low], grid[high], evaluate, iterations)
    return np.concatenate([refined.inv_scale, _bisect_crossings(fine, crossings, evaluate)])


def polish_many(problem: LastLayerProblem, family: Family, inv_scales: np.ndarray) -> np.ndarray:
    """Gauss-Newton from each scalar inside +-1 % of it (same sign, |t| <= 1), all at once: a
    final precision step for searches whose own stopping rule is loose. Shapes: (K,) -> (K,)."""
    inv_scales = np.asarray(inv_scales, dtype=np.float64)
    if inv_scales.size == 0:
        return inv_scales
    sign = np.sign(inv_scales)
    ends = np.clip(np.abs(inv_scales)[:, None] * np.array([0.99, 1.01]), 1e-300, 1.0)
    ends = np.sort(sign[:, None] * ends, axis=1)
    evaluate = _Evaluator(problem, family)
    state = _refine(evaluate(inv_scales), ends[:, 0], ends[:, 1], evaluate, iterations=30)
    return state.inv_scale


def polish(problem: LastLayerProblem, family: Family, inv_scale: float) -> float:
    """`polish_many` for one scalar."""
    return float(polish_many(problem, family, np.array([inv_scale]))[0])


def _scan(
    evaluate: _Evaluator, density: int, max_candidates: int, iterations: int
) -> tuple[_State, np.ndarray, _State, np.ndarray, np.ndarray]:
    """Evaluate the grid, collect candidates and refine them.

    Returns the grid, its crossing steps, the refined candidates and their brackets.
    """
    negative, positive = scalar_grid(density)
    points = np.concatenate([negative, positive])
    grid = evaluate(points)
    # Bracket ends never straddle t = 0: each branch is searched on its own.
    split = negative.size
    values = grid.residual
    minima = np.concatenate([_grid_minima(values[:split]), split + _grid_minima(values[split:])])
    last = np.where(minima < split, split - 1, points.size - 1)
    first = np.where(minima < split, 0, split)
    crossings = _crossings(grid, evaluate.family)
    crossings = crossings[crossings != split - 1]
    nearer = np.where(values[crossings] <= values[crossings + 1], crossings, crossings + 1)
    starts = np.concatenate([points[minima], points[nearer]])
    lowers = np.concatenate([points[np.maximum(minima - 1, first)], points[crossings]])
    uppers = np.concatenate([points[np.minimum(minima + 1, last)], points[crossings + 1]])
    # Crossing steps go first (all constrained entries vanish there together), every one of
    # them: with few constraints several scalars can fit, and all must be seen to say so.
    seeds = np.concatenate([values[minima], np.zeros(crossings.size)])
    order = np.argsort(seeds, kind="stable")[: max(max_candidates, crossings.size + 4)]
    lower, upper = lowers[order], uppers[order]
    state = _refine(evaluate(starts[order]), lower, upper, evaluate, iterations)
    return grid, crossings, state, lower, upper


def fast_search(
    problem: LastLayerProblem,
    family: Family,
    *,
    tol: float,
    seed: int | None = None,
    max_candidates: int = 8,
    iterations: int = 30,
    grid_density: int = GRID_DENSITY,
) -> ScalarSolution:
    """Find the t whose relative residual is smallest compared with its acceptance threshold.

    Deterministic, so ``seed`` is ignored (it is accepted for a uniform search interface).
    Cost: O(G C) for the grid of G ~ 300 points, then O(K C) per refinement step.
    """
    evaluate = _Evaluator(problem, family)
    grid, crossings, state, lower, upper = _scan(evaluate, grid_density, max_candidates, iterations)
    limit = acceptance_threshold(problem, family, state.inv_scale, state.labels, state.probs, tol)
    valid = valid_at(problem, state.inv_scale, state.labels, state.probs)
    if not ((state.residual <= limit) & valid).any():
        # Rare: no fit yet. Spend more: golden and sign bisection in every bracket, a fine rescan
        # of the closest brackets, and the whole scan again at four times the density.
        polished_t, polished = _golden(lower, upper, evaluate)
        kept = np.where(polished < state.residual, polished_t, state.inv_scale)
        closest = np.argsort(state.residual / limit)[:4]
        dense_grid, dense_crossings, dense, _, _ = _scan(
            evaluate, 4 * grid_density, max_candidates, iterations
        )
        state = evaluate(
            np.concatenate(
                [
                    kept,
                    _bisect_crossings(grid, crossings, evaluate),
                    _zoom(lower[closest], upper[closest], evaluate, iterations),
                    dense.inv_scale,
                    _bisect_crossings(dense_grid, dense_crossings, evaluate),
                ]
            )
        )
        limit = acceptance_threshold(
            problem, family, state.inv_scale, state.labels, state.probs, tol
        )
        valid = valid_at(problem, state.inv_scale, state.labels, state.probs)
    loose = (state.residual <= limit) & (state.residual > LOOSE_FIT * limit) & valid
    if loose.any() and lower.size == state.inv_scale.size:
        # Golden section in the brackets of loose fits: a kink can stop Gauss-Newton on the
        # slope of a valley whose true root (residual ~0) lies further in.
        golden_t, _ = _golden(lower[loose], upper[loose], evaluate)
        state = evaluate(np.concatenate([state.inv_scale, golden_t]))
        limit = acceptance_threshold(
            problem, family, state.inv_scale, state.labels, state.probs, tol
        )
        valid = valid_at(problem, state.inv_scale, state.labels, state.probs)
    score = state.residual / limit
    # A fit whose label is no probability vector is never preferred over one whose label is.
    best = int(np.argmin(np.where(valid, score, np.inf))) if valid.any() else int(np.argmin(score))
    alternatives = tuple(
        (float(state.inv_scale[index]), float(score[index]))
        for index in range(score.size)
        if index != best and score[index] <= 1.0 and valid[index]
    )
    return ScalarSolution(
        inv_scale=float(state.inv_scale[best]),
        residual=float(state.residual[best]),
        threshold=float(limit[best]),
        evaluations=evaluate.count,
        alternatives=alternatives,
        notes={"candidates": int(score.size)},
    )
