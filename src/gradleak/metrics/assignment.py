"""Scoring a batch answer: what an attack found matched to the true samples, then scored.

A batch gradient is symmetric in its samples, so a batch attack returns its labels and
images in no particular order. Each answer is paired with one true sample by optimal
assignment (`scipy.optimize.linear_sum_assignment`): labels on their l1 distance (features
break ties between equal labels), images on the per-pair MSE of de-normalised images; each
pair is then scored. Reports say the scores are "after assignment".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from gradleak.metrics.images import ImageScores, score_images, to_unit_range

#: Weight of the feature distance in the label assignment: it only breaks ties between samples
#: that share a label (two hard labels of one class), never outweighs a label mismatch.
FEATURE_TIE_BREAK = 1e-4


def match_labels(
    found: np.ndarray, truth: np.ndarray, found_features: np.ndarray, true_features: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Optimal assignment of found to true samples on label l1, features breaking ties.

    Shapes: ``found`` (k, C), ``truth`` (B, C), ``found_features`` (k, m), ``true_features``
    (B, m); returns (found rows, true rows, their label l1), min(k, B) each.
    """
    if found.shape[0] == 0:
        empty = np.zeros(0, dtype=int)
        return empty, empty, np.zeros(0)
    cost = np.abs(found[:, None, :] - truth[None, :, :]).sum(axis=2)
    distance = np.linalg.norm(found_features[:, None] - true_features[None], axis=2)
    scaled = distance / np.linalg.norm(true_features, axis=1)[None]
    rows, cols = linear_sum_assignment(cost + FEATURE_TIE_BREAK * np.minimum(scaled, 1.0))
    return rows, cols, cost[rows, cols]


@dataclass(frozen=True)
class BatchImageScores:
    """Per true sample: which reconstruction it was matched to, and that pair's scores.

    Shapes: ``assignment`` (B,) reconstruction index per true sample; ``scores`` B entries in
    the order of the true samples.
    """

    assignment: tuple[int, ...]
    scores: tuple[ImageScores, ...]

    def mean(self, metric: str) -> float:
        """The mean of one `ImageScores` field over the batch (inf if any sample is exact)."""
        return float(np.mean([getattr(score, metric) for score in self.scores]))


def score_batch_images(
    reconstructions: Tensor, truths: Tensor, *, mean: Sequence[float], std: Sequence[float]
) -> BatchImageScores:
    """Match reconstructions to true inputs by minimum total MSE, then score every pair.

    Shapes: ``reconstructions``, ``truths`` (B, C, H, W) normalised; ``mean``, ``std`` (C,).
    """
    if reconstructions.dim() != 4 or reconstructions.shape != truths.shape:
        raise ValueError(
            "reconstructions and truths must both be (B, C, H, W) with the same shape, got "
            f"{tuple(reconstructions.shape)} and {tuple(truths.shape)}"
        )
    found = to_unit_range(reconstructions, mean, std).flatten(1).numpy()
    real = to_unit_range(truths, mean, std).flatten(1).numpy()
    cost = ((real[:, None, :] - found[None, :, :]) ** 2).mean(axis=2)
    rows, cols = linear_sum_assignment(cost)
    assignment = tuple(int(col) for _, col in sorted(zip(rows, cols, strict=True)))
    scores = tuple(
        score_images(reconstructions[index], truths[sample], mean=mean, std=std)
        for sample, index in enumerate(assignment)
    )
    return BatchImageScores(assignment=assignment, scores=scores)
