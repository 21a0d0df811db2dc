"""One recovered sample of a batch: what peeling and the joint fit report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Below this a float64 fit is exact (search and rounding slack).
EXACT = 1e-11
#: A label entry may stray this far outside [0, 1] by rounding.
LABEL_TOL = 1e-3


@dataclass(frozen=True)
class Sample:
    """One recovered sample: its label and feature, its atom's weight, its root residual, the
    hypothesis it solved (free classes, whether eps was free) and its coordinates theta in the
    whole batch's subspace. Shapes: ``soft_label`` (C,), ``feature`` (m,), ``theta`` (n,)."""

    soft_label: np.ndarray
    feature: np.ndarray
    weight: float
    residual: float
    free_classes: tuple[int, ...]
    theta: np.ndarray
    eps_free: bool
