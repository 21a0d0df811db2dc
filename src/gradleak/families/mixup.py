"""Mixup of two classes, optionally smoothed: (1 - eps)((1 - lam) e_a + lam e_b) + eps / C.

Paper: Zhang et al., ICLR 2018 (mixup); attacked in Wang, Liang & He, ICLR 2024, Sec. 3 (two
images of different classes, lam ~ U(0, 1), the inputs mixed the same way).
"""

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

#: Random mixup labels (`Mixup.random`) are smoothed with eps ~ U(0, RANDOM_EPS_HIGH).
RANDOM_EPS_HIGH = 0.3


class Mixup(LabelFamily):
    """(1 - eps)((1 - lam) e_a + lam e_b) + eps / C: the C - 2 entries outside the pair are
    equal."""

    key = "mixup"
    free = 2
    others_equal_zero = False
    parameters = ("lam", "eps")
    training_parameter = "alpha"
    training_default = 1.0
    demo_params = MappingProxyType({"lam": 0.3})

    def make(
        self,
        num_classes: int,
        *,
        a: int,
        b: int,
        lam: float,
        eps: float = 0.0,
        dtype: torch.dtype = torch.float64,
    ) -> SoftLabel:
        check_num_classes(num_classes)
        check_class("a", a, num_classes)
        check_class("b", b, num_classes)
        if a == b:
            raise ValueError(f"mixup needs two different classes, got a == b == {a}")
        check_unit("lam", lam)
        check_unit("eps", eps)
        probabilities = uniform_plus(num_classes, eps)
        probabilities[a] += (1.0 - eps) * (1.0 - lam)
        probabilities[b] += (1.0 - eps) * lam
        params = {"a": int(a), "b": int(b), "lam": lam, "eps": eps}
        return SoftLabel(probabilities.to(dtype), self.key, params)

    def compose(
        self,
        pixels: Tensor,
        classes: np.ndarray,
        first: int,
        num_classes: int,
        *,
        lam: float,
        eps: float = 0.0,
        partner: int | None = None,
    ) -> tuple[Tensor, SoftLabel]:
        """Image ``first`` mixed with ``partner`` (default: the first image of another class)
        as (1 - lam) x_first + lam x_partner, and their label mixed the same way."""
        if partner is None:
            partner = int(_others(classes, first)[0])
        mixed = (1 - lam) * pixels[first] + lam * pixels[partner]
        label = self.make(
            num_classes, a=int(classes[first]), b=int(classes[partner]), lam=lam, eps=eps
        )
        return mixed, label

    def draw(self, pixels, classes, first, num_classes, rng) -> tuple[Tensor, SoftLabel]:
        """A second image of another class, lam ~ U(0, 1); the inputs mixed like the labels."""
        partner = int(rng.choice(_others(classes, first)))
        lam = float(rng.uniform(0, 1))
        return self.compose(pixels, classes, first, num_classes, lam=lam, partner=partner)

    def random(self, num_classes, rng) -> SoftLabel:
        """Two random classes, lam ~ U(0, 1), smoothed with eps ~ U(0, 0.3) half the time."""
        a = int(rng.integers(num_classes))
        b = int((a + 1 + rng.integers(num_classes - 1)) % num_classes)
        eps = float(rng.uniform(0, RANDOM_EPS_HIGH)) if rng.random() < 0.5 else 0.0
        return self.make(num_classes, a=a, b=b, lam=float(rng.uniform(0, 1)), eps=eps)

    def read_params(self, label: np.ndarray) -> dict[str, Any]:
        order, shared = ordered_entries(label, self.free)
        first, second = label[order[0]] - shared, label[order[1]] - shared
        lam = float(second / (first + second)) if first + second > 0 else float("nan")
        return {
            "a": int(order[0]),
            "b": int(order[1]),
            "lam": lam,
            "eps": label.shape[0] * shared,
        }

    def check_training_value(self, value: float) -> None:
        if not value > 0.0:
            raise ValueError(f"augmentation mixup needs alpha > 0, got {value}")

    def training_targets(self, inputs, classes, num_classes, value, rng):
        """One lam ~ Beta(alpha, alpha) per batch, each input mixed with a shuffled partner."""
        one_hot = functional.one_hot(classes, num_classes).to(inputs.dtype)
        lam = float(rng.beta(value, value))
        partner = torch.from_numpy(rng.permutation(len(classes)))
        mixed = lam * inputs + (1 - lam) * inputs[partner]
        return mixed, lam * one_hot + (1 - lam) * one_hot[partner]


def _others(classes: np.ndarray, first: int) -> np.ndarray:
    """Indices of the images whose class differs from image ``first``'s."""
    others = np.flatnonzero(classes != classes[first])
    if not len(others):
        raise ValueError(
            f"mixup needs images of >= 2 classes; these images are all of class "
            f"{int(classes[first])}"
        )
    return others


FAMILIES.add(Mixup.key, Mixup())
