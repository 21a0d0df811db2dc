"""Top-k sparsification (gradient pruning): each tensor keeps its largest-magnitude entries.

Keeps the ``fraction`` of entries of largest |g| per tensor (at least one) and zeroes the rest,
as deep gradient compression (Lin et al., ICLR 2018) and the pruning defense of DLG (Zhu et al.,
NeurIPS 2019) do. The zeroed entries break the classifier gradient's rank-one structure, which
the label attacks check before they answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Real

import torch

from gradleak.client.observation import GradientObservation
from gradleak.defenses.registry import DEFENSES


@DEFENSES.register("top-k")
@dataclass(frozen=True)
class TopK:
    """Keep the ``fraction`` in (0, 1] largest |g| of every tensor. Shapes: unchanged."""

    fraction: float

    def __post_init__(self) -> None:
        value = self.fraction
        if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value <= 1:
            raise ValueError(
                f"fraction must be in (0, 1] (the share of entries kept), got {value!r}"
            )

    def apply(
        self, observation: GradientObservation, *, generator: torch.Generator
    ) -> GradientObservation:
        kept = {}
        for name, gradient in observation.gradients.items():
            flat = gradient.reshape(-1)
            count = max(1, math.ceil(self.fraction * flat.numel()))
            if count >= flat.numel():
                kept[name] = gradient
                continue
            index = flat.abs().topk(count).indices
            sparse = torch.zeros_like(flat)
            sparse[index] = flat[index]
            kept[name] = sparse.reshape(gradient.shape)
        return replace(observation, gradients=kept)
