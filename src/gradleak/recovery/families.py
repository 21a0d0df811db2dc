"""Label families as constraints on the implied label y(t), vectorised over candidate scalars.

Paper: Wang, Liang & He, ICLR 2024, Sec. 4.2. We search t = 1 / mu = p_r - y_r, which lies in
[-1, 0) U (0, 1] because |mu| >= 1; the degenerate limit |mu| -> infinity becomes t -> 0.
In t the implied label (their Eq. for y_i(mu)) reads

    y(t) = softmax(W g_r / t + b) - t * c,        dy/dt = -p * (u - <p, u>) / t^2 - c,

with u = W g_r. Each family constrains all entries but its ``free`` largest ones:
hard: the others are 0; smoothing: the C-1 others are equal; mixup: the C-2 others are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Family:
    """A label family: how many largest entries are free and what the others must satisfy.

    How many classes it needs to be identifiable is `identifiability.identifiability`'s count.
    """

    name: str
    free: int
    others_equal_zero: bool


FAMILIES: dict[str, Family] = {
    "hard": Family("hard", free=1, others_equal_zero=True),
    "smoothing": Family("smoothing", free=1, others_equal_zero=False),
    "mixup": Family("mixup", free=2, others_equal_zero=False),
}

#: Order in which ``family="auto"`` tries them: simplest first.
AUTO_ORDER = ("hard", "smoothing", "mixup")


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


def constrained_mask(labels: np.ndarray, family: Family) -> np.ndarray:
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


def project(values: np.ndarray, mask: np.ndarray, family: Family) -> np.ndarray:
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
    labels: np.ndarray, inv_scale: np.ndarray, coupling_norm: float, family: Family
) -> np.ndarray:
    """The family's relative residual of given labels. Shapes: (T, C), (T,) -> (T,)."""
    deviation = project(labels, constrained_mask(labels, family), family)
    return relative_residual(deviation, inv_scale, coupling_norm)


def family_params(label: np.ndarray, family: Family) -> dict[str, float | int]:
    """Read the family's parameters off a recovered label (target, eps, classes, lam)."""
    order = np.argsort(label)[::-1]
    num_classes = label.shape[0]
    others = label[order[family.free :]]
    shared = 0.0 if family.others_equal_zero else float(others.mean())
    if family.name == "hard":
        return {"target": int(order[0])}
    eps = num_classes * shared
    if family.name == "smoothing":
        return {"target": int(order[0]), "eps": eps}
    first, second = label[order[0]] - shared, label[order[1]] - shared
    lam = float(second / (first + second)) if first + second > 0 else float("nan")
    return {"a": int(order[0]), "b": int(order[1]), "lam": lam, "eps": eps}
