"""iDLG: the hard-label baseline.

Paper: Zhao, Mopuri & Bilen, "iDLG: Improved Deep Leakage from Gradients", arXiv 2001.02610,
Sec. 3.2. With a one-hot label and non-negative features, the row of dL/dW for the true class is
(p_k - 1) x <= 0 and every other row is p_i x >= 0, so the true class is the row whose sum is
negative. It recovers a one-hot label only, and no feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gradleak.client.observation import GradientObservation
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.last_layer import as_array
from gradleak.recovery.registry import METHODS, ONE_HOT


@METHODS.register("idlg")
@dataclass(frozen=True)
class Idlg:
    """Pick the class whose weight-gradient row sums to the smallest (negative) value."""

    families: ClassVar[tuple[str, ...]] = ONE_HOT

    #: Accepted for a uniform interface and ignored: the rule reads signs (and ratios of
    #: row sums), which a positive gradient scale leaves unchanged.
    scale: str = "unknown"

    def from_last_layer(self, weight_grad: torch.Tensor) -> LabelEstimate:
        rows = torch.from_numpy(
            as_array("weight_grad", weight_grad, 2).sum(axis=1, dtype=np.float64)
        )
        target = int(rows.argmin())
        negative = int((rows < 0).sum())
        label = torch.zeros(rows.shape[0], dtype=torch.float64)
        label[target] = 1.0
        # Observable check of iDLG's premise: exactly one row sums below zero.
        reason = "" if negative == 1 else f"{negative} rows sum below 0; iDLG expects exactly one"
        return LabelEstimate(
            soft_label=label,
            features=None,
            scale=float("nan"),
            residual=float("nan"),
            converged=not reason,
            family="hard",
            method="idlg",
            row=target,
            reason=reason,
            family_params={"target": target},
        )

    def recover(self, observation: GradientObservation, *, family: str = "hard") -> LabelEstimate:
        del family  # the rule does not depend on it (``families`` declares what it accepts)
        return self.from_last_layer(observation.weight_grad)
