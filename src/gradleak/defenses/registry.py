"""Registry of gradient defenses: a kebab-case key -> a class with ``apply(observation, ...)``."""

from __future__ import annotations

from typing import Protocol

import torch

from gradleak.client.observation import GradientObservation
from gradleak.registry import Registry


class Defense(Protocol):
    """A client-side transform of the gradient it sends; returns a new observation."""

    def apply(
        self, observation: GradientObservation, *, generator: torch.Generator
    ) -> GradientObservation: ...


DEFENSES: Registry[type] = Registry("defense")
