"""LLG: label leakage from the row sums of the last layer's weight gradient.

Paper: Wainakh, Ventola, Müßig, Keim, Garcia Cordero, Zimmer, Grube, Kersting & Mühlhäuser,
"User-Level Label Leakage from Gradients in Federated Learning", PoPETs 2022, Sec. 4 (LLG,
Algorithm 1; official code tklab-tud/LLG, ``Predictor.v1_prediction``). With one-hot labels and
features x >= 0, the row sum s_i = sum_n dL/dW_{i,n} = sum_b (p_bi - y_bi) sum(x_b) / B is
negative only for classes present in the batch (property P1), and grows more negative with
every occurrence of the class (P2). LLG:
  1. takes every class with s_i < 0 once (P1);
  2. estimates the impact of one occurrence, m = (sum_{s_i < 0} s_i / B) (1 + 1 / C), and
     removes it from each class taken: s_i -= m;
  3. fills the remaining B - |taken| places one at a time with argmin_i s_i, removing m again.
For one input it is the class with the most negative row sum (the sign of the bias gradient
p - y, when there is one, agrees with it). LLG+ and LLG* refine m and a per-class offset with
auxiliary data or a shadow model; the server here has none, so they are not implemented.
It cannot see soft labels (it always answers one-hot counts) and recovers no feature.
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


def llg_targets(row_sums: np.ndarray, num_samples: int) -> tuple[list[int], float]:
    """The LLG labels (one per input, repeats allowed) and the impact m. Shapes: (C,) -> B.

    When more than ``num_samples`` rows sum below zero the official code returns them all; a
    batch has only B labels, so this keeps the B most negative.
    """
    sums = row_sums.astype(np.float64, copy=True)
    num_classes = sums.shape[0]
    negative = np.flatnonzero(sums < 0)
    impact = float(sums[negative].sum()) / num_samples * (1.0 + 1.0 / num_classes)
    taken = [int(i) for i in negative[np.argsort(sums[negative], kind="stable")][:num_samples]]
    sums[taken] -= impact
    targets = list(taken)
    while len(targets) < num_samples:
        extra = int(np.argmin(sums))
        targets.append(extra)
        sums[extra] -= impact
    return sorted(targets), impact


@METHODS.register("llg")
@dataclass(frozen=True)
class Llg:
    """LLG's labels for a batch of ``num_samples`` inputs from the weight-gradient row sums.

    ``soft_label`` is the label histogram divided by ``num_samples`` (one-hot for one input).
    It is always the rule's answer; ``converged`` says whether the rule's observable premise
    held: between 1 and ``num_samples`` rows sum below zero. No negative row is a refusal; more
    negative rows than inputs means a soft label or mixed-sign features.

    Shapes: ``weight_grad`` (C, m) -> ``soft_label`` (C,).
    """

    families: ClassVar[tuple[str, ...]] = ONE_HOT

    #: Accepted for a uniform interface and ignored: the rule reads signs (and ratios of
    #: row sums), which a positive gradient scale leaves unchanged.
    scale: str = "unknown"

    def from_last_layer(self, weight_grad: torch.Tensor, *, num_samples: int = 1) -> LabelEstimate:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        row_sums = as_array("weight_grad", weight_grad, 2).sum(axis=1, dtype=np.float64)
        targets, impact = llg_targets(row_sums, num_samples)
        negative = int((row_sums < 0).sum())
        if negative == 0:
            reason = (
                "no row of weight_grad sums below 0: no class qualifies as a label "
                "(the true row is zero when p_t = 1, or the gradient is not a one-hot one's)"
            )
        elif negative > num_samples:
            reason = (
                f"{negative} rows sum below 0, more than num_samples={num_samples}: LLG expects "
                "one-hot labels and features >= 0"
            )
        else:
            reason = ""
        return counted_label_estimate(
            targets,
            row_sums.shape[0],
            method="llg",
            reason=reason,
            diagnostics={"negative_rows": negative, "impact": impact},
        )

    def recover(self, observation: GradientObservation, *, family: str = "hard") -> LabelEstimate:
        del family  # the rule does not depend on it (``families`` declares what it accepts)
        return self.from_last_layer(observation.weight_grad, num_samples=observation.num_samples)
