"""Hard labels: the one-hot e_t (no parameter). Paper: Wang, Liang & He, ICLR 2024, Sec. 3."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional

from gradleak.families.base import FAMILIES, LabelFamily, SoftLabel, check_class, check_num_classes


class Hard(LabelFamily):
    """e_t: every entry but the largest is 0."""

    key = "hard"
    free = 1
    others_equal_zero = True
    parameters = ()

    def make(
        self, num_classes: int, *, target: int, dtype: torch.dtype = torch.float64
    ) -> SoftLabel:
        check_num_classes(num_classes)
        check_class("target", target, num_classes)
        probabilities = torch.zeros(num_classes, dtype=dtype)
        probabilities[target] = 1.0
        return SoftLabel(probabilities, self.key, {"target": int(target)})

    def draw(self, pixels, classes, first, num_classes, rng) -> tuple[Tensor, SoftLabel]:
        """The image's class, one-hot (the iDLG comparison of Table 1)."""
        return self.compose(pixels, classes, first, num_classes)

    def random(self, num_classes, rng) -> SoftLabel:
        return self.make(num_classes, target=int(rng.integers(num_classes)))

    def read_params(self, label: np.ndarray) -> dict[str, Any]:
        return {"target": int(np.argmax(label))}

    def training_targets(self, inputs, classes, num_classes, value, rng):
        return inputs, functional.one_hot(classes, num_classes).to(inputs.dtype)


FAMILIES.add(Hard.key, Hard())
