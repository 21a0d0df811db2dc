"""Soft labels a client trains with: one-hot, label smoothing and mixup (the public makers).

Paper: Wang, Liang & He, ICLR 2024, Sec. 3 (label families). Each maker is its family's
`make` (`gradleak.families`), kept here under the names users call.
"""

from __future__ import annotations

import torch

from gradleak.families import FAMILIES, SoftLabel
from gradleak.families.batch_trials import batch_mixup, batch_smoothing


def one_hot(target: int, num_classes: int, *, dtype: torch.dtype = torch.float64) -> SoftLabel:
    """The hard label e_target."""
    return FAMILIES["hard"].make(num_classes, target=target, dtype=dtype)


def smoothing(
    target: int, num_classes: int, eps: float, *, dtype: torch.dtype = torch.float64
) -> SoftLabel:
    """Label smoothing: ``(1 - eps) * e_target + eps / C``."""
    return FAMILIES["smoothing"].make(num_classes, target=target, eps=eps, dtype=dtype)


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
    return FAMILIES["mixup"].make(num_classes, a=a, b=b, lam=lam, eps=eps, dtype=dtype)


__all__ = ["SoftLabel", "batch_mixup", "batch_smoothing", "mixup", "one_hot", "smoothing"]
