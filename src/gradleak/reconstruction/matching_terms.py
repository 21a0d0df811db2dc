"""The terms of the gradient-matching objective: gradient distance, total variation and the
feature term, and their weighted sum.

Pure kernels shared by the one-restart objective (`matching.py`) and the batched one
(`matching_batched.py`, where they run per restart under `torch.vmap`).

Paper: Zhu et al., NeurIPS 2019 (Euclidean distance); Geiping et al., NeurIPS 2020 (cosine
distance, total variation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from gradleak.reconstruction.matching_settings import MatchingSettings


def total_variation(images: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels, both directions (Geiping et al.).

    Shapes: (B, C, H, W) -> scalar.
    """
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    vertical = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return horizontal + vertical


def gradient_distance(
    gradients: Sequence[Tensor], targets: Sequence[Tensor], *, distance: str, target_norm: Tensor
) -> Tensor:
    """Euclidean: sum ||g - t||^2. Cosine: 1 - <g, t> / (||g|| ||t||) over all layers jointly.

    Shapes: matching sequences of parameter-shaped tensors -> scalar.
    """
    if distance == "euclidean":
        return sum(((g - t) ** 2).sum() for g, t in zip(gradients, targets, strict=True))
    dot = sum((g * t).sum() for g, t in zip(gradients, targets, strict=True))
    norm = torch.sqrt(sum((g * g).sum() for g in gradients))
    return 1 - dot / (norm * target_norm + 1e-30)


def weighted_objective(
    gradients: Sequence[Tensor],
    targets: Sequence[Tensor],
    dummy: Tensor,
    settings: MatchingSettings,
    *,
    target_norm: Tensor,
    feature: tuple[Tensor, Tensor, Tensor] | None,
) -> Tensor:
    """Gradient distance + tv_weight x TV(dummy) + feature_weight x ||f - f*||^2 / ||f*||^2,
    ``feature`` = (the dummy's classifier input f, the recovered f*, ||f*||^2), needed only
    when ``settings.feature_weight`` > 0 (Wang, Liang & He, Sec. 5.3). Shapes: -> scalar."""
    total = gradient_distance(
        gradients, targets, distance=settings.distance, target_norm=target_norm
    )
    if settings.tv_weight > 0:
        total = total + settings.tv_weight * total_variation(dummy)
    if settings.feature_weight > 0:
        found, recovered, norm = feature
        total = total + settings.feature_weight * ((found - recovered) ** 2).sum() / norm
    return total
