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

#: Most Levenberg-Marquardt iterations per pass. A hypothesis stops earlier once it has
#: converged (CONVERGED), reached its floating-point floor (no improvement at all over
#: STALL_WINDOW iterations) or, above PROMISING, stalled (less than STALL_GAIN x improvement
#: over STALL_WINDOW iterations: a wrong hypothesis at its positive minimum), so the budget goes
#: to the slow true roots of a saturated softmax.
ITERATIONS = 300
CONVERGED = 1e-13
STALL_WINDOW = 10
STALL_GAIN = 2.0
#: Below this residual a hypothesis may be a slowly converging root: it keeps its iterations.
PROMISING = 0.1
#: Below this residual the implicit normal equations cancel (J^T J = dp^T dp - A^T A loses the
#: digits a root needs): those hypotheses get the explicit Jacobian.
EXPLICIT = 1e-3
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

    def rows(self, rows: list[int]) -> RootFit:
        """The fits of the hypotheses ``rows`` only."""
        return RootFit(*(getattr(self, name)[rows] for name in self.__dataclass_fields__))


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
        directions = space.directions
        #: D_c D_c^T per class, flattened: sum_c w_c D_c D_c^T is one matrix product.
        self.outer = (directions[:, :, None] * directions[:, None, :]).reshape(num_classes, -1)

    def take(self, rows: np.ndarray) -> Hypotheses:
        """The same hypotheses restricted to ``rows`` (shares the subspace)."""
        taken = object.__new__(Hypotheses)
        taken.__dict__.update(self.__dict__)
        taken.mask = self.mask[rows]
        taken.orthonormal = self.orthonormal[rows]
        taken.inverse = self.inverse[rows]
        return taken

    def evaluate(self, theta: np.ndarray) -> tuple[np.ndarray, ...]:
        """p, residual vector, fitted coefficients, d_R and ||d_R|| at ``theta`` (H, n)."""
        probs = softmax(self.space.offset + theta @ self.space.directions.T)
        masked = probs * self.mask
        # Batched matrix products (np.matmul) rather than np.einsum: BLAS-backed, ~10x faster.
        along = (masked[:, None, :] @ self.orthonormal)[:, 0]
        residual = masked - (self.orthonormal @ along[:, :, None])[:, :, 0]
        coefficients = (self.inverse @ masked[:, :, None])[:, :, 0]
        fitted = self.mask * (coefficients[:, : self.rank] @ self.left.T)
        norm = np.linalg.norm(fitted, axis=1)
        return probs, masked, residual, coefficients, fitted, norm

    def jacobian(self, probs, residual, fitted, norm) -> tuple[np.ndarray, np.ndarray]:
        """r / ||d_R|| and its Jacobian in theta. Shapes: (H, C), (H, C, n).

        With q = mask * p and D the logit directions, d(mask * p) = q (D - p D) row-wise; the
        norm's derivative needs only (fitted U) . d(coefficients), never a (H, C, n) d_R.
        """
        directions = self.space.directions
        masked = probs * self.mask
        dp = masked[:, :, None] * (directions[None] - (probs @ directions)[:, None, :])
        basis = self.orthonormal
        d_residual = dp - basis @ (basis.transpose(0, 2, 1) @ dp)
        d_coefficients = self.inverse[:, : self.rank] @ dp
        safe = np.where(norm > SMALLEST_GRADIENT, norm, np.inf)
        # d||d_R|| = d_R . d(d_R) / ||d_R|| with d(d_R) = mask * (U dc), and mask * d_R = d_R.
        along_fitted = fitted @ self.left
        d_norm = (along_fitted[:, None, :] @ d_coefficients)[:, 0] / safe[:, None]
        relative = residual / safe[:, None]
        d_relative = (d_residual - relative[:, :, None] * d_norm[:, None, :]) / safe[:, None, None]
        return relative, d_relative

    def normal_equations(self, probs, residual, fitted, norm) -> tuple[np.ndarray, np.ndarray]:
        """J^T J and J^T r of `jacobian` (r = residual / ||d_R||), without forming J.

        Every term is a sum over classes of q_c-weighted rows of E = D - p D (q = mask * p):
        dp^T dp = sum_c q_c^2 E_c E_c^T, and the projection onto span(O) is removed through
        A = O^T dp (J^T J = (dp^T dp - A^T A - ...) / ||d_R||^2). So the work is a few
        (H, C) x (C, n) products instead of (H, C, n) arrays. Shapes: (H, n, n), (H, n).
        """
        directions = self.space.directions
        masked = probs * self.mask
        mean = probs @ directions  # p D, (H, n)
        squared = masked * masked
        weighted = squared @ directions
        size = directions.shape[1]
        gram = (squared @ self.outer).reshape(-1, size, size)
        total = squared.sum(axis=1)[:, None, None]
        cross = weighted[:, :, None] * mean[:, None, :]
        gram += total * mean[:, :, None] * mean[:, None, :] - cross - cross.transpose(0, 2, 1)
        basis = self.orthonormal
        scaled = (basis * masked[:, :, None]).transpose(0, 2, 1)  # (H, k, C)
        along = (masked[:, None, :] @ basis)[:, 0]  # O^T q, (H, k)
        projected = scaled @ directions - along[:, :, None] * mean[:, None, :]  # A = O^T dp
        gram -= projected.transpose(0, 2, 1) @ projected
        safe = np.where(norm > SMALLEST_GRADIENT, norm, np.inf)
        relative = residual / safe[:, None]
        # d||d_R|| / d theta = (fitted U) . (Inv_r dp) / ||d_R|| = v dp / ||d_R||.
        row = ((fitted @ self.left)[:, None, :] @ self.inverse[:, : self.rank])[:, 0]
        d_norm = (_weighted_rows(row * masked, directions, mean)) / safe[:, None]
        toward = _weighted_rows(masked * relative, directions, mean)  # dp^T r (= R^T r)
        length = (relative * relative).sum(axis=1)
        outer = toward[:, :, None] * d_norm[:, None, :]
        normal = (
            gram
            - outer
            - outer.transpose(0, 2, 1)
            + length[:, None, None] * d_norm[:, :, None] * d_norm[:, None, :]
        ) / (safe * safe)[:, None, None]
        descent = (toward - length[:, None] * d_norm) / safe[:, None]
        return normal, descent


