"""Label smoothing: (1 - eps) e_t + eps / C. Paper: Szegedy et al., CVPR 2016; attacked in
Wang, Liang & He, ICLR 2024, Sec. 3 (eps ~ U(0, 0.5) in their protocol)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from gradleak.families.base import (
    FAMILIES,
    LabelFamily,
    SoftLabel,
    check_class,
    check_num_classes,
    check_unit,
    ordered_entries,
    uniform_plus,
)

#: The paper's protocol draws eps ~ U(0, EPS_HIGH).
EPS_HIGH = 0.5


class Smoothing(LabelFamily):
    """(1 - eps) e_t + eps / C: the C - 1 entries other than the largest are equal."""

    key = "smoothing"
    free = 1
    others_equal_zero = False
    parameters = ("eps",)
    training_parameter = "eps"
    training_default = 0.1
    demo_params = MappingProxyType({"eps": 0.2})

    def make(
        self, num_classes: int, *, target: int, eps: float, dtype: torch.dtype = torch.float64
    ) -> SoftLabel:
        check_num_classes(num_classes)
        check_class("target", target, num_classes)
        check_unit("eps", eps)
        probabilities = uniform_plus(num_classes, eps)
        probabilities[target] += 1.0 - eps
        return SoftLabel(probabilities.to(dtype), self.key, {"target": int(target), "eps": eps})

    def draw(self, pixels, classes, first, num_classes, rng) -> tuple[Tensor, SoftLabel]:
        """The image's class as target, eps ~ U(0, 0.5)."""
        eps = float(rng.uniform(0, EPS_HIGH))
        return self.compose(pixels, classes, first, num_classes, eps=eps)

    def random(self, num_classes, rng) -> SoftLabel:
        """A random class, eps ~ U(0, 0.5)."""
        target = int(rng.integers(num_classes))
        return self.make(num_classes, target=target, eps=float(rng.uniform(0, EPS_HIGH)))

    def read_params(self, label: np.ndarray) -> dict[str, Any]:
        order, shared = ordered_entries(label, self.free)
        return {"target": int(order[0]), "eps": label.shape[0] * shared}

    def check_training_value(self, value: float) -> None:
        if not 0.0 < value < 1.0:
            raise ValueError(f"augmentation smoothing needs 0 < eps < 1, got {value}")

    def training_targets(self, inputs, classes, num_classes, value, rng):
        one_hot = functional.one_hot(classes, num_classes).to(inputs.dtype)
        return inputs, (1 - value) * one_hot + value / num_classes


FAMILIES.add(Smoothing.key, Smoothing())
