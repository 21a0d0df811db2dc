"""Norm clipping of the gradient a client sends, as Opacus clips: g <- g min(1, C / (||g|| + 1e-6)).

``||g||`` is over every gradient tensor together (Opacus's flat clipping). On a one-input
observation this is exactly per-sample clipping; an observation of a batch holds only the
batch's mean gradient, so clipping it is per-update clipping (what Flower's
fixed-clipping mods do). Per-sample clipping of a batch needs the per-sample gradients:
`gradleak.integrations.opacus`. The scale it applies is unknown to the server: the label
attacks fit it (``scale="unknown"``), so clipping alone hides no label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Real

import torch

from gradleak.client.observation import GradientObservation
from gradleak.defenses.registry import DEFENSES

#: Opacus's guard against a zero norm in its clip factor.
NORM_EPS = 1e-6


def check_positive(name: str, value: float) -> float:
    """``value`` as a float when it is a finite real > 0; else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def clip_factor(observation: GradientObservation, max_grad_norm: float) -> float:
    """min(1, C / (||g|| + 1e-6)) with ||g|| over every gradient tensor."""
    norm = math.sqrt(sum(float(g.double().square().sum()) for g in observation.gradients.values()))
    return min(1.0, max_grad_norm / (norm + NORM_EPS))


def scaled(observation: GradientObservation, factor: float) -> GradientObservation:
    """Every gradient tensor times ``factor`` (in float64, cast back)."""
    gradients = {
        name: (g.double() * factor).to(g.dtype) for name, g in observation.gradients.items()
    }
    return replace(observation, gradients=gradients)


@DEFENSES.register("clipping")
@dataclass(frozen=True)
class Clipping:
    """Clip the whole gradient to norm ``max_grad_norm`` (> 0). Shapes: unchanged."""

    max_grad_norm: float

    def __post_init__(self) -> None:
        check_positive("max_grad_norm", self.max_grad_norm)

    def apply(
        self, observation: GradientObservation, *, generator: torch.Generator
    ) -> GradientObservation:
        return scaled(observation, clip_factor(observation, self.max_grad_norm))
