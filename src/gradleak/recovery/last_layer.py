"""Validate a last layer's gradient and reduce it to the two C-vectors the search needs.

Paper: Wang, Liang & He, ICLR 2024, Sec. 4.1: every row of dL/dW = (p - y) x^T is a multiple
of x, so x = mu * g_r for the chosen row r, and for any mu the implied label is
y_i(mu) = softmax(mu * W g_r + b)_i - c_i / mu with c_i = <g_i, g_r> / <g_r, g_r>.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

#: Default bound on the relative distance of dL/dW from the nearest rank-one matrix.
#: Float32 client gradients sit near 1e-7; a batch of two inputs or several local steps sits
#: orders of magnitude above.
DEFAULT_RANK_TOL = 1e-3


class NotSingleInputError(ValueError):
    """The weight gradient is not rank one, so it cannot come from one input."""


@dataclass(frozen=True)
class LastLayerProblem:
    """The reduced problem, in float64.

    Shapes: ``weight``, ``weight_grad`` (C, m); ``row_grad`` g_r (m,); ``logit_direction`` W g_r
    (C,); ``coupling`` c (C,); ``bias``, ``bias_grad`` (C,) or None.
    """

    weight: np.ndarray
    weight_grad: np.ndarray
    row: int
    row_grad: np.ndarray
    logit_direction: np.ndarray
    coupling: np.ndarray
    rank_one_deviation: float
    bias: np.ndarray | None = None
    bias_grad: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    def features(self, scale: float) -> np.ndarray:
        """x(mu) = mu * g_r."""
        return scale * self.row_grad


def as_float64(name: str, value: Tensor | np.ndarray, ndim: int) -> np.ndarray:
    if isinstance(value, Tensor):
        # NumPy converts on the calling thread; a torch copy this size would wake its thread
        # pool, which costs milliseconds on small machines.
        value = value.detach().cpu().numpy()
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        expected = "(C, m)" if ndim == 2 else "(C,)"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite entries; expected finite values")
    return array


def prepare(
    weight: Tensor | np.ndarray,
    weight_grad: Tensor | np.ndarray,
    bias: Tensor | np.ndarray | None = None,
    bias_grad: Tensor | np.ndarray | None = None,
    *,
    rank_tol: float | None = DEFAULT_RANK_TOL,
) -> LastLayerProblem:
    """Check the inputs once and precompute W g_r and c in O(C m).

    The row r is the one with the largest norm, |p_r - y_r| = max_i |p_i - y_i|, which keeps
    |mu| >= 1 and the division by g_r well conditioned. ``rank_tol=None`` skips the rank-one
    check (for deliberately noisy gradients).
    """
    weight = as_float64("weight", weight, 2)
    weight_grad = as_float64("weight_grad", weight_grad, 2)
    if weight.shape != weight_grad.shape:
        raise ValueError(
            f"weight_grad has shape {weight_grad.shape}, expected the weight's shape {weight.shape}"
        )
    if weight.shape[0] < 2:
        raise ValueError(f"weight must have at least 2 rows (classes), got {weight.shape[0]}")
    if (bias is None) != (bias_grad is None):
        raise ValueError("bias and bias_grad must be given together (or neither)")
    if bias is not None:
        bias = as_float64("bias", bias, 1)
        bias_grad = as_float64("bias_grad", bias_grad, 1)
        for name, vector in (("bias", bias), ("bias_grad", bias_grad)):
            if vector.shape[0] != weight.shape[0]:
                raise ValueError(f"{name} must have shape ({weight.shape[0]},), got {vector.shape}")

    squared_norms = np.einsum("ij,ij->i", weight_grad, weight_grad)
    row = int(np.argmax(squared_norms))
    if squared_norms[row] == 0.0:
        raise ValueError(
            "weight_grad is all zero: the prediction equals the label exactly, so the gradient "
            "carries no information about the label or the feature"
        )
    row_grad = weight_grad[row]
    coupling = weight_grad @ row_grad / squared_norms[row]
    # ||G - c g_r^T||^2 = ||G||^2 - ||c||^2 ||g_r||^2 because c holds the projections on g_r;
    # the cancellation floor (~1e-8 relative) sits far below any useful rank_tol.
    explained = float(coupling @ coupling) * squared_norms[row] / squared_norms.sum()
    deviation = float(np.sqrt(max(0.0, 1.0 - explained)))
    if rank_tol is not None and deviation > rank_tol:
        raise NotSingleInputError(
            f"weight_grad is not rank one (relative distance {deviation:.2e} > rank_tol "
            f"{rank_tol:.0e}): it cannot come from one input. A batch of several inputs or "
            "several local steps mixes features; the analytic attack needs one input's gradient "
            "(pass rank_tol=None to attempt it on a noisy gradient anyway)"
        )
    return LastLayerProblem(
        weight=weight,
        weight_grad=weight_grad,
        row=row,
        row_grad=row_grad,
        logit_direction=weight @ row_grad,
        coupling=coupling,
        rank_one_deviation=deviation,
        bias=bias,
        bias_grad=bias_grad,
    )
