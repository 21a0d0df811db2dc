"""The estimate a counting baseline (GradInversion, LLG) returns: a histogram of picked classes.

Shapes: ``targets`` (K,) class indices -> ``soft_label`` (C,) = counts / K.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from gradleak.recovery.estimate import LabelEstimate


def counted_label_estimate(
    targets: Sequence[int],
    num_classes: int,
    *,
    method: str,
    reason: str,
    diagnostics: Mapping[str, Any],
) -> LabelEstimate:
    """One-hot (one input) or label-histogram (a batch) estimate; converged when no ``reason``.

    These baselines recover no feature and no scalar: ``features`` is None, ``scale`` and
    ``residual`` are NaN.
    """
    counts = np.bincount(np.asarray(targets, dtype=int), minlength=num_classes)
    single = len(targets) == 1
    return LabelEstimate(
        soft_label=torch.from_numpy(counts / float(len(targets))),
        features=None,
        scale=float("nan"),
        residual=float("nan"),
        converged=not reason,
        family="hard",
        method=method,
        row=int(targets[0]) if single else -1,
        reason=reason,
        family_params={"target": int(targets[0])} if single else {"targets": list(targets)},
        diagnostics=dict(diagnostics),
    )
