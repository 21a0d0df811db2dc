"""Label mass beyond the per-sample bound: sum_b y_b from the bias gradient, and counts.

Mean-reduced batch with a bias: dL/db = (1/B) sum_b (p_b - y_b), so sum_b y_b = sum_b p_b - B dL/db
exactly (``reduction="sum"``: sum_b p_b - dL/db). The gradient does not give sum_b p_b; it is
estimated from class-mean features as in iLRG (Ma, Sun, Hsu, Chen & Wang, "Instance-wise Batch
Label Restoration via Gradients in Federated Learning", ICLR 2023, Sec. 3): row i of dL/dW
divided by (dL/db)_i is a weighted mean of the batch's features (exact for a class whose
samples dominate row i), whose softmax stands in for the predictions. The estimate assumes the
predictions vary little within the batch (an untrained or weakly trained model); it is
reported as an estimate, never as per-sample recovery.
"""

from __future__ import annotations

import numpy as np

from gradleak.recovery.batch.roots import softmax

#: Reweighting rounds of the class-mean estimate (weights = the counts it implies).
ROUNDS = 3
#: Label-smoothing eps searched by `smoothing_counts` (the paper's protocol draws eps <= 0.5).
EPS_GRID = np.linspace(0.0, 0.5, 501)


def reduction_factor(reduction: str, num_samples: int) -> float:
    """B for a mean-reduced loss, 1 for a summed one."""
    return float(num_samples) if reduction == "mean" else 1.0


def mean_probs(weight, bias, weight_grad, bias_grad, num_samples: int, factor: float):
    """The iLRG-style estimate of (1/B) sum_b p_b (module text). Shapes: (C, m), (C,) -> (C,).

    Classes with a negative bias gradient (present in the batch, for labels that put mass
    there) give the mean features; they are weighted by the counts each round implies.
    ``factor`` converts dL/db to label units (`reduction_factor`).
    """
    present = np.flatnonzero(bias_grad < -1e-12 * np.abs(bias_grad).max())
    if present.size == 0:
        return softmax(bias)
    means = weight_grad[present] / bias_grad[present, None]
    probs = softmax(means @ weight.T + bias)  # (P, C)
    share = np.full(present.size, 1.0 / present.size)
    for _ in range(ROUNDS):
        mean = share @ probs
        counts = np.clip(num_samples * mean - factor * bias_grad, 0.0, None)[present]
        if counts.sum() <= 0:
            break
        share = counts / counts.sum()
    return share @ probs


def hard_counts(mass: np.ndarray, num_samples: int) -> np.ndarray:
    """Integer counts summing to B nearest to ``mass`` (largest remainders). Shapes: (C,)."""
    mass = np.clip(mass, 0.0, None)
    if mass.sum() > 0:
        mass = mass * num_samples / mass.sum()
    counts = np.floor(mass).astype(int)
    order = np.argsort(-(mass - counts), kind="stable")
    counts[order[: num_samples - int(counts.sum())]] += 1
    return counts


def smoothing_counts(mass: np.ndarray, num_samples: int) -> tuple[np.ndarray, float]:
    """Counts and the shared eps of a label-smoothed batch: mass = (1 - eps) n + eps B / C; the
    eps whose n lies closest to integers (a line search over EPS_GRID)."""
    num_classes = mass.shape[0]
    implied = (mass[None, :] - EPS_GRID[:, None] * num_samples / num_classes) / (
        1.0 - EPS_GRID[:, None]
    )
    distance = ((implied - np.round(implied)) ** 2).sum(axis=1)
    best = int(np.argmin(distance))
    return hard_counts(implied[best], num_samples), float(EPS_GRID[best])
