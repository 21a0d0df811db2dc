"""Peeling: find per-sample roots, subtract their atoms, repeat on the lower-rank rest.

Each accepted root gives an atom d x̂^T. Its weight is not guessed: for a rank-r gradient Ĝ whose
atoms are linearly independent, x̂_b^T Ĝ^+ d_b = 1 / w_b exactly (Ĝ^+ = X̂^+ (D_w^T)^+), and
Ĝ - w d x̂^T has rank r - 1 exactly when d x̂^T is one of its atoms (Wedderburn's rank
reduction). So a root counts only when its weight is positive and subtracting its atom drops
the rank to the gradient's precision: a spurious root, or a second copy of a sample already
peeled, does not. Roots within EXACT_STAGE x the precision are peeled before looser ones
(spurious local minima of the residual sit far above it), and a pass that peeled one ends, so
the next works on a smaller rest. The rest is a smaller problem with more equations per
unknown; the last sample is a single-input problem. A peel that stalls one or two samples short
hands its atoms and the last pass's best roots to the joint fit (`joint.refine`), which fits all
B atoms at once and must explain the gradient to its measured noise.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from gradleak.recovery.batch.joint import (
    JOINT_MISSING,
    Atom,
    JointFit,
    as_samples,
    explains,
    last_roots,
    refine,
)
from gradleak.recovery.batch.roots import Hypotheses, RootFit, fit_roots, relative_residual
from gradleak.recovery.batch.sample import EXACT, LABEL_TOL, Sample
from gradleak.recovery.batch.subspace import Subspace, singular_values, subspace

#: Accept residuals and rank drops up to this multiple of the gradient's precision.
ROOT_FACTOR = 30.0
#: An atom whose root has relative residual rho is off by up to about ATOM_FACTOR * rho times
#: its size (the root's conditioning): the rank-drop check allows that much, still orders of
#: magnitude below the O(size) a spurious or repeated atom leaves.
ATOM_FACTOR = 100.0
#: A root within this multiple of the gradient's precision is peeled before any looser one.
EXACT_STAGE = 300.0
#: Logit spreads (standard deviation over classes) of the random starts: flat to saturated.
START_SPREADS = (0.5, 2.0, 6.0)
#: At an unknown scale without a bias a root is pinned (the flat-softmax check) only when its
#: label could not move by more than this (l1) within the residual tolerance.
AMBIGUITY_L1 = 1e-3
#: A root whose label moves by more than this (l1) where the residual is still within
#: AMBIGUITY_FACTOR x its noise is not pinned by the gradient (a saturated softmax, or two
#: samples of one label in a nearly linear one): refused as ambiguous. At the noise itself the
#: label then moves by about PROBE_L1 / AMBIGUITY_FACTOR = 3e-4, 30x below the 1e-2 at which
#: the benchmarks call a label recovered.
PROBE_L1 = 3e-3
#: At an unknown scale without a bias, x -> lam x moves a label of a family with eps along
#: (1 - lam) U + lam y, which only the softmax's curvature tells apart: its relative size is
#: about the logit spread times the label change, so a root is pinned to AMBIGUITY_L1 only when
#: the spread exceeds FLAT_FACTOR * tolerance / AMBIGUITY_L1.
FLAT_FACTOR = 10.0
#: How far above the root's own residual (its noise) the flatness probe looks.
AMBIGUITY_FACTOR = 10.0
#: Slack on that band for the residual evaluated at the probe point, and the step halvings.
AMBIGUITY_BAND = 1.5
AMBIGUITY_HALVINGS = 40


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
) -> list[tuple[list[tuple[int, ...]], bool]]:
    """Groups of hypotheses (the free classes of each, and whether eps is free): hard one class
    each (eps = 0); smoothing one class each with the batch's eps; batch mixup every class alone
    (a sample mixed with its own class) and every pair among the 2r + 2 classes whose unit
    vectors lie most in span(U) (a mixed class's e_t carries a large share of some d_b), with
    eps = 0 as batch mixup mixes one-hot labels; auto the smoothing singles and the mixup pairs."""
    singles = [(target,) for target in range(num_classes)]
    if family == "hard":
        return [(singles, False)]
    if family == "smoothing":
        return [(singles, True)]
    share = np.linalg.norm(space.left, axis=1)
    candidates = np.argsort(-share, kind="stable")[: min(num_classes, 2 * space.rank + 2)]
    pairs = [(int(a), int(b)) for i, a in enumerate(candidates) for b in candidates[i + 1 :]]
    return [(singles, family == "auto"), (pairs, False)]


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
    """Whether the label moves by more than PROBE_L1 along the flattest direction of the
    residual at a point whose residual is still within AMBIGUITY_FACTOR x ``noise`` (the root is
    not pinned: a flat softmax at an unknown scale, or two samples of one label in a nearly
    linear one). The step comes from the Jacobian's smallest singular value and is halved until
    the residual actually evaluated there is inside that band: curvature the linear model does
    not see can pin a root."""
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
    label = fit.probs[row] - fit.gradient[row]
    band = AMBIGUITY_BAND * AMBIGUITY_FACTOR * noise
    for _ in range(AMBIGUITY_HALVINGS):
        moved_probs, _m, moved_residual, coefficients, _f, moved_norm = problem.evaluate(
            theta + step * right_t[-1]
        )
        shifted = moved_probs[0] - coefficients[0, : space.rank] @ space.left.T
        if float(np.abs(shifted - label).sum()) <= PROBE_L1:
            return False  # even the largest step inside the band keeps the label
        if float(relative_residual(moved_residual, moved_norm)[0]) <= band:
            return True
        step /= 2.0
    return False


#: Levenberg-Marquardt iterations that polish a root in the whole batch's subspace, and the
#: residual below which a rest's root is worth polishing.
POLISH_ITERATIONS = 40
POLISH_SCREEN = 1e-2


def _in_whole(
    whole: Subspace, space: Subspace, fit: RootFit, row: int, free: tuple[int, ...], eps_free: bool
) -> tuple[RootFit, RootFit]:
    """The root ``row`` of a rest's ``space`` in the whole batch's subspace: polished there as a
    root of the whole batch, and only mapped there (evaluated, not moved)."""
    feature = space.feature(fit.theta[row])
    theta = ((whole.right.T @ feature - whole.base) @ whole.null)[None, None, :]
    polished = fit_roots(whole, [free], theta, eps_free=eps_free, iterations=POLISH_ITERATIONS)
    mapped = fit_roots(whole, [free], theta, eps_free=eps_free, iterations=0)
    return polished, mapped


def _atom(whole: Subspace, core: np.ndarray, root: RootFit, limit: float):
    """The root's atom on the whole batch's core, or None when its residual exceeds ``limit``,
    its label leaves [0, 1] or its weight is not positive: (core minus the atom, coordinates
    a, 1 / weight, the atom's size)."""
    label = root.probs[0] - root.gradient[0]
    if root.residual[0] > limit or label.min() < -LABEL_TOL or label.max() > 1 + LABEL_TOL:
        return None
    coordinates = whole.coordinates(root.theta[0])
    along = whole.left.T @ root.gradient[0]
    inner = float(coordinates @ (along / whole.singular))
    if not inner > 0:
        return None
    size = float(np.linalg.norm(root.gradient[0]) * np.linalg.norm(coordinates) / inner)
    return core - np.outer(along, coordinates) / inner, coordinates, inner, size


def _too_flat(whole: Subspace, root: RootFit, resolution: float) -> bool:
    """Whether the root's softmax is too flat to pin a label with eps at an unknown scale without
    a bias (x -> lam x stays hidden): its logit spread below FLAT_FACTOR x its atom's noise /
    AMBIGUITY_L1. The atom's own size (``resolution`` = size / (precision x sigma_1)) sets how
    well its direction is known, not the pass's tolerance (the weakest atom's)."""
    noise = max(EXACT, ROOT_FACTOR / resolution)
    spread = float((whole.offset + whole.directions @ root.theta[0]).std())
    return spread < FLAT_FACTOR * noise / AMBIGUITY_L1


def _joined(
    fit: JointFit, whole: Subspace, added: int, *, noise: float, flat_check: bool, precision: float
) -> bool:
    """Whether a joint fit stands: it explains the gradient (`joint.explains`) and each of its
    last ``added`` atoms (those the peel did not vouch for) passes the peel's own checks: not
    too flat (`_too_flat`, when ``flat_check``) and not ambiguous (`_ambiguous`)."""
    if not explains(fit, noise):
        return False
    for atom, rho, size in zip(
        fit.atoms[-added:], fit.residuals[-added:], fit.sizes[-added:], strict=True
    ):
        root = fit_roots(
            whole, [atom.free], atom.theta[None, None], eps_free=atom.eps_free, iterations=0
        )
        if flat_check and atom.eps_free and _too_flat(whole, root, size / precision):
            return False
        if _ambiguous(whole, [atom.free], root, 0, atom.eps_free, max(float(rho), noise)):
            return False
    return True


def peel(
    weight: np.ndarray,
    gradient: np.ndarray,
    num_samples: int,
    *,
    family: str,
    bias: bool,
    precision: float,
    noise: float,
    flat_check: bool,
    seed: int = 0,
) -> Peeled:
    """Recover up to ``num_samples`` samples from Ĝ (``gradient``) given [W, b] (``weight``).

    ``precision`` bounds the gradient's digits (its dtype's, or more: the peel's tolerances);
    ``noise`` is what it measurably carries (its relative distance from rank B, often 10x
    below the dtype's epsilon): the ambiguity probe's band and the joint fit's bar.

    ``flat_check`` refuses roots whose softmax is too flat to pin the label (FLAT_FACTOR):
    needed at an unknown scale, without a bias, for the families with eps.

    Shapes: ``weight``, ``gradient`` (C, m [+ 1]).
    """
    rng = np.random.default_rng(seed)
    num_classes = weight.shape[0]
    scale = float(singular_values(gradient)[0])
    # Every atom lies in span(U0) x span(V̂0) of the whole batch: peeling runs on the B x B core
    # U0^T Ĝ V̂0, so the part of Ĝ outside the subspaces (its precision) never accumulates, and
    # each root found in a smaller rest is polished in the whole batch's subspace, where it is
    # an exact root too, before its atom is subtracted.
    whole = subspace(weight, gradient, num_samples, bias=bias)
    core = whole.left.T @ gradient @ whole.right
    whole_core = core
    first_tolerance = max(EXACT, ROOT_FACTOR * precision * scale / float(whole.singular[-1]))
    rank = num_samples
    samples: list[Sample] = []
    ambiguous, passes, errors = 0, 0, 0.0
    while rank > 0 and passes < 2 * num_samples:
        passes += 1
        space = (
            whole
            if passes == 1
            else subspace(weight, whole.left @ core @ whole.right.T, rank, bias=bias)
        )
        # A weak atom's direction in U is known only to precision * sigma_1 / sigma_r.
        tolerance = max(EXACT, ROOT_FACTOR * precision * scale / float(space.singular[-1]))
        # A rest's roots carry the rounding of the atoms already subtracted (the last sample
        # of a biased batch has no freedom left to absorb it): screen them loosely, polish
        # them in the whole subspace, and judge the polished root there.
        screen = tolerance if passes == 1 else max(tolerance, POLISH_SCREEN)
        whole_tolerance = max(tolerance, first_tolerance)
        groups = [
            (
                free,
                eps_free,
                fit_roots(space, free, _starts(space, len(free), rng, bias), eps_free=eps_free),
            )
            for free, eps_free in hypotheses(space, family, num_classes)
        ]
        candidates = sorted(
            (float(fit.residual[row]), index, int(row))
            for index, (_free, _eps, fit) in enumerate(groups)
            for row in np.flatnonzero(fit.residual <= screen)
        )
        found = 0
        options_of: dict[tuple[int, int], list[tuple[RootFit, float]] | None] = {}
        # Exact roots first: a rest with fewer samples is better conditioned, so a pass that
        # peeled any root near the gradient's own precision ends there, and the loose
        # tolerance (a weak atom's) applies only when no such root is left. (Spurious local
        # minima of rho sit at 1e-4 to 1e-2; true roots at the precision, in a rest at the
        # rounding of the atoms subtracted.)
        for stage_limit in (max(EXACT, EXACT_STAGE * precision), np.inf):
            for value, index, row in candidates:
                if value > stage_limit or options_of.get((index, row), ()) is None:
                    continue  # not exact, or already accepted or refused
                free, eps_free, fit = groups[index]
                label = fit.probs[row] - fit.gradient[row]
                if label.min() < -LABEL_TOL or label.max() > 1 + LABEL_TOL:
                    continue
                # The root in the whole subspace: polished there, or only mapped there (when
                # polishing slid towards another sample of the same label); the option whose
                # atom drops the rank furthest wins.
                if (index, row) not in options_of:
                    if passes == 1:
                        options_of[index, row] = [(fit.rows([row]), tolerance)]
                    else:
                        polished, mapped = _in_whole(whole, space, fit, row, free[row], eps_free)
                        options_of[index, row] = [(polished, whole_tolerance), (mapped, tolerance)]
                flat, best = False, None
                for root, limit in options_of[index, row]:
                    atom = _atom(whole, core, root, limit)
                    if atom is None:
                        continue
                    reduced, coordinates, inner, size = atom
                    if (
                        flat_check
                        and eps_free
                        and _too_flat(whole, root, size / (precision * scale))
                    ):
                        flat = True
                        continue
                    left = float(singular_values(reduced)[rank - found - 1])
                    # Each subtracted atom carries its error: the gradient's precision, or its
                    # root's residual times its size when larger; the errors add in quadrature.
                    error = max(
                        ROOT_FACTOR * precision * scale,
                        ATOM_FACTOR * float(root.residual[0]) * size,
                    )
                    # The rank dropped: an atom of the batch.
                    if left <= np.sqrt(errors + error**2):
                        best = (left, root, reduced, coordinates, inner, error)
                        break
                if best is None:
                    # No option is an atom: a copy of a peeled sample, no atom at all, too flat.
                    ambiguous += int(flat and stage_limit == np.inf)
                    continue
                _left, root, reduced, coordinates, inner, error = best
                if _ambiguous(
                    space, free, fit, row, eps_free, max(float(fit.residual[row]), noise)
                ):
                    ambiguous += 1
                    options_of[index, row] = None
                    continue
                feature = whole.right @ coordinates
                samples.append(
                    Sample(
                        soft_label=root.probs[0] - root.gradient[0],
                        feature=feature[:-1] if bias else feature,
                        weight=1.0 / inner,
                        residual=float(root.residual[0]),
                        free_classes=free[row],
                        theta=root.theta[0],
                        eps_free=eps_free,
                    )
                )
                options_of[index, row] = None
                core, found, errors = reduced, found + 1, errors + error**2
                if found == rank:
                    break
            if found:
                break
        if not found:
            break
        rank -= found
    missing = num_samples - len(samples)
    if 0 < missing <= JOINT_MISSING:
        atoms = [Atom(s.free_classes, s.eps_free, s.theta, s.weight) for s in samples]
        for chosen in itertools.combinations(
            last_roots(whole, space, groups, core, samples), missing
        ):
            fit = refine(whole, whole_core, atoms + list(chosen))
            if _joined(
                fit, whole, missing, noise=noise, flat_check=flat_check, precision=precision
            ):
                joined = tuple(as_samples(fit, whole, bias))
                return Peeled(joined, _remainder(gradient, whole, fit.rest), ambiguous, passes)
    return Peeled(tuple(samples), _remainder(gradient, whole, core), ambiguous, passes)


def _remainder(gradient: np.ndarray, whole: Subspace, rest: np.ndarray) -> float:
    """||Ĝ - what the samples explain|| / ||Ĝ||, with ``rest`` what they leave of the core."""
    remaining = (
        gradient - whole.left @ (whole.left.T @ gradient @ whole.right - rest) @ whole.right.T
    )
    return float(np.linalg.norm(remaining) / np.linalg.norm(gradient))


__all__ = ["Peeled", "Sample", "peel"]
