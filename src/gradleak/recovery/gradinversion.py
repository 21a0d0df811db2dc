"""GradInversion's label restoration: the hard-label baseline for a batch of distinct labels.

Paper: Yin, Mallya, Vahdat, Alvarez, Kautz & Molchanov, "See through Gradients: Image Batch
Recovery via GradInversion", CVPR 2021, Sec. 3.2 (batch label restoration):
y_hat = argsort_m(min_n dL/dW_{m,n})[:K]. For one input with a one-hot label and a feature x >= 0
(post-ReLU or sigmoid), row m of dL/dW is (p_m - y_m) x: the true class's row is (p_t - 1) x <= 0
and every other row is p_m x >= 0, so only the true class's row holds a negative entry. With K
inputs of K distinct classes the K rows with the most negative minima are the labels. It cannot
see soft labels (it always answers one-hot), repeated labels in a batch, or features of mixed
sign, and it recovers no feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gradleak.client.observation import GradientObservation
from gradleak.recovery.counted_labels import counted_label_estimate
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.last_layer import as_array
from gradleak.recovery.registry import METHODS, ONE_HOT


def row_minima(weight_grad: torch.Tensor | np.ndarray) -> np.ndarray:
    """min over the feature dimension of each row of dL/dW. Shapes: (C, m) -> (C,)."""
    return as_array("weight_grad", weight_grad, 2).min(axis=1).astype(np.float64)


@METHODS.register("gradinversion")
@dataclass(frozen=True)
class GradInversion:
    """Pick the ``num_samples`` classes whose weight-gradient rows have the most negative minima.

    ``soft_label`` is the batch's label histogram divided by the number of labels picked: one-hot
    for one input. It is always the rule's answer; ``converged`` says whether the rule's
    observable premise held: exactly ``num_samples`` rows hold a negative entry (one per
    distinct one-hot label, features >= 0). A soft label, repeated labels or mixed-sign features
    break that count, and no negative row at all is a refusal.

    Shapes: ``weight_grad`` (C, m) -> ``soft_label`` (C,).
    """

    families: ClassVar[tuple[str, ...]] = ONE_HOT

    #: Accepted for a uniform interface and ignored: the rule reads signs (and ratios of
    #: row sums), which a positive gradient scale leaves unchanged.
    scale: str = "unknown"

    def from_last_layer(self, weight_grad: torch.Tensor, *, num_samples: int = 1) -> LabelEstimate:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        minima = row_minima(weight_grad)
        num_classes = minima.shape[0]
        picked = min(num_samples, num_classes)
        targets = sorted(int(i) for i in np.argsort(minima, kind="stable")[:picked])
        negative = int((minima < 0).sum())
        if negative == 0:
            reason = (
                "no row of weight_grad holds a negative entry: no class qualifies as a label "
                "(the true row is zero when p_t = 1, or the gradient is not a one-hot one's)"
            )
        elif num_samples > num_classes:
            reason = (
                f"num_samples {num_samples} exceeds num_classes {num_classes}: GradInversion "
                "assumes distinct labels"
            )
        elif negative != num_samples:
            reason = (
                f"{negative} rows hold a negative entry; GradInversion expects exactly "
                f"num_samples={num_samples} (one-hot, distinct labels, features >= 0)"
            )
        else:
            reason = ""
        return counted_label_estimate(
            targets,
            num_classes,
            method="gradinversion",
            reason=reason,
            diagnostics={"negative_rows": negative},
        )

    def recover(self, observation: GradientObservation, *, family: str = "hard") -> LabelEstimate:
        del family  # the rule does not depend on it (``families`` declares what it accepts)
        return self.from_last_layer(observation.weight_grad, num_samples=observation.num_samples)
