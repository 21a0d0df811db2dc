"""Candidate roots of one peeling pass: the label hypotheses, the starting points, the map of a
rest's root into the whole batch's subspace, and whether a root is pinned by its own condition.
"""

from __future__ import annotations

import numpy as np

from gradleak.recovery.batch.ambiguity import moves_label
from gradleak.recovery.batch.roots import Hypotheses, RootFit, fit_roots, relative_residual
from gradleak.recovery.batch.subspace import Subspace

#: Logit spreads (standard deviation over classes) of the random starts: flat to saturated.
START_SPREADS = (0.5, 2.0, 6.0)
#: In a rest of at most this rank, mixup pairs take their minor class from every class.
WIDE_PAIR_RANK = 2
#: Spaces up to this dimension also start from each start's opposite.
ANTITHETIC_SIZE = 2


def hypotheses(
    space: Subspace, family: str, num_classes: int
) -> list[tuple[list[tuple[int, ...]], bool]]:
    """Groups of hypotheses (the free classes of each, and whether eps is free): hard one class
    each (eps = 0); smoothing one class each with the batch's eps; batch mixup every class alone
    (a sample mixed with its own class) and pairs with eps = 0 (batch mixup mixes one-hot
    labels); auto the smoothing singles and the mixup pairs. A mixed sample's major class
    carries a large share of its d_b, so it is among the 2r + 2 classes whose unit vectors lie
    most in span(U); its minor class may carry any small share: the pairs are every two of
    those classes, and in a rest of rank r <= WIDE_PAIR_RANK (cheap: n <= 2) each of them
    with every class."""
    singles = [(target,) for target in range(num_classes)]
    if family == "hard":
        return [(singles, False)]
    if family == "smoothing":
        return [(singles, True)]
    share = np.linalg.norm(space.left, axis=1)
    major = np.argsort(-share, kind="stable")[: min(num_classes, 2 * space.rank + 2)]
    minor = range(num_classes) if space.rank <= WIDE_PAIR_RANK else major
    pairs = sorted({tuple(sorted((int(a), int(b)))) for a in major for b in minor if a != b})
    return [(singles, family == "auto"), (pairs, False)]


def starts(space: Subspace, count: int, rng: np.random.Generator, bias: bool) -> np.ndarray:
    """(S, H, n) starting points: theta = 0 with a bias (x at a0), and random directions
    scaled to each of START_SPREADS; in a space of at most ANTITHETIC_SIZE dimensions (a late
    rest) each direction's opposite too, as a random sign there misses half the space."""
    size = space.directions.shape[1]
    starts = [np.zeros((count, size))] if bias else []
    for spread in START_SPREADS:
        theta = rng.standard_normal((count, size))
        logits = theta @ space.directions.T
        theta *= spread / np.maximum(logits.std(axis=1, keepdims=True), 1e-300)
        starts += [theta, -theta] if size <= ANTITHETIC_SIZE else [theta]
    return np.stack(starts)


#: Logit spreads at which the row starts are evaluated along their ray (without a bias the
#: feature's scale is free): a geometric grid, flat to deeply saturated.
ROW_SPREADS = np.geomspace(0.03, 3000.0, 31)


def row_starts(
    space: Subspace, free: list[tuple[int, ...]], eps_free: bool, bias: bool
) -> np.ndarray:
    """(1, H, n) starting points read from the gradient's rows: row c of the (rest's) gradient
    is sum_b w_b d_bc x̂_b, and d_bc = p_bc - y_bc is about -y_bc for a sample labelled c that
    the others do not predict, so row c points at that sample's feature (iLRG's observation,
    Ma et al., ICLR 2023, used here only as a start: the root condition decides). Its
    coordinates in the space are S U[c]; a hypothesis starts from minus the sum of its free
    classes' rows, at the scale the bias fixes (the feature's last entry is 1), and without a
    bias at the best of ROW_SPREADS along the ray."""
    size = space.directions.shape[1]
    rows = -(space.left * space.singular)  # (C, r): row c's coordinates a
    rays = np.stack([rows[list(classes)].sum(axis=0) for classes in free])  # (H, r)
    if bias:
        last = rays @ space.right[-1]
        safe = np.where(np.abs(last) > 1e-300, last, 1.0)
        return ((rays / safe[:, None] - space.base) @ space.null)[None]
    problem = Hypotheses(space, free, eps_free)
    spread = np.maximum((rays @ space.directions.T).std(axis=1), 1e-300)  # theta = a here
    best = np.full(len(free), np.inf)
    theta = np.zeros((len(free), size))
    with np.errstate(all="ignore"):
        for target in ROW_SPREADS:
            trial = rays * (target / spread)[:, None]
            state = problem.evaluate(trial)
            value = relative_residual(state[2], state[5])
            better = value < best
            best[better], theta[better] = value[better], trial[better]
    return theta[None]


def unpinned(space, free, fit: RootFit, row: int, eps_free: bool, noise: float) -> bool:
    """Whether root ``row`` is not pinned by its own root condition (`ambiguity.moves_label`)."""
    problem = Hypotheses(space, [free[row]], eps_free)
    theta = fit.theta[row]
    probs, _masked, residual, _coef, fitted, norm = problem.evaluate(theta[None])
    _relative, jac = problem.jacobian(probs, residual, fitted, norm)

    def evaluate(point: np.ndarray) -> tuple[float, np.ndarray]:
        moved_probs, _m, moved_residual, coefficients, _f, moved_norm = problem.evaluate(
            point[None]
        )
        label = moved_probs[0] - coefficients[0, : space.rank] @ space.left.T
        return float(relative_residual(moved_residual, moved_norm)[0]), label

    return moves_label(theta, jac[0], evaluate, noise)


#: Levenberg-Marquardt iterations that polish a root in the whole batch's subspace, and the
#: residual below which a rest's root is worth polishing.
POLISH_ITERATIONS = 40
POLISH_SCREEN = 1e-2


def in_whole(
    whole: Subspace, space: Subspace, fit: RootFit, row: int, free: tuple[int, ...], eps_free: bool
) -> tuple[RootFit, RootFit]:
    """The root ``row`` of a rest's ``space`` in the whole batch's subspace: polished there as a
    root of the whole batch, and only mapped there (evaluated, not moved)."""
    feature = space.feature(fit.theta[row])
    theta = ((whole.right.T @ feature - whole.base) @ whole.null)[None, None, :]
    polished = fit_roots(whole, [free], theta, eps_free=eps_free, iterations=POLISH_ITERATIONS)
    mapped = fit_roots(whole, [free], theta, eps_free=eps_free, iterations=0)
    return polished, mapped


__all__ = ["hypotheses", "in_whole", "starts", "unpinned"]
