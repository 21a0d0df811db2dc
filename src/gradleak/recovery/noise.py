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

from gradleak.families import LabelFamily
from gradleak.recovery.last_layer import LastLayerProblem
from gradleak.recovery.residual import Evaluator, constrained_mask, project

#: Accept residuals up to this multiple of the floor.
NOISE_FACTOR = 10.0
#: Below this a float64 fit is exact for every practical purpose (search and rounding slack).
EXACT = 1e-10
#: A gradient whose precision exceeds this multiple of its dtype's eps carries added noise.
NOISY = 2.0
#: The largest slack a recovered probability may have below 0 or above 1, whatever the
#: precision: a label 1e-3 outside [0, 1] is no label.
LABEL_TOL = 1e-3


def entry_slack(
    problem: LastLayerProblem,
    inv_scale: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    *,
    least: float = EXACT,
    per_row: bool = False,
) -> np.ndarray:
    """How far each recovered entry y_i(t) may stray from its true value by rounding alone.

    NOISE_FACTOR times the gradient's precision eps times: p_i + |y_i| (rounding of p - y) and
    the softmax's move under logit errors (module docstring), both relative to the entry
    itself; and eps |t| ||c||, the size of the whole row, which the scalar's own error moves
    every entry by (a shared offset) and which added noise reaches on every entry. With
    ``per_row`` the last term is dropped for clean gradients (precision at most NOISY x the
    dtype's eps): what one row's own digits can tell, which is what decides whether a tiny
    p_i still carries information. At least ``least``, at most LABEL_TOL.
    Shapes: (T,), (T, C), (T, C) -> (T, C).
    """
    magnitude = np.abs(inv_scale)[:, None]
    logit_errors = problem.weight_row_norms * float(np.linalg.norm(problem.row_grad))
    weighted = (probs * logit_errors).sum(axis=1, keepdims=True)
    softmax_moves = np.abs(probs * (weighted + (1.0 - 2.0 * probs) * logit_errors)) / magnitude
    terms = probs + np.abs(labels) + softmax_moves
    if not per_row or problem.precision > NOISY * problem.input_eps:
        terms = terms + logit_grad_norm(labels, probs)[:, None]
    return np.clip(NOISE_FACTOR * problem.precision * terms, least, LABEL_TOL)


def logit_grad_norm(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """||p - y|| of each implied label: |t| ||c|| at a known scale, |s| ||c|| at an unknown one.

    Shapes: (T, C), (T, C) -> (T,).
    """
    return np.linalg.norm(probs - labels, axis=-1)


def valid_labels(labels: np.ndarray, slack: np.ndarray | float = LABEL_TOL) -> np.ndarray:
    """Rows that are probability vectors up to ``slack`` (per entry, or one number).

    Shapes: (T, C), (T, C) or scalar -> (T,).
    """
    inside = (labels >= -slack) & (labels <= 1.0 + slack)
    return inside.all(axis=-1)


def valid_at(
    problem: LastLayerProblem, inv_scale: np.ndarray, labels: np.ndarray, probs: np.ndarray
) -> np.ndarray:
    """`valid_labels` with the slack this gradient's precision allows. Shapes: (T,)."""
    return valid_labels(labels, entry_slack(problem, inv_scale, labels, probs))


def label_sum_limit(precision: float, labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """How far from 1 the sum of a recovered label may lie: NOISE_FACTOR x its rounding floor.

    y = p - (p - y) sums to 1 exactly for a softmax cross-entropy gradient, whose rows sum to
    zero (Theorem 1); recomputing it from a gradient of relative precision eps rounds each
    entry by at most eps (p_i + |y_i|). A sum further off means the rows of dL/dW do not sum
    to zero: no softmax client produced this gradient. Shapes: (T, C), (T, C) -> (T,).
    """
    floor = precision * (probs + np.abs(labels)).sum(axis=-1)
    return np.maximum(EXACT, NOISE_FACTOR * floor)


def label_sum_reason(precision: float, label: np.ndarray, probs: np.ndarray) -> str:
    """Empty when the label sums to 1 within `label_sum_limit`, else the refusal. Shapes: (C,)."""
    total = float(label.sum())
    limit = float(label_sum_limit(precision, label[None], probs[None])[0])
    if abs(total - 1.0) <= limit:
        return ""
    return (
        f"the implied label sums to {total:.6g}, off 1 by {abs(total - 1.0):.2e} > "
        f"{limit:.1e} (what the gradient's precision allows): the rows of dL/dW of a softmax "
        "cross-entropy sum to zero (Theorem 1) and these do not, so no softmax client "
        "produced this gradient"
    )


def noise_floor(
    problem: LastLayerProblem,
    family: LabelFamily,
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
    # ||p - y|| = |s| ||c||: s = t at a known scale, fitted at an unknown one.
    size = np.maximum(logit_grad_norm(labels, probs), np.finfo(np.float64).tiny)
    label_scale = size / coupling_norm
    return problem.precision * (
        1.0
        + softmax_moves / (magnitude * size)
        + row_rounding / (label_scale * size)
        + entry_rounding / size
    )


def acceptance_threshold(
    problem: LastLayerProblem,
    family: LabelFamily,
    inv_scale: np.ndarray,
    labels: np.ndarray,
    probs: np.ndarray,
    tol: float,
) -> np.ndarray:
    """min(tol, max(EXACT, NOISE_FACTOR * floor)): the residual a fit may have. Shapes: (T,)."""
    floor = noise_floor(problem, family, inv_scale, labels, probs)
    return np.minimum(tol, np.maximum(EXACT, NOISE_FACTOR * floor))


def threshold_at(
    problem: LastLayerProblem, family: LabelFamily, inv_scale: np.ndarray, tol: float
) -> np.ndarray:
    """`acceptance_threshold` where only t is known. Shapes: (T,) -> (T,)."""
    state = Evaluator(problem, family)(inv_scale)
    return acceptance_threshold(problem, family, inv_scale, state.labels, state.probs, tol)