def _weighted_rows(weights: np.ndarray, directions: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """sum_c weights_c (D_c - p D): one product. Shapes: (H, C), (C, n), (H, n) -> (H, n)."""
    return weights @ directions - weights.sum(axis=1)[:, None] * mean


def _solve(system: np.ndarray, right: np.ndarray) -> np.ndarray:
    """system^-1 right per problem: a batched LU solve (the damped normal matrix is positive
    definite), with the pseudo-inverse only when some system is singular in floating point
    (a degenerate point whose Jacobian vanished). Shapes: (H, n, n), (H, n) -> (H, n)."""
    try:
        return np.linalg.solve(system, right[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(system) @ right[:, :, None])[:, :, 0]


def _finite(values: np.ndarray) -> np.ndarray:
    """``np.nan_to_num(values)``, without its copy and passes when every entry is finite."""
    return values if np.isfinite(values).all() else np.nan_to_num(values)


def relative_residual(residual: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """rho = ||(I - P) p_R|| / ||d_R|| per hypothesis (inf where d_R vanishes). Shapes: (H,)."""
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
    value = relative_residual(state[2], state[5])
    damping = np.full(theta.shape[0], 1e-3)
    eye = np.eye(size)
    active = np.arange(theta.shape[0])
    current = problems
    window: list[np.ndarray] = []
    for _ in range(iterations if size else 0):
        window.append(value.copy())
        if len(window) > STALL_WINDOW:
            earlier = window.pop(0)
            now = value[active]
            moving = (now * STALL_GAIN < earlier[active]) | (now < PROMISING)
            # Converged, or at its floating-point floor: no step in the window improved it.
            moving &= (now >= CONVERGED) & (now < earlier[active])
            if not moving.all():
                active = active[moving]
                current = problems.take(active)
        if active.size == 0:
            break
        probs, _masked, residual, _coefficients, fitted, norm = (part[active] for part in state)
        normal, descent = current.normal_equations(probs, residual, fitted, norm)
        close = np.flatnonzero(value[active] < EXPLICIT)
        if close.size:
            # Near a root J^T J = dp^T dp - A^T A cancels: the hypotheses below EXPLICIT get the
            # explicit Jacobian, so they converge to the data's precision.
            relative, jac = current.take(close).jacobian(
                probs[close], residual[close], fitted[close], norm[close]
            )
            relative, jac = _finite(relative), _finite(jac)
            normal[close] = jac.transpose(0, 2, 1) @ jac
            descent[close] = (relative[:, None, :] @ jac)[:, 0]
        normal, descent = _finite(normal), _finite(descent)
        diagonal = np.einsum("hnn->hn", normal)
        floor = 1e-12 * diagonal.max(axis=1, keepdims=True) + 1e-300
        system = normal + (damping[active, None] * (diagonal + floor))[:, :, None] * eye
        moved = theta[active] - _solve(system, descent)
        trial = current.evaluate(moved)
        trial_value = relative_residual(trial[2], trial[5])
        better = trial_value < value[active]
        improved = active[better]
        theta[improved] = moved[better]
        for part, new in zip(state, trial, strict=True):
            part[improved] = new[better]
        value[improved] = trial_value[better]
        damping[active] = np.where(better, damping[active] / 3.0, damping[active] * 4.0)
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
