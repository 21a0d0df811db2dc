"""Float64 kernels over large weight (gradient) matrices, streamed in row blocks.

For one input, a linear layer's weight gradient is rank one, dL/dW = delta x^T: these kernels
fit and check that structure and run the layer forward.

A whole-matrix float64 copy of FCN-4's 4096 x 12288 first-layer gradient costs ~1 s (mostly
page faults); converting ~2 MiB blocks as they are used keeps each pass near 0.05 s while
every sum is still accumulated in float64.

Paper: Wang, Liang & He, ICLR 2024, Sec. 5.3 (dL/dW of a linear layer is rank one for one input).
Shapes: G (n, d) gradients of any float dtype; delta (n,); x (d,).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

_CHUNK_ELEMENTS = 1 << 18


def _row_blocks(matrix: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Consecutive row blocks of ``matrix`` as float64 copies of ~2 MiB each, with offsets.

    Always copies (callers may overwrite a block), even when ``matrix`` is float64 already.
    """
    rows = max(1, _CHUNK_ELEMENTS // max(1, matrix.shape[1]))
    for start in range(0, matrix.shape[0], rows):
        yield start, matrix[start : start + rows].astype(np.float64, copy=True)


def weighted_row_sum(matrix: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``weights @ matrix`` in float64, converting a few rows at a time.

    Shapes: ``matrix`` (n, d) of any float dtype, ``weights`` (n,) -> (d,).
    """
    total = np.zeros(matrix.shape[1], dtype=np.float64)
    for start, block in _row_blocks(matrix):
        total += weights[start : start + block.shape[0]] @ block
    return total


def matvec(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``matrix @ vector`` in float64, converting a few rows at a time.

    Shapes: ``matrix`` (n, d) of any float dtype, ``vector`` (d,) -> (n,).
    """
    return np.concatenate([block @ vector for _, block in _row_blocks(matrix)])


def rank_one_residual(
    matrix: np.ndarray, delta: np.ndarray, inputs: np.ndarray
) -> tuple[float, float]:
    """How well G = delta inputs^T holds: (fit residual, excluded share), both relative to |G|_F.

    The fit residual is |G_S - delta_S inputs^T|_F over the rows S where delta != 0; the
    excluded share is |G_R|_F over the other rows R, which the fit cannot explain (exactly 0 for
    an exact gradient: those units are inactive). Summed from the differences themselves, not
    from |G|^2 - |d|^2 |x|^2, whose cancellation would hide residuals below ~1e-8. (0, 0) for
    G = 0.
    Shapes: ``matrix`` G (n, d), ``delta`` (n,), ``inputs`` (d,).
    """
    misfit_sq = excluded_sq = scale_sq = 0.0
    for start, block in _row_blocks(matrix):
        rows = delta[start : start + block.shape[0]]
        row_sq = np.einsum("ij,ij->i", block, block)
        scale_sq += float(row_sq.sum())
        excluded_sq += float(row_sq[rows == 0].sum())
        block -= np.outer(rows, inputs)
        misfit_sq += float(np.einsum("ij,ij->i", block, block)[rows != 0].sum())
    if scale_sq == 0:
        return 0.0, 0.0
    return math.sqrt(misfit_sq / scale_sq), math.sqrt(excluded_sq / scale_sq)
