"""Our default scalar search: a vectorised multi-scale grid, then safeguarded Gauss-Newton.

Paper: Wang, Liang & He, ICLR 2024, Sec. 4.2 search for mu; here the search runs on t = 1 / mu in
[-1, 0) U (0, 1] (on to +-LARGEST_GRADIENT_SCALE at an unknown gradient scale) with a scale-aware
residual (see `families`), so there is no degenerate minimum at |mu| -> infinity and no bound on mu
to tune. The grid is logarithmic near t = 0 (trained nets, p close to y) and near |t| = 1 (saturated
softmax of untrained nets). Candidates are grid minima and grid steps where the constrained entries
change sign together (the true t makes them all zero at once, however narrow its basin). Each
candidate is refined in parallel by Gauss-Newton on the constraint residual, which converges
quadratically because the true t gives residual 0. Only when nothing fits does a fallback spend
more: golden section and sign bisection per bracket (kinks), a fine rescan of the closest brackets
and a grid four times denser. No start point is privileged.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from gradleak.families import LabelFamily
from gradleak.recovery.last_layer import LastLayerProblem
from gradleak.recovery.noise import acceptance_threshold, valid_at
from gradleak.recovery.refine import bisect_crossings, golden, refine
from gradleak.recovery.residual import (
    LARGEST_GRADIENT_SCALE,
    Evaluator,
    ResidualState,
    project,
)
from gradleak.recovery.search_result import ScalarSolution

#: Grid points per decade of |t| near 0 (half as many per decade of 1 - |t| near 1).
GRID_DENSITY = 6
#: A fit whose residual is above this fraction of its threshold is only a loose fit: true
#: roots converge far below it (0.003-0.25 of the rounding floor, a tenth of the threshold),
#: while a point on the slope of a kinked valley (where the free entries change, as at a
#: smoothing root under the mixup family) can sit just under a generous threshold.
LOOSE_FIT = 0.1


@cache
def scalar_grid(
    points_per_decade: int = GRID_DENSITY, scale: str = "known"
) -> tuple[np.ndarray, np.ndarray]:
    """Values of t on a multi-scale grid, (negative branch, positive branch), each ascending."""
    near_zero = np.logspace(-9, -1, 8 * points_per_decade + 1)
    middle = np.linspace(0.1, 0.9, 2 * points_per_decade + 1)
    near_one = 1.0 - np.logspace(-1, -14, 13 * points_per_decade // 2 + 1)
    parts = [near_zero, middle, near_one, [1.0]]
    if scale == "unknown":
        decades = int(np.log10(LARGEST_GRADIENT_SCALE))
        parts.append(np.logspace(0, decades, decades * points_per_decade + 1))
    magnitudes = np.unique(np.concatenate(parts))
    return -magnitudes[::-1].copy(), magnitudes


def _grid_minima(values: np.ndarray) -> np.ndarray:
    """Indices of local minima of a 1-D array, endpoints included."""
    padded = np.concatenate([[np.inf], values, [np.inf]])
    return np.flatnonzero((values <= padded[:-2]) & (values <= padded[2:]))


def _crossings(grid: ResidualState, family: LabelFamily, quorum: float = 0.5) -> np.ndarray:
    """Left indices of grid steps where most constrained entries change sign together."""
    mask = grid.mask[:-1]
    right = project(grid.labels[1:], mask, family)
    flips = (np.sign(grid.deviation[:-1]) * np.sign(right) < 0) & mask
    return np.flatnonzero(flips.sum(axis=1) >= quorum * mask.sum(axis=1))


def _zoom(
    lower: np.ndarray, upper: np.ndarray, evaluate: Evaluator, iterations: int, points: int = 48
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
    refined = refine(evaluate(grid[minima]), grid[low], grid[high], evaluate, iterations)
    return np.concatenate([refined.inv_scale, bisect_crossings(fine, crossings, evaluate)])


def _scan(
    evaluate: Evaluator, density: int, max_candidates: int, iterations: int
) -> tuple[ResidualState, np.ndarray, ResidualState, np.ndarray, np.ndarray]:
    """Evaluate the grid, collect candidates and refine them.

    Returns the grid, its crossing steps, the refined candidates and their brackets.
    """
    negative, positive = scalar_grid(density, evaluate.problem.scale)
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
    state = refine(evaluate(starts[order]), lower, upper, evaluate, iterations)
    return grid, crossings, state, lower, upper


def _judged(state: ResidualState, evaluate: Evaluator, tol: float) -> tuple[np.ndarray, ...]:
    """The acceptance threshold and the label validity of every candidate. Shapes: (K,)."""
    problem, family = evaluate.problem, evaluate.family
    limit = acceptance_threshold(problem, family, state.inv_scale, state.labels, state.probs, tol)
    return limit, valid_at(problem, state.inv_scale, state.labels, state.probs)


def _fallback(
    evaluate: Evaluator, scan: tuple, limit: np.ndarray, density: int, iterations: int, most: int
) -> ResidualState:
    """Rare: no fit yet. Spend more: golden and sign bisection in every bracket, a fine rescan
    of the closest brackets, and the whole scan again at four times the density."""
    grid, crossings, state, lower, upper = scan
    polished_t, polished = golden(lower, upper, evaluate)
    kept = np.where(polished < state.residual, polished_t, state.inv_scale)
    closest = np.argsort(state.residual / limit)[:4]
    dense_grid, dense_crossings, dense, _, _ = _scan(evaluate, 4 * density, most, iterations)
    return evaluate(
        np.concatenate(
            [
                kept,
                bisect_crossings(grid, crossings, evaluate),
                _zoom(lower[closest], upper[closest], evaluate, iterations),
                dense.inv_scale,
                bisect_crossings(dense_grid, dense_crossings, evaluate),
            ]
        )
    )


def fast_search(
    problem: LastLayerProblem,
    family: LabelFamily,
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
    evaluate = Evaluator(problem, family)
    scan = _scan(evaluate, grid_density, max_candidates, iterations)
    state, lower, upper = scan[2:]
    limit, valid = _judged(state, evaluate, tol)
    if not ((state.residual <= limit) & valid).any():
        state = _fallback(evaluate, scan, limit, grid_density, iterations, max_candidates)
        limit, valid = _judged(state, evaluate, tol)
    loose = (state.residual <= limit) & (state.residual > LOOSE_FIT * limit) & valid
    if loose.any() and lower.size == state.inv_scale.size:
        # Golden section in the brackets of loose fits: a kink can stop Gauss-Newton on the
        # slope of a valley whose true root (residual ~0) lies further in.
        golden_t, _ = golden(lower[loose], upper[loose], evaluate)
        state = evaluate(np.concatenate([state.inv_scale, golden_t]))
        limit, valid = _judged(state, evaluate, tol)
    score = np.nan_to_num(state.residual / limit, nan=np.inf)
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
