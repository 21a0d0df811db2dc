"""Validate a last layer's gradient and reduce it to the two C-vectors the search needs.

Paper: Wang, Liang & He, ICLR 2024, Sec. 4.1: every row of dL/dW = (p - y) x^T is a multiple
of x, so x = mu * g_r for the chosen row r, and for any mu the implied label is
y_i(mu) = softmax(mu * W g_r + b)_i - c_i / mu with c_i = <g_i, g_r> / <g_r, g_r>.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

#: Default bound on the relative distance of dL/dW from the nearest rank-one matrix.
#: Float32 client gradients sit near 1e-7; a batch of two inputs or several local steps sits
#: orders of magnitude above.
DEFAULT_RANK_TOL = 1e-3
#: Rows per block when measuring the distance from rank one exactly: a (ROW_BLOCK, m) float64
#: temporary, never a (C, m) copy of the gradient.
ROW_BLOCK = 32
#: The rank check never asks for more than this multiple of the input dtype's epsilon: a
#: bfloat16 gradient (eps 7.8e-3) is rank one only to about 2e-3, far above DEFAULT_RANK_TOL.
RANK_EPS_FACTOR = 10.0


#: A weight gradient is "sign-like" when, along its largest row and along that row's largest
#: column, more than SIGN_LIKE_FRACTION of the nonzero entries lie within SIGN_LIKE_BAND (or
#: SIGN_LIKE_PRECISION times the gradient's precision, if coarser) of their median magnitude.
#: A sign-based step (Adam's first, lr g / (|g| + eps), or signSGD) is +-lr to about 1e-5
#: wherever |g| >> eps; a one-input gradient (p_i - y_i) x_j varies with the class and the
#: feature, which even a sigmoid network's features (all near 0.5) and a near-uniform softmax
#: (every p_i near 1 / C) do by far more than 0.1% (a 10% band flagged 17% of such LeNet
#: gradients).
SIGN_LIKE_FRACTION = 0.5
SIGN_LIKE_BAND = 1e-3
SIGN_LIKE_PRECISION = 10.0


def _one_magnitude(values: np.ndarray, band: float) -> bool:
    """Over SIGN_LIKE_FRACTION of the nonzero |values| lie within ``band`` of their median."""
    magnitudes = np.abs(values[values != 0]).astype(np.float64)
    if magnitudes.size < 2:
        return False
    median = float(np.median(magnitudes))
    close = np.abs(magnitudes - median) <= band * median
    return float(close.mean()) > SIGN_LIKE_FRACTION


def sign_like(weight_grad: np.ndarray, row: int, precision: float = 0.0) -> bool:
    """Whether the gradient looks like a sign-based update (see SIGN_LIKE_FRACTION); O(C + m).

    ``precision``: the gradient's relative precision (an update read back from parameters).
    """
    band = max(SIGN_LIKE_BAND, SIGN_LIKE_PRECISION * precision)
    row_values = weight_grad[row]
    column = int(np.argmax(np.abs(row_values)))
    return _one_magnitude(row_values, band) and _one_magnitude(weight_grad[:, column], band)


#: What the attack may assume about the gradient's scale (see `LastLayerProblem.scale`).
SCALE_MODES = ("unknown", "known")


def check_precision(precision: float) -> float:
    """A declared relative precision of the gradient (None: its dtype's) must lie in (0, 1)."""
    if isinstance(precision, bool) or not isinstance(precision, int | float):
        raise ValueError(f"precision must be a number in (0, 1) or None, got {precision!r}")
    if not 0 < precision < 1:
        raise ValueError(f"precision must be in (0, 1) or None, got {precision}")
    return float(precision)


class NotSingleInputError(ValueError):
    """The weight gradient is not rank one, so it cannot come from one input."""


@dataclass(frozen=True)
class LastLayerProblem:
    """The reduced problem: float64 vectors, the matrices as given (float32 or float64).

    Shapes: ``weight``, ``weight_grad`` (C, m); ``row_grad`` g_r (m,); ``logit_direction`` W g_r
    (C,); ``coupling`` c (C,); ``weight_row_norms`` ||W_i|| (C,); ``bias``, ``bias_grad``
    (C,) or None. ``input_eps`` is the machine epsilon of the coarser input dtype;
    ``rank_one_deviation`` the quick (cancellation-limited, ~1e-8) distance from rank one used
    by the rank check, ``precision`` the exact one, computed when the acceptance needs it.
    ``scale`` is the attack's assumption on the gradient scale: "known" (the gradient is
    exactly dL/dW) or "unknown" (k dL/dW for some k > 0: clipping, an unknown learning rate).
    ``sign_like`` marks a gradient whose entries nearly all share one magnitude (`sign_like`).
    """

    weight: np.ndarray
    weight_grad: np.ndarray
    row: int
    row_grad: np.ndarray
    logit_direction: np.ndarray
    coupling: np.ndarray
    rank_one_deviation: float
    weight_row_norms: np.ndarray
    input_eps: float
    bias: np.ndarray | None = None
    bias_grad: np.ndarray | None = None
    scale: str = "known"
    sign_like: bool = False

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @cached_property
    def precision(self) -> float:
        """Relative precision of the observed gradient: ``input_eps``, or more when the gradient
        is measurably noisier (a defense's noise), read off its exact distance from rank one."""
        squared_distance, squared_norm = 0.0, 0.0
        for start in range(0, self.num_classes, ROW_BLOCK):
            block = self.weight_grad[start : start + ROW_BLOCK].astype(np.float64)
            squared_norm += float(np.einsum("ij,ij->", block, block))
            block -= np.outer(self.coupling[start : start + ROW_BLOCK], self.row_grad)
            squared_distance += float(np.einsum("ij,ij->", block, block))
        return max(self.input_eps, float(np.sqrt(squared_distance / squared_norm)))

    def features(self, scale: float) -> np.ndarray:
        """x(mu) = mu * g_r."""
        return scale * self.row_grad


def dtype_eps(value: Tensor | np.ndarray) -> float:
    """Machine epsilon of the dtype ``value`` was given in (float64's for integers).

    Read before `as_array` widens bfloat16 / float16 to float64: the gradient is only as
    precise as the dtype the client computed and sent it in.
    """
    if isinstance(value, Tensor):
        return float(torch.finfo(value.dtype).eps) if value.dtype.is_floating_point else _EPS64
    dtype = np.asarray(value).dtype
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else _EPS64


_EPS64 = float(np.finfo(np.float64).eps)


def _smallest_normal(dtype: np.dtype) -> float:
    """Below this a gradient has underflowed: its digits are rounding, not signal."""
    return float(np.finfo(dtype).tiny)


def as_array(name: str, value: Tensor | np.ndarray, ndim: int) -> np.ndarray:
    """A finite float32/float64 NumPy view of ``value`` (no copy when possible), checked once.

    Kernels read it with float64 accumulation (``np.einsum(..., dtype=np.float64)``), which
    casts in small buffers: converting a (1000, 2048) matrix up front costs more in fresh
    memory than the arithmetic itself, and a torch copy would wake its thread pool.
    """
    if isinstance(value, Tensor):
        if value.is_meta:
            raise ValueError(
                f"{name} is a meta-device tensor (a shape without values); pass a tensor "
                "that holds the observed numbers"
            )
        value = value.detach().cpu()
        if value.dtype not in (torch.float32, torch.float64):
            value = value.to(torch.float64)
        value = value.numpy()
    array = np.asarray(value)
    if array.dtype not in (np.float32, np.float64):
        array = array.astype(np.float64)
    if array.ndim != ndim:
        expected = "(C, m)" if ndim == 2 else "(C,)"
        raise ValueError(f"{name} must have shape {expected}, got shape {array.shape}")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite entries; expected finite values")
    return array


def matvec(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """matrix @ vector accumulated in float64. Shapes: (C, m), (m,) -> (C,)."""
    return np.einsum("ij,j->i", matrix, vector, dtype=np.float64, casting="safe")


def check_rank_tol(rank_tol: float | None) -> None:
    """``rank_tol`` is None (skip the rank check) or a number in (0, 1)."""
    if rank_tol is None:
        return
    if isinstance(rank_tol, bool) or not isinstance(rank_tol, int | float):
        raise ValueError(f"rank_tol must be a number in (0, 1) or None, got {rank_tol!r}")
    if not 0 < rank_tol < 1:
        raise ValueError(f"rank_tol must be in (0, 1) or None (no rank check), got {rank_tol}")


def _rank_refusal(deviation: float, limit: float, input_eps: float) -> NotSingleInputError:
    return NotSingleInputError(
        f"weight_grad is not rank one (relative distance {deviation:.2e} > {limit:.1e}, the "
        f"larger of rank_tol and {RANK_EPS_FACTOR:.0f}x the input precision {input_eps:.1e}): "
        "it is not one input's gradient. Possible causes: several inputs (a batch), several "
        "local steps, noise added by a defense, or parameters sent in a precision too low for "
        "this check. The analytic attack needs one input's gradient (pass rank_tol=None to "
        "attempt it on a noisy gradient anyway)"
    )


def _checked(weight, weight_grad, bias, bias_grad) -> tuple:
    """The four inputs as checked NumPy arrays (biases float64) and their coarsest dtype eps."""
    input_eps = max(dtype_eps(weight), dtype_eps(weight_grad))
    weight = as_array("weight", weight, 2)
    weight_grad = as_array("weight_grad", weight_grad, 2)
    if weight.shape != weight_grad.shape:
        raise ValueError(
            f"weight_grad has shape {weight_grad.shape}, expected the weight's shape {weight.shape}"
        )
    if weight.shape[0] < 2:
        raise ValueError(f"weight must have at least 2 rows (classes), got {weight.shape[0]}")
    if weight.shape[1] == 0:
        raise ValueError(
            f"weight has shape {weight.shape}: m = 0 feature columns, so the classifier takes "
            "no input; expected m >= 1"
        )
    if (bias is None) != (bias_grad is None):
        raise ValueError("bias and bias_grad must be given together (or neither)")
    if bias is not None:
        input_eps = max(input_eps, dtype_eps(bias), dtype_eps(bias_grad))
        bias = as_array("bias", bias, 1).astype(np.float64)
        bias_grad = as_array("bias_grad", bias_grad, 1).astype(np.float64)
        for name, vector in (("bias", bias), ("bias_grad", bias_grad)):
            if vector.shape[0] != weight.shape[0]:
                raise ValueError(f"{name} must have shape ({weight.shape[0]},), got {vector.shape}")
    return weight, weight_grad, bias, bias_grad, input_eps


def prepare(
    weight: Tensor | np.ndarray,
    weight_grad: Tensor | np.ndarray,
    bias: Tensor | np.ndarray | None = None,
    bias_grad: Tensor | np.ndarray | None = None,
    *,
    rank_tol: float | None = DEFAULT_RANK_TOL,
    scale: str = "known",
    precision: float | None = None,
) -> LastLayerProblem:
    """Check the inputs once and precompute W g_r and c in O(C m).

    The row r is the one with the largest norm, |p_r - y_r| = max_i |p_i - y_i|, which keeps
    |mu| >= 1 and the division by g_r well conditioned. ``rank_tol=None`` skips the rank-one
    check (for deliberately noisy gradients); the check never demands more than
    RANK_EPS_FACTOR times the epsilon of the dtype the gradient was given in, or of a declared
    ``precision`` (a gradient recovered from an update: the difference of two parameter
    tensors carries the parameters' rounding, magnified by their size over the step's).
    """
    check_rank_tol(rank_tol)
    if scale not in SCALE_MODES:
        raise ValueError(f"scale must be one of {', '.join(SCALE_MODES)}, got {scale!r}")
    weight, weight_grad, bias, bias_grad, input_eps = _checked(weight, weight_grad, bias, bias_grad)
    if precision is not None:
        input_eps = max(input_eps, check_precision(precision))
    squared_norms = np.einsum("ij,ij->i", weight_grad, weight_grad, dtype=np.float64)
    row = int(np.argmax(squared_norms))
    if np.sqrt(squared_norms[row]) < _smallest_normal(weight_grad.dtype):
        raise ValueError(
            "weight_grad is all zero (or below the smallest normal number of its dtype): no "
            "sample contributed to this update (an empty batch, e.g. Opacus' Poisson sampling "
            "drew none, or a frozen classifier), or the prediction equals the label exactly; "
            "either way it carries no information about the label or the feature"
        )
    row_grad = weight_grad[row].astype(np.float64)
    coupling = matvec(weight_grad, row_grad) / squared_norms[row]
    # ||G - c g_r^T||^2 = ||G||^2 - ||c||^2 ||g_r||^2 because c holds the projections on g_r;
    # the cancellation floor (~1e-8 relative) sits far below any useful rank_tol.
    explained = float(coupling @ coupling) * squared_norms[row] / squared_norms.sum()
    deviation = float(np.sqrt(max(0.0, 1.0 - explained)))
    if rank_tol is not None:
        limit = max(rank_tol, RANK_EPS_FACTOR * input_eps)
        if deviation > limit:
            raise _rank_refusal(deviation, limit, input_eps)
    return LastLayerProblem(
        weight=weight,
        weight_grad=weight_grad,
        row=row,
        row_grad=row_grad,
        logit_direction=matvec(weight, row_grad),
        coupling=coupling,
        rank_one_deviation=deviation,
        weight_row_norms=np.sqrt(np.einsum("ij,ij->i", weight, weight, dtype=np.float64)),
        input_eps=input_eps,
        bias=bias,
        bias_grad=bias_grad,
        scale=scale,
        sign_like=sign_like(weight_grad, row, input_eps),
    )
