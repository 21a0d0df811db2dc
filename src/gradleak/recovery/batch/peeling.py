"""Peeling: find per-sample roots, subtract their atoms, repeat on the lower-rank rest.

Each accepted root gives an atom d x̂^T. Its weight is not guessed: for a rank-r gradient Ĝ whose
atoms are linearly independent, x̂_b^T Ĝ^+ d_b = 1 / w_b exactly (Ĝ^+ = X̂^+ (D_w^T)^+), and
Ĝ - w d x̂^T has rank r - 1 exactly when d x̂^T is one of its atoms (Wedderburn's rank
reduction). So a root counts only when its weight is positive and subtracting its atom drops
the rank to the gradient's precision: a spurious root, or a second copy of a sample already
peeled, does not. The rest is a smaller problem with more equations per unknown; the last
sample is a single-input problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradleak.recovery.batch.roots import Hypotheses, RootFit, fit_roots
from gradleak.recovery.batch.subspace import Subspace, singular_values, subspace

#: Accept residuals and rank drops up to this multiple of the gradient's precision.
ROOT_FACTOR = 30.0
#: Below this a float64 fit is exact (search and rounding slack).
EXACT = 1e-11
#: Logit spreads (standard deviation over classes) of the random starts: flat to saturated.
START_SPREADS = (0.5, 2.0, 6.0)
#: A label entry may stray this far outside [0, 1] by rounding.
LABEL_TOL = 1e-3
#: A root whose label could move by more than this (l1) within the residual tolerance is not
#: pinned by the gradient (a flat or saturated softmax): refused as ambiguous.
AMBIGUITY_L1 = 1e-3
#: At an unknown scale without a bias, x -> lam x moves a label of a family with eps along
#: (1 - lam) U + lam y, which only the softmax's curvature tells apart: its relative size is
#: about the logit spread times the label change, so a root is pinned to AMBIGUITY_L1 only when
#: the spread exceeds FLAT_FACTOR * tolerance / AMBIGUITY_L1.
FLAT_FACTOR = 10.0
#: How far above the root's own residual (its noise) the flatness probe looks.
AMBIGUITY_FACTOR = 10.0


@dataclass(frozen=True)
class Sample:
    """One recovered sample. Shapes: ``soft_label`` (C,), ``feature`` (m,)."""

    soft_label: np.ndarray
    feature: np.ndarray
    weight: float
    residual: float
    free_classes: tuple[int, ...]


@dataclass(frozen=True)
class Peeled:
    """What peeling found: the samples, the relative norm of what they leave unexplained, the
    roots refused as ambiguous and the passes run."""

    samples: tuple[Sample, ...]
    remainder: float
    ambiguous: int
    passes: int


def hypotheses(
    space: Subspace, family: str, num_classes: int
) -> tuple[list[tuple[int, ...]], bool]:
    """The free classes to try and whether eps is free: hard and smoothing one class each;
    mixup (and auto) every class alone and every pair among the 2r + 2 classes whose unit
    vectors lie most in span(U) (a mixed class's e_t carries a large share of some d_b)."""
    singles = [(target,) for target in range(num_classes)]
    if family == "hard":
        return singles, False
    if family == "smoothing":
        return singles, True
    share = np.linalg.norm(space.left, axis=1)
    candidates = np.argsort(-share, kind="stable")[: min(num_classes, 2 * space.rank + 2)]
    pairs = [(int(a), int(b)) for i, a in enumerate(candidates) for b in candidates[i + 1 :]]
    return singles + pairs, True


def _starts(space: Subspace, count: int, rng: np.random.Generator, bias: bool) -> np.ndarray:
    """(S, H, n) starting points: theta = 0 with a bias (x at a0), and random directions
    scaled to each of START_SPREADS."""
    size = space.directions.shape[1]
    starts = [np.zeros((count, size))] if bias else []
    for spread in START_SPREADS:
        theta = rng.standard_normal((count, size))
        logits = theta @ space.directions.T
        theta *= spread / np.maximum(logits.std(axis=1, keepdims=True), 1e-300)
        starts.append(theta)
    return np.stack(starts)


def _ambiguous(space, free, fit: RootFit, row: int, eps_free: bool, noise: float) -> bool:
    """Whether the label moves by more than AMBIGUITY_L1 along the flattest direction of the
    residual before the residual grows by AMBIGUITY_FACTOR x ``noise`` (the root is not pinned:
    a flat softmax at an unknown scale, or two samples of one label in a nearly linear one)."""
    problem = Hypotheses(space, [free[row]], eps_free)
    theta = fit.theta[row : row + 1]
    probs, _masked, residual, _coef, fitted, norm = problem.evaluate(theta)
    _relative, jac = problem.jacobian(probs, residual, fitted, norm)
    _u, singular, right_t = np.linalg.svd(np.nan_to_num(jac[0]), full_matrices=False)
    if singular.size == 0:
        return False
    smallest = float(singular[-1])
    step = AMBIGUITY_FACTOR * noise / smallest if smallest > 0 else np.inf
    if not np.isfinite(step):
        return True
    moved_probs, *_, coefficients, _fitted, _norm = problem.evaluate(theta + step * right_t[-1])
    label = fit.probs[row] - fit.gradient[row]
    shifted = moved_probs[0] - coefficients[0, : space.rank] @ space.left.T
    return float(np.abs(shifted - label).sum()) > AMBIGUITY_L1


def peel(
    weight: np.ndarray,
    gradient: np.ndarray,
    num_samples: int,
    *,
    family: str,
    bias: bool,
    precision: float,
    flat_check: bool,
    seed: int = 0,
) -> Peeled:
    """Recover up to ``num_samples`` samples from Ĝ (``gradient``) given [W, b] (``weight``).

    ``flat_check`` refuses roots whose softmax is too flat to pin the label (FLAT_FACTOR):
    needed at an unknown scale, without a bias, for the families with eps.

    Shapes: ``weight``, ``gradient`` (C, m [+ 1]).
    """
    rng = np.random.default_rng(seed)
    num_classes = weight.shape[0]
    scale = float(singular_values(gradient)[0])
    remaining, rank = gradient.copy(), num_samples
    samples: list[Sample] = []
    ambiguous, passes = 0, 0
    while rank > 0 and passes < 2 * num_samples:
        passes += 1
        space = subspace(weight, remaining, rank, bias=bias)
        # A weak atom's direction in U is known only to precision * sigma_1 / sigma_r.
        tolerance = max(EXACT, ROOT_FACTOR * precision * scale / float(space.singular[-1]))
        free, eps_free = hypotheses(space, family, num_classes)
        fit = fit_roots(space, free, _starts(space, len(free), rng, bias), eps_free=eps_free)
        order = [row for row in np.argsort(fit.residual) if fit.residual[row] <= tolerance]
        found = 0
        for row in order:
            label = fit.probs[row] - fit.gradient[row]
            if label.min() < -LABEL_TOL or label.max() > 1 + LABEL_TOL:
                continue
            coordinates = space.coordinates(fit.theta[row])
            inner = float(coordinates @ ((space.left.T @ fit.gradient[row]) / space.singular))
            if not inner > 0:
                continue
            atom = np.outer(fit.gradient[row], space.right @ coordinates) / inner
            reduced = remaining - atom
            left = singular_values(reduced)
            if left[rank - found - 1] > ROOT_FACTOR * precision * scale:
                continue  # the rank did not drop: a copy of a peeled sample or no atom at all
            spread = float((space.offset + space.directions @ fit.theta[row]).std())
            if flat_check and spread < FLAT_FACTOR * tolerance / AMBIGUITY_L1:
                ambiguous += 1
                continue
            noise = max(float(fit.residual[row]), precision)
            if _ambiguous(space, free, fit, row, eps_free, noise):
                ambiguous += 1
                continue
            feature = space.right @ coordinates
            samples.append(
                Sample(
                    soft_label=label,
                    feature=feature[:-1] if bias else feature,
                    weight=1.0 / inner,
                    residual=float(fit.residual[row]),
                    free_classes=free[row],
                )
            )
            remaining, found = reduced, found + 1
            if found == rank:
                break
        if not found:
            break
        rank -= found
    remainder = float(np.linalg.norm(remaining) / np.linalg.norm(gradient))
    return Peeled(tuple(samples), remainder, ambiguous, passes)


__all__ = ["Peeled", "Sample", "peel"]
