"""How small a family residual can get, given the precision of the observed gradient.

The client computes its logits, softmax and gradient in float32 (usually). Recomputing the
label y(t) = p(t) - t c from them in float64 leaves a residual even at the true scalar. Relative
to ||p - y|| = |t| ||c||, with x = g_r / t, e_i = ||W_i|| ||g_r|| and eps the gradient's precision
(the input dtype's, or its measured distance from rank one when noise makes that larger),
four first-order sources bound it:

- c itself carries a relative error ~eps: ``eps``;
- a logit z_i = <W_i, x> is off by up to eps e_i / |t| (Cauchy-Schwarz), and the softmax passes
  that on through its Jacobian, dp_i = p_i (dz_i - sum_j p_j dz_j), so
  |dp_i| <= p_i ((1 - 2 p_i) e_i + sum_j p_j e_j) eps / |t|, which vanishes where the softmax
  saturates (a one-hot p does not move): ``eps || p_i (...) || / (t^2 ||c||)``;
- p_i - y_i is rounded to eps (p_i + |y_i|) on the entries the family constrains:
  ``eps || (p + |y|)_constrained || / (|t| ||c||)``;
- the division by p_r - y_r = t, itself rounded to eps (p_r + |y_r|), rescales all of c, which
  moves the constrained entries by that relative error times the family deviation of p:
  ``eps (p_r + |y_r|) || project(p) || / (t^2 ||c||)``.

A residual well above the floor is not rounding: the family does not fit there. Measured at
the true scalar on untrained LeNet and ResNet18 (C = 10, 100) and on the trained Fashion-MNIST
LeNets and ResNet18s, smoothing, mixup and hard labels (2,640 trials), the residual stays below
2.2 x floor (median 0.01-0.2 x), inside NOISE_FACTOR.
"""

from __future__ import annotations

import numpy as np

from gradleak.recovery.families import Family, constrained_mask, implied_labels, project
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


def noise_floor(
    problem: LastLayerProblem,
    family: Family,
    inv_scale: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
) -> np.ndarray:
    """Relative residual the gradient's precision alone can produce (module docstring).

    Shapes: ``inv_scale`` (T,), ``labels`` y(t) and ``probs`` p(t) (T, C) -> (T,).
    """
    coupling_norm = float(np.linalg.norm(problem.coupling))
    row_grad_norm = float(np.linalg.norm(problem.row_grad))
    logit_errors = problem.weight_row_norms * row_grad_norm  # e_i
    weighted = (probs * logit_errors).sum(axis=1, keepdims=True)
    softmax_moves = np.linalg.norm(probs * (weighted + (1.0 - 2.0 * probs) * logit_errors), axis=1)
    mask = constrained_mask(labels, family)
    magnitudes = probs + np.abs(labels)
    entry_rounding = np.linalg.norm(magnitudes * mask, axis=1)
    row_rounding = magnitudes[:, problem.row] * np.linalg.norm(project(probs, mask, family), axis=1)
    magnitude = np.abs(inv_scale)
    return problem.precision * (
        1.0
        + (softmax_moves + row_rounding) / (magnitude**2 * coupling_norm)
        + entry_rounding / (magnitude * coupling_norm)
    )


def acceptance_threshold(
    problem: LastLayerProblem,
    family: Family,
    inv_scale: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    tol: float,
) -> np.ndarray:
    """min(tol, max(EXACT, NOISE_FACTOR * floor)): the residual a fit may have. Shapes: (T,)."""
    floor = noise_floor(problem, family, inv_scale, labels, probs)
    return np.minimum(tol, np.maximum(EXACT, NOISE_FACTOR * floor))


def threshold_at(
    problem: LastLayerProblem, family: Family, inv_scale: np.ndarray, tol: float
) -> np.ndarray:
    """`acceptance_threshold` where only t is known. Shapes: (T,) -> (T,)."""
    labels, probs = implied_labels(inv_scale, problem.logit_direction, problem.coupling)
    return acceptance_threshold(problem, family, inv_scale, labels, probs, tol)
