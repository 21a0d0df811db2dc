"""Registry of label-recovery methods: a kebab-case key -> a class with ``recover(observation)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gradleak.client.observation import GradientObservation
from gradleak.recovery.estimate import LabelEstimate


class LabelRecovery(Protocol):
    def recover(self, observation: GradientObservation) -> LabelEstimate: ...


METHODS: dict[str, type] = {}


def register(key: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        if key in METHODS:
            raise ValueError(f"recovery method {key!r} is registered twice")
        METHODS[key] = cls
        cls.key = key
        return cls

    return add


def build_method(key: str, **params) -> LabelRecovery:
    """Instantiate a registered method by key with its parameters."""
    if key not in METHODS:
        raise ValueError(f"method={key!r} is unknown; choose one of {sorted(METHODS)}")
    return METHODS[key](**params)
