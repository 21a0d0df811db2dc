"""Per-sample roots in the batch subspace: a vectorised Levenberg-Marquardt over hypotheses.

A true sample is a root of the single-sample condition inside the subspace (`subspace`): with
x̂ = V̂ a and p = softmax(z(theta)), the logit gradient d = p - y must lie in span(U). A
hypothesis names the label's free classes S (hard and smoothing: the target; mixup: the two
mixed classes); on every other class the label is eps / C (eps = 0 for a hard label). So on the
rows R outside S, p_R must lie in span(U_R) (plus span(1_R) when eps is free). The residual

    rho(theta) = || (I - P) p_R || / || d_R ||,    P = projector onto span(U_R[, 1_R]),

is relative to the size of d_R = U_R c (the fitted logit gradient), so the saturated limit
|theta| -> oo, where p_R and d_R vanish together, does not look like a root. It gives
|R| - r equations, minus the one that always holds (every d sums to 0, so 1 is orthogonal to
U), against n unknowns in theta and one for eps when free (`batch_identifiability`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradleak.recovery.batch.subspace import Subspace

#: Levenberg-Marquardt iterations per pass; converged hypotheses stop moving long before.
ITERATIONS = 60
#: A fitted logit gradient below this norm is no gradient: the saturated limit, not a root.
SMALLEST_GRADIENT = 1e-9


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64. Shapes: (..., C) -> (..., C)."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class RootFit:
    """The best point each hypothesis reached. Shapes: ``theta`` (H, n); ``residual`` rho (H,)
    (inf where the fit degenerated); ``probs`` p (H, C); ``gradient`` d = U c on every class
    (H, C); ``offset`` the fitted eps / C on the rows outside S (H,)."""

    theta: np.ndarray
    residual: np.ndarray
    probs: np.ndarray
    gradient: np.ndarray
    offset: np.ndarray


class Hypotheses:
    """The fixed linear algebra of H hypotheses: masks, bases and their pseudo-inverses."""

    def __init__(self, space: Subspace, free: list[tuple[int, ...]], eps_free: bool):
        num_classes = space.left.shape[0]
        self.mask = np.ones((len(free), num_classes))
        for row, classes in enumerate(free):
            self.mask[row, list(classes)] = 0.0
        basis = self.mask[:, :, None] * space.left[None]
        if eps_free:
            basis = np.concatenate([basis, self.mask[:, :, None]], axis=2)
        self.rank = space.rank
        self.orthonormal = np.linalg.qr(basis)[0]
        self.inverse = np.linalg.pinv(basis)
        self.left = space.left
        self.space = space

    def evaluate(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """p, residual vector, fitted coefficients, d_R and ||d_R|| at ``theta`` (H, n)."""
        probs = softmax(self.space.offset + theta @ self.space.directions.T)
        masked = probs * self.mask
        along = np.einsum("hck,hc->hk", self.orthonormal, masked)
        residual = masked - np.einsum("hck,hk->hc", self.orthonormal, along)
        coefficients = np.einsum("hkc,hc->hk", self.inverse, masked)
        fitted = self.mask * (coefficients[:, : self.rank] @ self.left.T)
        norm = np.linalg.norm(fitted, axis=1)
        return probs, masked, residual, coefficients, fitted, norm

    def jacobian(self, probs, residual, fitted, norm) -> tuple[np.ndarray, np.ndarray]:
        """r / ||d_R|| and its Jacobian in theta. Shapes: (H, C), (H, C, n)."""
        directions = self.space.directions
        dp = (
            probs[:, :, None] * directions[None]
            - probs[:, :, None] * (probs @ directions)[:, None, :]
        )
        dp *= self.mask[:, :, None]
        d_residual = dp - np.einsum(
            "hck,hkn->hcn", self.orthonormal, np.einsum("hck,hcn->hkn", self.orthonormal, dp)
        )
        d_coefficients = np.einsum("hkc,hcn->hkn", self.inverse[:, : self.rank], dp)
        d_fitted = self.mask[:, :, None] * np.einsum("ck,hkn->hcn", self.left, d_coefficients)
        safe = np.where(norm > SMALLEST_GRADIENT, norm, np.inf)
        d_norm = np.einsum("hc,hcn->hn", fitted, d_fitted) / safe[:, None]
        relative = residual / safe[:, None]
        d_relative = (
            d_residual / safe[:, None, None]
            - (relative / safe[:, None])[:, :, None] * d_norm[:, None, :]
        )
        return relative, d_relative


def _relative(residual: np.ndarray, norm: np.ndarray) -> np.ndarray:
    value = np.linalg.norm(residual, axis=1) / np.where(norm > SMALLEST_GRADIENT, norm, np.nan)
    return np.nan_to_num(value, nan=np.inf)


def fit_roots(
    space: Subspace,
    free: list[tuple[int, ...]],
    starts: np.ndarray,
    *,
    eps_free: bool,
    iterations: int = ITERATIONS,
) -> RootFit:
    """Minimise rho for every hypothesis from every start; keep each hypothesis' best point.

    ``free``: H hypotheses (the free classes of each); ``starts``: (S, H, n) initial theta.
    All S * H problems are solved at once (one batched n x n solve per iteration). Degenerate
    points (a vanishing d_R) evaluate to inf, so NumPy's warnings there are silenced.
    """
    with np.errstate(all="ignore"):
        return _fit_roots(space, free, starts, eps_free=eps_free, iterations=iterations)


def _fit_roots(space, free, starts, *, eps_free: bool, iterations: int) -> RootFit:
    num_starts = starts.shape[0]
    problems = Hypotheses(space, [classes for _ in range(num_starts) for classes in free], eps_free)
    theta = starts.reshape(num_starts * len(free), starts.shape[-1]).copy()
    size = theta.shape[1]
    state = problems.evaluate(theta)
    value = _relative(state[2], state[5])
    damping = np.full(theta.shape[0], 1e-3)
    eye = np.eye(size)
    for _ in range(iterations if size else 0):
        probs, _masked, residual, _coefficients, fitted, norm = state
        relative, jac = problems.jacobian(probs, residual, fitted, norm)
        relative, jac = np.nan_to_num(relative), np.nan_to_num(jac)
        normal = np.einsum("hcn,hcm->hnm", jac, jac)
        diagonal = np.einsum("hnn->hn", normal)
        floor = 1e-12 * diagonal.max(axis=1, keepdims=True) + 1e-300
        system = normal + (damping[:, None] * (diagonal + floor))[:, :, None] * eye
        step = -np.einsum(
            "hnm,hm->hn", np.linalg.pinv(system), np.einsum("hcn,hc->hn", jac, relative)
        )
        trial = problems.evaluate(theta + step)
        trial_value = _relative(trial[2], trial[5])
        better = trial_value < value
        theta = np.where(better[:, None], theta + step, theta)
        state = tuple(
            np.where(better[(slice(None),) + (None,) * (new.ndim - 1)], new, old)
            for new, old in zip(trial, state, strict=True)
        )
        value = np.where(better, trial_value, value)
        damping = np.where(better, damping / 3.0, damping * 4.0)
        if np.all(value < 1e-13):
            break
    probs, _masked, _residual, coefficients, fitted, _norm = state
    gradient = coefficients[:, : problems.rank] @ space.left.T
    offset = coefficients[:, problems.rank] if eps_free else np.zeros(len(value))
    best = value.reshape(num_starts, len(free)).argmin(axis=0)
    pick = best * len(free) + np.arange(len(free))
    return RootFit(
        theta=theta[pick],
        residual=value[pick],
        probs=probs[pick],
        gradient=gradient[pick],
        offset=offset[pick],
    )
