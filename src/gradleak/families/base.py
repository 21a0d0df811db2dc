"""What a label family is: one object per family that knows everything about its labels.

Paper: Wang, Liang & He, ICLR 2024, Sec. 3 and 4.2. A family is a set of soft labels with a
few continuous parameters: hard e_t (none), label smoothing (1 - eps) e_t + eps / C (eps),
mixup (1 - eps)((1 - lam) e_a + lam e_b) + eps / C (lam, eps). Each family object knows how to
make a label, how the paper's protocol draws one for a trial, its constraint on an implied
label (all entries but its ``free`` largest are zero, or equal), how to read its parameters
back, how a client trains with it, and how many classes identify it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from gradleak.registry import Registry


@dataclass(frozen=True)
class SoftLabel:
    """A probability vector over classes with the family and parameters that made it.

    Shapes: ``probabilities`` (C,), non-negative, summing to 1.
    """

    probabilities: Tensor
    family: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.probabilities.shape[-1])


def check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")


def check_class(name: str, value: int, num_classes: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer class index, got {value!r}")
    if not 0 <= value < num_classes:
        raise ValueError(f"{name} must be in [0, {num_classes - 1}], got {value}")


def check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def uniform_plus(num_classes: int, eps: float) -> Tensor:
    """eps / C everywhere, in float64 (the smoothing every family may carry)."""
    return torch.full((num_classes,), eps / num_classes, dtype=torch.float64)


class LabelFamily(ABC):
    """One label family. Subclasses set the class attributes and implement the methods.

    ``free``: how many largest entries the family leaves free; ``others_equal_zero``: the
    constrained entries are zero (hard) rather than merely equal (smoothing, mixup);
    ``parameters``: the continuous parameters of its labels, which `identifiability` counts;
    ``training_parameter``: what ``gradleak train --augment KEY:VALUE`` sets (None: no value).
    """

    key: ClassVar[str]
    free: ClassVar[int]
    others_equal_zero: ClassVar[bool]
    parameters: ClassVar[tuple[str, ...]]
    training_parameter: ClassVar[str | None] = None
    training_default: ClassVar[float] = 0.0
    #: Parameter values a demo (``gradleak recover``) uses when none are given.
    demo_params: ClassVar[Mapping[str, float]] = MappingProxyType({})

    @abstractmethod
    def make(self, num_classes: int, **params: Any) -> SoftLabel:
        """The label with these parameters (the family's own keyword names)."""

    def compose(
        self,
        pixels: Tensor,
        classes: np.ndarray,
        first: int,
        num_classes: int,
        **params: Any,
    ) -> tuple[Tensor, SoftLabel]:
        """The input (pixels in [0, 1]) and label of a client that labels image ``first``
        of class ``classes[first]`` with these parameters. Shapes: (N, C, H, W) -> (C, H, W).
        """
        return pixels[first], self.make(num_classes, target=int(classes[first]), **params)

    @abstractmethod
    def draw(
        self, pixels: Tensor, classes: np.ndarray, first: int, num_classes: int, rng
    ) -> tuple[Tensor, SoftLabel]:
        """The paper's protocol: `compose` with the trial's random parameters."""

    @abstractmethod
    def random(self, num_classes: int, rng: np.random.Generator) -> SoftLabel:
        """A label with random classes and parameters (synthetic last-layer trials)."""

    @abstractmethod
    def read_params(self, label: np.ndarray) -> dict[str, float | int]:
        """The family's parameters read off a (recovered) label. Shapes: (C,)."""

    def check_training_value(self, value: float) -> None:
        """Refuse a training parameter outside the family's range (none by default)."""
        if self.training_parameter is None and value != 0.0:
            raise ValueError(f"augmentation {self.key} takes no parameter, got {value}")

    @abstractmethod
    def training_targets(
        self, inputs: Tensor, classes: Tensor, num_classes: int, value: float, rng
    ) -> tuple[Tensor, Tensor]:
        """Training inputs and soft targets for one batch, as a client training with this
        family labels it. Shapes: (B, C, H, W), (B,) -> (B, C, H, W), (B, num_classes)."""

    def min_classes(self, *, scale: str = "known", bias: bool = False) -> int:
        """Fewest classes that identify this family's labels (`recovery.identifiability`)."""
        from gradleak.recovery.identifiability import identifiability

        return identifiability(2, self.key, scale=scale, bias=bias).min_classes


def ordered_entries(label: np.ndarray, free: int) -> tuple[np.ndarray, float]:
    """Indices of ``label`` from largest to smallest, and the mean of all but the ``free``
    largest (the shared eps / C of the constrained entries)."""
    order = np.argsort(label)[::-1]
    return order, float(label[order[free:]].mean())


#: Every label family, by key.
FAMILIES: Registry[LabelFamily] = Registry("label family")
