"""Every root of a family on a dense grid: for a scalar pinned by one equation only.

Where the softmax saturates, a single nonlinear equation may be all that still pins the scalar
(`identifiability.scale_equations`). One equation in one unknown has finitely many roots, and
a search that stops at the first good one can miss a second, nearby one (two roots within a
grid step, or on either side of a kink). The census evaluates the family residual on a grid
about fifty times denser than the search's, takes every local minimum that comes within the
acceptance threshold, and polishes each: the verdict then accepts only when all of them imply
the same label ("find every root, or refuse").
Paper: Wang, Liang & He, ICLR 2024, Sec. 4.2.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from gradleak.families import LabelFamily
from gradleak.recovery.last_layer import LastLayerProblem
from gradleak.recovery.noise import acceptance_threshold
from gradleak.recovery.refine import polish_many
from gradleak.recovery.residual import Evaluator

#: Points of the census grid per branch and region (near 0, middle, near |t| = 1).
POINTS = 4000


@cache
def census_grid(points: int = POINTS) -> np.ndarray:
    """t on both branches: logarithmic near 0 and near |t| = 1, linear in between."""
    magnitudes = np.unique(
        np.concatenate(
            [
                np.logspace(-9, -1, points),
                np.linspace(0.1, 0.9, points),
                1.0 - np.logspace(-1, -14, points),
                [1.0],
            ]
        )
    )
    return np.concatenate([-magnitudes[::-1], magnitudes])


def census(problem: LastLayerProblem, family: LabelFamily, tol: float) -> np.ndarray:
    """Polished t of every local minimum of the residual within its acceptance threshold.

    Shapes: returns (K,). Cost: O(G C) for the G ~ 24,000 grid points.
    """
    grid = census_grid()
    state = Evaluator(problem, family)(grid)
    limit = acceptance_threshold(problem, family, grid, state.labels, state.probs, tol)
    values = state.residual
    padded = np.concatenate([[np.inf], values, [np.inf]])
    minima = (values <= padded[:-2]) & (values <= padded[2:])
    # A root between grid points shows as a minimum whose neighbours straddle it: allow the
    # grid's own resolution (a minimum up to 100x its threshold) before polishing.
    candidates = grid[minima & (values <= 100.0 * limit)]
    return polish_many(problem, family, candidates)
