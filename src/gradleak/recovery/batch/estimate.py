"""The value batch recovery returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradleak.json_values import fields_dict


@dataclass(frozen=True)
class BatchEstimate:
    """Every recovered sample of one batch gradient, and the batch's label mass.

    Shapes: ``soft_labels`` (k, C) and ``features`` (k, m) for the k samples recovered, in no
    particular order (None for count-only methods; k = 0 unless ``converged``: a partial peel
    cannot vouch for its atoms, their count is in ``diagnostics["unverified_roots"]``);
    ``residuals`` and ``weights`` (k,): each
    root's relative residual and its atom's weight w_b (1/B for a plain mean-reduced step, times
    a clipping factor or a learning rate otherwise). ``num_samples`` is B; ``converged`` means all
    B samples were recovered and their atoms reproduce the gradient; ``reason`` says why not.
    ``label_mass`` (C,) estimates sum_b y_b (None without a bias or at an unknown scale unless
    every sample was recovered), ``counts`` (C,) the integer label counts of a hard or smoothed
    batch; ``bound`` is the largest B whose per-sample labels this C and family identify.
    ``family`` is the family asked for; for "auto" on a converged batch, the narrowest family
    every recovered label belongs to (hard, then smoothing, then mixup).
    """

    soft_labels: Tensor | None
    features: Tensor | None
    num_samples: int
    converged: bool
    reason: str
    residuals: Tensor
    weights: Tensor
    label_mass: Tensor | None
    counts: Tensor | None
    bound: int
    family: str
    method: str
    family_params: Mapping[str, Any] = field(default_factory=dict)
    diagnostics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_recovered(self) -> int:
        return 0 if self.soft_labels is None else int(self.soft_labels.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (tensors as nested lists, NaN as None)."""
        return fields_dict(self) | {"num_recovered": self.num_recovered}


def as_tensor(rows: list[np.ndarray], width: int) -> Tensor:
    """(k, width) float64 tensor from k rows (an empty (0, width) one for none)."""
    if not rows:
        return torch.zeros((0, width), dtype=torch.float64)
    return torch.from_numpy(np.stack(rows).astype(np.float64))
