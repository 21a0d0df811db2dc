"""The one residual evaluator: implied labels y(t) and a family's constraint residual at t.

Paper: Wang, Liang & He, ICLR 2024, Sec. 4.2. We search t = 1 / mu = p_r - y_r, which lies in
[-1, 0) U (0, 1] because |mu| >= 1; the degenerate limit |mu| -> infinity becomes t -> 0.
In t the implied label (their Eq. for y_i(mu)) reads

    y(t) = softmax(W g_r / t + b) - t * c,        dy/dt = -p * (u - <p, u>) / t^2 - c,

with u = W g_r. Each family constrains all entries but its ``free`` largest ones (hard: the
others are 0; smoothing: the C-1 others are equal; mixup: the C-2 others are equal), and the
relative residual ||deviation|| / ||p - y|| measures how far y(t) is from the family. Every
search, the verdict and the loss-landscape figure evaluate it here; all of it is vectorised
over many t.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradleak.families import LabelFamily
from gradleak.recovery.last_layer import LastLayerProblem


def implied_labels(
    inv_scale: np.ndarray, logit_direction: np.ndarray, coupling: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """y(t) and softmax(u / t) for every t. Shapes: (T,), (C,), (C,) -> (T, C), (T, C)."""
    logits = logit_direction[None, :] / inv_scale[:, None]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs - inv_scale[:, None] * coupling[None, :], probs


def implied_label_slope(
    inv_scale: np.ndarray, probs: np.ndarray, logit_direction: np.ndarray, coupling: np.ndarray
) -> np.ndarray:
    """dy/dt. Shapes: (T,), (T, C), (C,), (C,) -> (T, C)."""
    centred = logit_direction[None, :] - (probs @ logit_direction)[:, None]
    return -probs * centred / inv_scale[:, None] ** 2 - coupling[None, :]


def constrained_mask(labels: np.ndarray, family: LabelFamily) -> np.ndarray:
    """True on the entries the family constrains (all but the ``free`` largest). (T, C).

    Repeated argmax, not argpartition: for one or two free entries it is several times faster.
    """
    rows = np.arange(labels.shape[0])
    mask = np.ones(labels.shape, dtype=bool)
    remaining = labels
    for _ in range(family.free):
        largest = remaining.argmax(axis=1)
        mask[rows, largest] = False
        remaining = np.where(mask, labels, -np.inf)
    return mask


def project(values: np.ndarray, mask: np.ndarray, family: LabelFamily) -> np.ndarray:
    """Deviation of the constrained entries from what the family allows; 0 elsewhere. (T, C).

    Linear in ``values`` for a fixed mask, so it maps y to the residual and dy/dt to its slope.
    """
    kept = values * mask
    if family.others_equal_zero:
        return kept
    mean = kept.sum(axis=-1, keepdims=True) / (mask.shape[-1] - family.free)
    return (values - mean) * mask


def relative_residual(
    deviation: np.ndarray, inv_scale: np.ndarray, coupling_norm: float
) -> np.ndarray:
    """||deviation|| / ||p - y||, with ||p - y|| = |t| * ||c||. Shapes: (T, C), (T,) -> (T,).

    Scale-aware: the plain variance tends to 0 as t -> 0 (the degenerate solution), this ratio
    does not, while the true t still gives exactly 0.
    """
    return np.linalg.norm(deviation, axis=-1) / (np.abs(inv_scale) * coupling_norm)


def label_residual(
    labels: np.ndarray, inv_scale: np.ndarray, coupling_norm: float, family: LabelFamily
) -> np.ndarray:
    """The family's relative residual of given labels. Shapes: (T, C), (T,) -> (T,)."""
    deviation = project(labels, constrained_mask(labels, family), family)
    return relative_residual(deviation, inv_scale, coupling_norm)


class ResidualState(NamedTuple):
    """The implied label and its family residual at a batch of scalars. Shapes: (K,), (K, C)."""

    inv_scale: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    mask: np.ndarray
    deviation: np.ndarray
    residual: np.ndarray


class Evaluator:
    """Evaluates the residual of one problem and family; counts evaluations."""

    def __init__(self, problem: LastLayerProblem, family: LabelFamily) -> None:
        self.problem, self.family = problem, family
        self.coupling_norm = float(np.linalg.norm(problem.coupling))
        self.count = 0

    def __call__(self, inv_scale: np.ndarray) -> ResidualState:
        self.count += inv_scale.size
        problem, family = self.problem, self.family
        labels, probs = implied_labels(inv_scale, problem.logit_direction, problem.coupling)
        mask = constrained_mask(labels, family)
        deviation = project(labels, mask, family)
        residual = relative_residual(deviation, inv_scale, self.coupling_norm)
        return ResidualState(inv_scale, labels, probs, mask, deviation, residual)


def residual_at(
    problem: LastLayerProblem, family: LabelFamily, inv_scale: np.ndarray
) -> np.ndarray:
    """The family's relative residual at each t. Shapes: (T,) -> (T,)."""
    return Evaluator(problem, family)(np.asarray(inv_scale, dtype=np.float64)).residual
