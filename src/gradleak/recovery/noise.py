"""How small a family residual can get, given the precision of the observed gradient.

The client computes its logits, softmax and gradient in float32 (usually). Recomputing the
label from them in float64 leaves a residual even at the true scalar: the client's logits
z_i = <W_i, x> carry an error up to eps * ||W_i|| ||x|| (Cauchy-Schwarz), which moves
p_i by p_i times that, and c carries a relative error ~eps. Relative to ||p - y|| = |t| ||c||,

    floor(t) = eps * (1 + || p * ||W_i|| ||g_r|| || / (t^2 ||c||)),     with x = g_r / t.

A residual well above the floor is not rounding: the family does not fit there. Measured on the
label benchmark, true scalars sit below 0.25 x floor, wrong local fits above 50 x floor.
"""

from __future__ import annotations

import numpy as np

from gradleak.recovery.families import implied_labels
from gradleak.recovery.last_layer import LastLayerProblem

#: Accept residuals up to this multiple of the floor.
NOISE_FACTOR = 10.0
#: Below this a float64 fit is exact for every practical purpose (search and rounding slack).
EXACT = 1e-10
#: How far below 0 or above 1 a recovered probability may fall and still count as a label.
LABEL_TOL = 1e-3


def valid_labels(labels: np.ndarray) -> np.ndarray:
    """Rows that are probability vectors up to LABEL_TOL. Shapes: (T, C) -> (T,)."""
    return (labels.min(axis=-1) >= -LABEL_TOL) & (labels.max(axis=-1) <= 1.0 + LABEL_TOL)


def noise_floor(problem: LastLayerProblem, inv_scale: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Relative residual that rounding of the inputs alone can produce. Shapes: (T,), (T, C)."""
    row_grad_norm = float(np.linalg.norm(problem.row_grad))
    coupling_norm = float(np.linalg.norm(problem.coupling))
    spread = np.linalg.norm(probs * problem.weight_row_norms, axis=1) * row_grad_norm
    return problem.input_eps * (1.0 + spread / (inv_scale**2 * coupling_norm))


def acceptance_threshold(
    problem: LastLayerProblem, inv_scale: np.ndarray, probs: np.ndarray, tol: float
) -> np.ndarray:
    """min(tol, max(EXACT, NOISE_FACTOR * floor)): the residual a fit may have. Shapes: (T,)."""
    floor = noise_floor(problem, inv_scale, probs)
    return np.minimum(tol, np.maximum(EXACT, NOISE_FACTOR * floor))


def threshold_at(problem: LastLayerProblem, inv_scale: np.ndarray, tol: float) -> np.ndarray:
    """`acceptance_threshold` where only t is known. Shapes: (T,) -> (T,)."""
    _, probs = implied_labels(inv_scale, problem.logit_direction, problem.coupling)
    return acceptance_threshold(problem, inv_scale, probs, tol)
