"""Soft-label training targets, one per label family: hard (one-hot), smoothing, mixup.

Written as ``hard``, ``smoothing:EPS`` or ``mixup:ALPHA`` on the command line and in
checkpoint cards: the family key, and its training parameter where it has one. The paper
attacks networks trained with the same augmentation as the client's labels (Wang, Liang &
He, ICLR 2024, Sec. 5.1); the targets themselves are each family's `training_targets`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from gradleak.families import FAMILIES


@dataclass(frozen=True)
class Augmentation:
    """How training targets are softened: family ``kind`` with parameter ``value``
    (eps for smoothing, alpha for mixup, none for hard)."""

    kind: str
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAMILIES:
            raise ValueError(f"augmentation kind {self.kind!r} is unknown; use {_choices()}")
        FAMILIES[self.kind].check_training_value(self.value)

    def __str__(self) -> str:
        family = FAMILIES[self.kind]
        return self.kind if family.training_parameter is None else f"{self.kind}:{self.value:g}"

    @property
    def label_family(self) -> str:
        """The label family a client trained this way sends (the augmentation's own key)."""
        return self.kind

    def targets(
        self, images: Tensor, classes: Tensor, num_classes: int, rng: np.random.Generator
    ) -> tuple[Tensor, Tensor]:
        """Training inputs and soft targets for one batch (the family's `training_targets`).

        Shapes: images (B, C, H, W), classes (B,) -> images (B, C, H, W), targets (B, C').
        """
        family = FAMILIES[self.kind]
        return family.training_targets(images, classes, num_classes, self.value, rng)


def _choices() -> str:
    return ", ".join(
        key if family.training_parameter is None else f"{key}:{family.training_parameter.upper()}"
        for key, family in FAMILIES.items()
    )


def parse_augmentation(text: str) -> Augmentation:
    """``"smoothing:0.1"`` -> Augmentation("smoothing", 0.1); ``"mixup"`` uses alpha = 1."""
    kind, _, value = text.strip().partition(":")
    if kind not in FAMILIES:
        raise ValueError(f"--augment {text!r} is unknown; use {_choices()}")
    if not value:
        return Augmentation(kind, FAMILIES[kind].training_default)
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--augment {text!r}: {value!r} is not a number") from None
    return Augmentation(kind, number)
