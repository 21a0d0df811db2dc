"""What "labels are non-negative" alone gives: the set of admissible scalars, not a label.

By Theorem 1 every scalar mu implies a label y(mu) that sums to one, so the only constraint
left without a label family is 0 <= y_i <= 1. This method scans mu and reports how much of it
is admissible and how far apart the admissible labels are. It answers (converged) only when
all admissible labels agree to ``agree_l1``; the reviewers' question of the paper (Wang,
Liang & He, ICLR 2024, rebuttal) is whether that ever happens.

Paper: Wang, Liang & He, ICLR 2024, Theorem 1 and the unknown-family discussion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gradleak.client.observation import GradientObservation
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.last_layer import prepare
from gradleak.recovery.registry import ATTACK_FAMILIES, METHODS
from gradleak.recovery.residual import implied_labels

#: Slack on 0 <= y_i <= 1 for float32 gradients.
LABEL_SLACK = 1e-3


@METHODS.register("nonnegative")
@dataclass(frozen=True)
class NonNegative:
    """Scan t = 1/mu over ``grid_points`` log-spaced values of each sign in [-1, 1].

    ``converged`` only when every admissible label lies within ``agree_l1`` (l1) of the
    median admissible one; otherwise the spread is the reason. Shapes: ``soft_label`` (C,).
    """

    families: ClassVar[tuple[str, ...]] = ATTACK_FAMILIES

    #: Accepted for a uniform interface and ignored: the scan is over the known-scale
    #: labels y(mu); an unknown gradient scale only admits more labels.
    scale: str = "unknown"

    grid_points: int = 4000
    agree_l1: float = 1e-2

    def __post_init__(self) -> None:
        if self.grid_points < 10:
            raise ValueError(f"grid_points must be >= 10, got {self.grid_points}")
        if not self.agree_l1 > 0:
            raise ValueError(f"agree_l1 must be > 0, got {self.agree_l1}")

    def recover(self, observation: GradientObservation, *, family: str = "hard") -> LabelEstimate:
        del family  # the rule does not depend on it (``families`` declares what it accepts)
        # A classifier bias would pin mu in closed form; this asks what the weight alone allows.
        problem = prepare(
            observation.weight, observation.weight_grad, precision=observation.precision
        )
        magnitudes = np.logspace(-6, 0, self.grid_points // 2)
        inv_scales = np.concatenate([-magnitudes[::-1], magnitudes])
        labels, _ = implied_labels(inv_scales, problem.logit_direction, problem.coupling)
        admissible = np.all((labels >= -LABEL_SLACK) & (labels <= 1 + LABEL_SLACK), axis=1)
        count = int(admissible.sum())
        num_classes = labels.shape[1]
        if count == 0:
            return _estimate(
                np.full(num_classes, np.nan), np.nan, "no scalar gives a label in [0, 1]", {}
            )
        chosen = labels[admissible]
        middle = int(np.flatnonzero(admissible)[count // 2])
        spread = float(np.abs(chosen - labels[middle]).sum(axis=1).max())
        scales = 1.0 / inv_scales[admissible]
        diagnostics = {
            "admissible_fraction": count / len(inv_scales),
            "label_spread_l1": spread,
            "scale_range": (float(scales.min()), float(scales.max())),
        }
        reason = (
            ""
            if spread <= self.agree_l1
            else f"non-negativity admits {count} of {len(inv_scales)} scanned scalars (mu in "
            f"[{scales.min():.3g}, {scales.max():.3g}]) whose labels differ by up to l1 = "
            f"{spread:.3g}: the label is not identified"
        )
        return _estimate(labels[middle], 1.0 / inv_scales[middle], reason, diagnostics)


def _estimate(label: np.ndarray, scale: float, reason: str, diagnostics: dict) -> LabelEstimate:
    return LabelEstimate(
        soft_label=torch.from_numpy(np.asarray(label, dtype=np.float64)),
        features=None,
        scale=float(scale),
        residual=float("nan"),
        converged=not reason,
        family="nonnegative",
        method="nonnegative",
        reason=reason,
        diagnostics=diagnostics,
    )
