"""Soft labels a client trains with: one-hot, label smoothing and mixup.

Paper: Wang, Liang & He, ICLR 2024, Sec. 3 (label families).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

FAMILIES = ("hard", "smoothing", "mixup")


@dataclass(frozen=True)
class SoftLabel:
    """A probability vector over classes with the recipe that made it.

    Shapes: ``probabilities`` (C,), non-negative, summing to 1.
    """

    probabilities: Tensor
    family: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.probabilities.shape[-1])


def _check_class(name: str, value: int, num_classes: int) -> None:
    if not 0 <= value < num_classes:
        raise ValueError(f"{name} must be in [0, {num_classes - 1}], got {value}")


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _check_num_classes(num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")


def one_hot(target: int, num_classes: int, *, dtype: torch.dtype = torch.float64) -> SoftLabel:
    """The hard label e_target."""
    _check_num_classes(num_classes)
    _check_class("target", target, num_classes)
    probabilities = torch.zeros(num_classes, dtype=dtype)
    probabilities[target] = 1.0
    return SoftLabel(probabilities, "hard", {"target": target})


def smoothing(
    target: int, num_classes: int, eps: float, *, dtype: torch.dtype = torch.float64
) -> SoftLabel:
    """Label smoothing: ``(1 - eps) * e_target + eps / C``."""
    _check_num_classes(num_classes)
    _check_class("target", target, num_classes)
    _check_unit("eps", eps)
    probabilities = torch.full((num_classes,), eps / num_classes, dtype=torch.float64)
    probabilities[target] += 1.0 - eps
    return SoftLabel(probabilities.to(dtype), "smoothing", {"target": target, "eps": eps})


def mixup(
    a: int,
    b: int,
    lam: float,
    num_classes: int,
    eps: float = 0.0,
    *,
    dtype: torch.dtype = torch.float64,
) -> SoftLabel:
    """Mixup of two classes, optionally smoothed: (1 - eps)((1 - lam) e_a + lam e_b) + eps / C."""
    _check_num_classes(num_classes)
    _check_class("a", a, num_classes)
    _check_class("b", b, num_classes)
    if a == b:
        raise ValueError(f"mixup needs two different classes, got a == b == {a}")
    _check_unit("lam", lam)
    _check_unit("eps", eps)
    probabilities = torch.full((num_classes,), eps / num_classes, dtype=torch.float64)
    probabilities[a] += (1.0 - eps) * (1.0 - lam)
    probabilities[b] += (1.0 - eps) * lam
    return SoftLabel(probabilities.to(dtype), "mixup", {"a": a, "b": b, "lam": lam, "eps": eps})
