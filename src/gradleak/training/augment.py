"""Soft-label training targets: none (one-hot), label smoothing, mixup.

Written as ``none``, ``smoothing:EPS`` or ``mixup:ALPHA`` on the command line and in
checkpoint cards. The paper attacks networks trained with the same augmentation as the
client's labels (Wang, Liang & He, ICLR 2024, Sec. 5.1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

#: kind -> (allowed range of its parameter as text, check, default parameter).
_PARAMETERS: dict[str, tuple[str, Callable[[float], bool], float]] = {
    "none": ("no parameter", lambda value: value == 0.0, 0.0),
    "smoothing": ("0 < eps < 1", lambda value: 0.0 < value < 1.0, 0.1),
    "mixup": ("alpha > 0", lambda value: value > 0.0, 1.0),
}


@dataclass(frozen=True)
class Augmentation:
    """How training targets are softened: ``kind`` with parameter ``value`` (eps or alpha)."""

    kind: str
    value: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _PARAMETERS:
            raise ValueError(f"augmentation kind {self.kind!r} is unknown; use {_choices()}")
        allowed, check, _ = _PARAMETERS[self.kind]
        if not check(self.value):
            raise ValueError(f"augmentation {self.kind} needs {allowed}, got {self.value}")

    def __str__(self) -> str:
        return self.kind if self.kind == "none" else f"{self.kind}:{self.value:g}"

    @property
    def label_family(self) -> str:
        """The label family a client trained this way sends: ``hard`` for ``none``."""
        return "hard" if self.kind == "none" else self.kind

    def targets(
        self, images: Tensor, classes: Tensor, num_classes: int, rng: np.random.Generator
    ) -> tuple[Tensor, Tensor]:
        """Training inputs and soft targets for one batch.

        Smoothing: (1 - eps) e_c + eps / C (Szegedy et al., CVPR 2016). Mixup: one
        lam ~ Beta(alpha, alpha) per batch, each input mixed with a shuffled partner and the
        targets likewise (Zhang et al., ICLR 2018).

        Shapes: images (B, C, H, W), classes (B,) -> images (B, C, H, W), targets (B, C').
        """
        one_hot = torch.nn.functional.one_hot(classes, num_classes).to(images.dtype)
        if self.kind == "smoothing":
            return images, (1 - self.value) * one_hot + self.value / num_classes
        if self.kind == "mixup":
            lam = float(rng.beta(self.value, self.value))
            partner = torch.from_numpy(rng.permutation(len(classes)))
            mixed = lam * images + (1 - lam) * images[partner]
            return mixed, lam * one_hot + (1 - lam) * one_hot[partner]
        return images, one_hot


def _choices() -> str:
    return ", ".join(
        kind if kind == "none" else f"{kind}:VALUE ({allowed})"
        for kind, (allowed, _, _) in _PARAMETERS.items()
    )


def parse_augmentation(text: str) -> Augmentation:
    """``"smoothing:0.1"`` -> Augmentation("smoothing", 0.1); ``"mixup"`` uses alpha = 1."""
    kind, _, value = text.strip().partition(":")
    if kind not in _PARAMETERS:
        raise ValueError(f"--augment {text!r} is unknown; use {_choices()}")
    if not value:
        return Augmentation(kind, _PARAMETERS[kind][2])
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--augment {text!r}: {value!r} is not a number") from None
    return Augmentation(kind, number)
