"""Registry of gradient defenses: a kebab-case key -> a class with ``apply(observation, ...)``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

import torch

from gradleak.client.observation import GradientObservation

_KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class Defense(Protocol):
    """A client-side transform of the gradient it sends; returns a new observation."""

    def apply(
        self, observation: GradientObservation, *, generator: torch.Generator
    ) -> GradientObservation: ...


DEFENSES: dict[str, type] = {}


def register(key: str) -> Callable[[type], type]:
    """Class decorator adding a defense under a kebab-case ``key`` (e.g. "gaussian-noise")."""
    if not _KEY.match(key):
        raise ValueError(f"defense key must be kebab-case (e.g. 'gaussian-noise'), got {key!r}")

    def add(cls: type) -> type:
        if key in DEFENSES:
            raise ValueError(f"defense {key!r} is registered twice")
        DEFENSES[key] = cls
        cls.key = key
        return cls

    return add


def build_defense(name: str, **params) -> Defense:
    """Instantiate a registered defense by key with its parameters."""
    if name not in DEFENSES:
        raise ValueError(f"defense={name!r} is unknown; choose one of {sorted(DEFENSES)}")
    return DEFENSES[name](**params)
