"""Label and feature errors, computed against the client's truth after the attack."""

from __future__ import annotations

import torch
from torch import Tensor


def label_l1(estimate: Tensor, truth: Tensor) -> float:
    """sum_i |y_hat_i - y_i|, the paper's label-accuracy distance (Sec. 5.1)."""
    return float((estimate.double() - truth.double()).abs().sum())


def relative_feature_error(estimate: Tensor | None, truth: Tensor) -> float | None:
    """||x_hat - x|| / ||x||; None when the method recovers no feature."""
    if estimate is None:
        return None
    truth = truth.double().flatten()
    return float(
        torch.linalg.vector_norm(estimate.double().flatten() - truth)
        / torch.linalg.vector_norm(truth).clamp_min(1e-300)
    )
