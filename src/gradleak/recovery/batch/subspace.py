"""The rank-B structure of a batch's last-layer gradient: its two singular subspaces.

Mean-reduced batch of B inputs: G = sum_b w_b d_b x_b^T with d_b = p_b - y_b and w_b = 1/B
(or 1/B times a per-sample clipping factor), and with a classifier bias g_b = sum_b w_b d_b.
Stacking Ĝ = [G, g_b] = sum_b w_b d_b [x_b; 1]^T, the left singular space U (C x B) holds every
d_b and the right one V̂ ((m + 1) x B) every augmented feature [x_b; 1], exactly, whenever the
d_b and the x_b are linearly independent (generic for B < min(C, m)).

A candidate sample is x̂ = V̂ a. Without a bias a ranges over R^B; with one, the last entry of
x̂ must be 1, a linear constraint that leaves a = a0 + N theta with theta in R^(B-1). Its logits
are z = [W, b] x̂ = offset + directions @ theta. Shapes are in `Subspace`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Subspace:
    """The search space of one peeling pass.

    Shapes: ``left`` U (C, r); ``singular`` S (r,); ``right`` V̂ (m [+ 1], r); ``base`` a0 (r,)
    and ``null`` N (r, n) with a = a0 + N theta (n = r, or r - 1 with a bias); ``offset`` (C,)
    and ``directions`` (C, n): the logits z = offset + directions @ theta.
    """

    left: np.ndarray
    singular: np.ndarray
    right: np.ndarray
    base: np.ndarray
    null: np.ndarray
    offset: np.ndarray
    directions: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.singular.shape[0])

    def coordinates(self, theta: np.ndarray) -> np.ndarray:
        """a = a0 + N theta. Shapes: (..., n) -> (..., r)."""
        return self.base + theta @ self.null.T

    def feature(self, theta: np.ndarray) -> np.ndarray:
        """The augmented feature x̂ = V̂ a of one candidate. Shapes: (n,) -> (m [+ 1],)."""
        return self.right @ self.coordinates(theta)


def singular_values(matrix: np.ndarray) -> np.ndarray:
    """The singular values of ``matrix`` (descending), in float64."""
    return np.linalg.svd(matrix, compute_uv=False)


def subspace(weight: np.ndarray, gradient: np.ndarray, rank: int, *, bias: bool) -> Subspace:
    """The rank-``rank`` subspaces of ``gradient`` and the logits they allow.

    ``weight`` is [W, b] when ``bias`` (the bias as the last column), else W; ``gradient`` is Ĝ
    (the bias gradient as its last column) or G, with the same columns. Shapes: (C, m [+ 1]).
    """
    left, singular, right_t = np.linalg.svd(gradient, full_matrices=False)
    return _with_logits(weight, left[:, :rank], singular[:rank], right_t[:rank].T, bias=bias)


def rest_subspace(weight: np.ndarray, whole: Subspace, rest: np.ndarray, rank: int) -> Subspace:
    """The rank-``rank`` subspaces of U0 R V̂0^T, a rest ``rest`` (r, r) of the ``whole`` batch's
    core: from the SVD of the small core (U0 and V̂0 have orthonormal columns), not of the
    (C, m) matrix. ``weight`` as in `subspace`."""
    left, singular, right_t = np.linalg.svd(rest)
    bias = whole.null.shape[1] < whole.rank
    return _with_logits(
        weight,
        whole.left @ left[:, :rank],
        singular[:rank],
        whole.right @ right_t[:rank].T,
        bias=bias,
    )


def _with_logits(weight, left, singular, right, *, bias: bool) -> Subspace:
    rank = singular.shape[0]
    logit_map = weight @ right  # z = logit_map @ a
    if bias:
        last = right[-1]
        base = last / float(last @ last)
        null = np.linalg.svd(last[None, :])[2][1:].T
    else:
        base, null = np.zeros(rank), np.eye(rank)
    return Subspace(
        left=left,
        singular=singular,
        right=right,
        base=base,
        null=null,
        offset=logit_map @ base,
        directions=logit_map @ null,
    )
