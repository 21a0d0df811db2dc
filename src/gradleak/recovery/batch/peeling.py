"""Peeling: find per-sample roots, subtract their atoms, repeat on the lower-rank rest.

Each accepted root gives an atom d x̂^T. Its weight is not guessed: for a rank-r gradient Ĝ whose
atoms are linearly independent, x̂_b^T Ĝ^+ d_b = 1 / w_b exactly (Ĝ^+ = X̂^+ (D_w^T)^+), and
Ĝ - w d x̂^T has rank r - 1 exactly when d x̂^T is one of its atoms (Wedderburn's rank
reduction). So a root counts only when its weight is positive and subtracting its atom drops
the rank to the gradient's precision: a spurious root, or a second copy of a sample already
peeled, does not. Roots within EXACT_STAGE x the precision are peeled before looser ones
(spurious local minima of the residual sit far above it), and a pass that peeled one ends, so
the next works on a smaller rest. The rest is a smaller problem with more equations per
unknown; the last sample is a single-input problem. Every pass starts each hypothesis from the
gradient's rows as well as at random (`candidates.row_starts`), and a root judged in the whole
subspace must be as exact as the roots already peeled (`joint.peer_bar`). A peel that stalls
short hands its atoms and the last pass's best roots to the joint fit (`joint.refine`), which
fits all B atoms at once and must explain the gradient to its measured noise; so does a
complete peel whose atoms' errors add up beyond the gradient's precision.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from gradleak.recovery.batch.candidates import (
    POLISH_SCREEN,
    hypotheses,
    in_whole,
    row_starts,
    starts,
    unpinned,
)
from gradleak.recovery.batch.joint import (
    JOINT_MISSING,
    JOINT_TRIES,
    Atom,
    JointFit,
    as_samples,
    explains,
    last_roots,
    peer_bar,
    refine,
    root_weight,
    with_weights,
)
from gradleak.recovery.batch.joint import (
    ambiguous as joint_ambiguous,
)
from gradleak.recovery.batch.roots import RootFit, fit_roots
from gradleak.recovery.batch.sample import EXACT, LABEL_TOL, Sample
from gradleak.recovery.batch.subspace import Subspace, rest_subspace, singular_values, subspace

logger = logging.getLogger(__name__)

#: Accept residuals and rank drops up to this multiple of the gradient's precision.
ROOT_FACTOR = 30.0
#: An atom whose root has relative residual rho is off by up to about ATOM_FACTOR * rho times
#: its size (the root's conditioning): the rank-drop check allows that much, still orders of
#: magnitude below the O(size) a spurious or repeated atom leaves.
ATOM_FACTOR = 100.0
#: A complete peel is jointly consistent when it leaves at most this multiple of the
#: gradient's precision unexplained (relative to the gradient).
CONSISTENT = 10 * ROOT_FACTOR
#: A root within this multiple of the gradient's precision is peeled before any looser one.
EXACT_STAGE = 300.0
#: At an unknown scale without a bias a root is pinned (the flat-softmax check) only when its
#: label could not move by more than this (l1) within the residual tolerance.
AMBIGUITY_L1 = 1e-3
#: At an unknown scale without a bias, x -> lam x moves a label of a family with eps along
#: (1 - lam) U + lam y, which only the softmax's curvature tells apart: its relative size is
#: about the logit spread times the label change, so a root is pinned to AMBIGUITY_L1 only when
#: the spread exceeds FLAT_FACTOR * tolerance / AMBIGUITY_L1.
FLAT_FACTOR = 10.0


@dataclass(frozen=True)
class Peeled:
    """What peeling found: the samples, the relative norm of what they leave unexplained, the
    roots refused as ambiguous, the passes run, and why a complete peel was refused (a weak
    batch whose atoms do not stand as a joint fit), if it was."""

    samples: tuple[Sample, ...]
    remainder: float
    ambiguous: int
    passes: int
    refused: str = ""


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
    fit: JointFit,
    whole: Subspace,
    core: np.ndarray,
    added: int,
    *,
    noise: float,
    flat_check: bool,
    precision: float,
) -> bool:
    """Whether a joint fit stands: it explains the gradient (`joint.explains`), its last
    ``added`` atoms (those the peel did not vouch for) are not too flat (`_too_flat`, when
    ``flat_check``), and no label moves along its flattest direction (`joint.ambiguous`)."""
    if not explains(fit, noise, peers=len(fit.atoms) - added):
        return False
    if flat_check:
        first = len(fit.atoms) - added
        for atom, size in zip(fit.atoms[first:], fit.sizes[first:], strict=True):
            root = fit_roots(
                whole, [atom.free], atom.theta[None, None], eps_free=atom.eps_free, iterations=0
            )
            if atom.eps_free and _too_flat(whole, root, size / precision):
                return False
    return not joint_ambiguous(whole, core, fit, noise)


@dataclass
class _Progress:
    """A peel under way: the core its samples leave (``rest``), its rank, the samples with their
    atoms (on the whole core), errors and sizes (relative to sigma_1), the roots refused as
    ambiguous, the passes run and the last pass's space and fits."""

    rest: np.ndarray
    rank: int
    samples: list[Sample] = field(default_factory=list)
    atoms: list[np.ndarray] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)
    ambiguous: int = 0
    passes: int = 0
    space: Subspace | None = None
    groups: list = field(default_factory=list)


class _Peeler:
    """The passes of a peel on one batch (module docstring): its subspaces, tolerances and
    settings; `run` peels a rest until it is explained or no root is left."""

    def __init__(
        self,
        weight: np.ndarray,
        gradient: np.ndarray,
        num_samples: int,
        *,
        family: str,
        bias: bool,
        precision: float,
        noise: float,
        flat_check: bool,
        seed: int,
    ) -> None:
        self.weight, self.family, self.bias = weight, family, bias
        self.precision, self.noise, self.flat_check = precision, noise, flat_check
        self.rng = np.random.default_rng(seed)
        # Every atom lies in span(U0) x span(V̂0) of the whole batch: peeling runs on the B x B
        # core U0^T Ĝ V̂0, so the part of Ĝ outside the subspaces (its precision) never
        # accumulates, and each root found in a smaller rest is polished in the whole batch's
        # subspace, where it is an exact root too, before its atom is subtracted.
        self.whole = subspace(weight, gradient, num_samples, bias=bias)
        self.scale = float(self.whole.singular[0])
        self.core = self.whole.left.T @ gradient @ self.whole.right
        self.first_tolerance = self.tolerance(self.whole)
        self.max_passes = 2 * num_samples
        self.joint_fits = 0
        #: The first pass's root of each hypothesis, (free classes, eps free) -> theta.
        self.first_roots: dict[tuple[tuple[int, ...], bool], np.ndarray] = {}

    def tolerance(self, space: Subspace) -> float:
        """A weak atom's direction in U is known only to precision * sigma_1 / sigma_r."""
        return max(EXACT, ROOT_FACTOR * self.precision * self.scale / float(space.singular[-1]))

    def run(self, progress: _Progress) -> _Progress:
        """Passes until the rest is explained, no root is left, or the passes run out."""
        while progress.rank > 0 and progress.passes < self.max_passes:
            progress.passes += 1
            found = self._pass(progress)
            if not found:
                break
            progress.rank -= found
        return progress

    def _pass(self, progress: _Progress) -> int:
        """One pass: fit every hypothesis in the rest's subspace, peel what drops the rank."""
        whole, precision, scale = self.whole, self.precision, self.scale
        space = (
            whole
            if progress.rest is self.core
            else rest_subspace(self.weight, whole, progress.rest, progress.rank)
        )
        tolerance = self.tolerance(space)
        # A rest's roots carry the rounding of the atoms already subtracted (the last sample
        # of a biased batch has no freedom left to absorb it): screen them loosely, polish
        # them in the whole subspace, and judge the polished root there.
        first = space is whole
        screen = tolerance if first else max(tolerance, POLISH_SCREEN)
        whole_tolerance = max(tolerance, self.first_tolerance)
        groups = [
            (
                free,
                eps_free,
                fit_roots(
                    space,
                    free,
                    np.concatenate(
                        [
                            row_starts(space, free, eps_free, self.bias),
                            starts(space, len(free), self.rng, self.bias),
                        ]
                    ),
                    eps_free=eps_free,
                ),
            )
            for free, eps_free in hypotheses(space, self.family, self.weight.shape[0])
        ]
        progress.space, progress.groups = space, groups
        if first and not self.first_roots:
            self.first_roots = {
                (free[row], eps_free): fit.theta[row]
                for free, eps_free, fit in groups
                for row in np.flatnonzero(np.isfinite(fit.residual))
            }
        candidates = sorted(
            (float(fit.residual[row]), index, int(row))
            for index, (_free, _eps, fit) in enumerate(groups)
            for row in np.flatnonzero(fit.residual <= screen)
        )
        if logger.isEnabledFor(logging.DEBUG):
            best = sorted(
                (float(fit.residual[row]), free[row])
                for free, _eps, fit in groups
                for row in range(len(free))
            )
            logger.debug(
                "pass %d, rank %d (sigma %s), tolerance %.1e: %d candidates; best fits %s",
                progress.passes,
                progress.rank,
                np.array2string(space.singular / scale, precision=2),
                tolerance,
                len(candidates),
                [(f"{value:.1e}", classes) for value, classes in best[:6]],
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
                    if first:
                        options_of[index, row] = [(fit.rows([row]), tolerance)]
                    else:
                        polished, mapped = in_whole(whole, space, fit, row, free[row], eps_free)
                        options_of[index, row] = [(polished, whole_tolerance), (mapped, tolerance)]
                flat, best = False, None
                errors = float(np.sum(np.square(progress.errors)))
                for root, limit in options_of[index, row]:
                    atom = _atom(whole, progress.rest, root, limit)
                    if atom is None:
                        continue
                    reduced, coordinates, inner, size = atom
                    # In the whole subspace a true root is as exact as the roots already
                    # peeled there (`joint.peer_bar`); a spurious minimum is not.
                    bar = peer_bar(
                        self.noise,
                        [sample.residual for sample in progress.samples],
                        size=size / scale,
                        sizes=progress.sizes,
                    )
                    if float(root.residual[0]) > bar:
                        continue
                    if (
                        self.flat_check
                        and eps_free
                        and _too_flat(whole, root, size / (precision * scale))
                    ):
                        flat = True
                        continue
                    left = float(singular_values(reduced)[progress.rank - found - 1])
                    # Each subtracted atom carries its error: the gradient's precision, or its
                    # root's residual times its size when larger; the errors add in quadrature.
                    error = max(
                        ROOT_FACTOR * precision * scale,
                        ATOM_FACTOR * float(root.residual[0]) * size,
                    )
                    # The rank dropped: an atom of the batch. (An atom within the errors
                    # explains nothing: in a rest with a weak direction it "drops" the rank too.)
                    allowed = np.sqrt(errors + error**2)
                    if left <= allowed < size:
                        best = (root, reduced, coordinates, inner, error, size)
                        break
                if best is None:
                    # No option is an atom: a copy of a peeled sample, no atom at all, too flat.
                    progress.ambiguous += int(flat and stage_limit == np.inf)
                    continue
                root, reduced, coordinates, inner, error, size = best
                if unpinned(
                    space, free, fit, row, eps_free, max(float(fit.residual[row]), self.noise)
                ):
                    progress.ambiguous += 1
                    options_of[index, row] = None
                    continue
                feature = whole.right @ coordinates
                progress.samples.append(
                    Sample(
                        soft_label=root.probs[0] - root.gradient[0],
                        feature=feature[:-1] if self.bias else feature,
                        weight=1.0 / inner,
                        residual=float(root.residual[0]),
                        free_classes=free[row],
                        theta=root.theta[0],
                        eps_free=eps_free,
                    )
                )
                progress.atoms.append(progress.rest - reduced)
                progress.errors.append(error)
                progress.sizes.append(size / scale)
                options_of[index, row] = None
                progress.rest, found = reduced, found + 1
                if found == progress.rank:
                    return found
            if found:
                return found
        return found

    def joint(self, samples: list[Sample], added: list[Atom]) -> JointFit | None:
        """The joint fit of ``samples`` and the ``added`` atoms, when it stands (`_joined`):
        with the root residuals weighed as the core (1), then, where the peeled roots sit
        above the noise (a nearly linear softmax), weighed by `joint.root_weight`. None too
        once JOINT_BUDGET fits were tried."""
        atoms = [Atom(s.free_classes, s.eps_free, s.theta, s.weight) for s in samples]
        peer_weight = root_weight(self.noise, [sample.residual for sample in samples])
        for weight in sorted({1.0, peer_weight}, reverse=True):
            if self.joint_fits >= JOINT_BUDGET:
                return None
            self.joint_fits += 1
            fit = refine(self.whole, self.core, atoms + added, root_weight=weight)
            logger.debug(
                "joint fit with %s (root weight %.1e): misfit %.1e (noise %.1e), rho %.1e",
                [atom.free for atom in added],
                weight,
                fit.misfit,
                self.noise,
                fit.residuals.max(),
            )
            if _joined(
                fit,
                self.whole,
                self.core,
                len(added),
                noise=self.noise,
                flat_check=self.flat_check,
                precision=self.precision,
            ):
                return fit
        return None


#: Most joint fits a stalled peel tries (each is a Levenberg-Marquardt on all B atoms).
JOINT_BUDGET = 32
#: A stalled peel re-peels, in turn, the rest with each of this many of its atoms put back: the
#: atoms that overlap the rest most first (two samples of one label peeled as one blended atom
#: leave a rest along that atom).
BACKTRACK_TRIES = 4


def _tries(peeler: _Peeler, fixed: list[Sample], progress: _Progress, count: int = 0):
    """`joint.last_roots` of a stalled ``progress`` (with the first pass's roots)."""
    return last_roots(
        peeler.whole,
        progress.space,
        progress.groups,
        progress.rest,
        fixed,
        count=count,
        first_roots=peeler.first_roots,
    )


def _with_last_roots(
    peeler: _Peeler,
    fixed: list[Sample],
    progress: _Progress,
    *,
    tries: list[Atom] | None = None,
    start: int = 0,
    stop: int | None = None,
) -> JointFit | None:
    """The joint fit of the ``fixed`` samples and, for the ``progress.rank`` samples still
    missing, each combination of its last pass's best roots (``tries``, by default
    `joint.last_roots`; the combinations ``start`` to ``stop`` in their order)."""
    if progress.rank == 0:
        return peeler.joint(fixed, [])
    if progress.space is None:
        return None
    tries = _tries(peeler, fixed, progress) if tries is None else tries
    combinations = itertools.combinations(tries, progress.rank)
    for chosen in itertools.islice(combinations, start, stop):
        fit = peeler.joint(fixed, list(chosen))
        if fit is not None:
            return fit
    return None


#: Relative offsets (of the atom's coordinates) at which a blended atom is split in two.
SPLITS = (0.3, 0.1, 0.03)


def _split(
    peeler: _Peeler,
    kept: list[Sample],
    blended: Atom,
    rest: np.ndarray,
    *,
    others: tuple[Atom, ...] = (),
    weak: int = 1,
):
    """Two samples of one label taken for one (a blended atom peeled for both, or one root of a
    rest that holds both): the joint fit of the ``kept`` samples, the ``others`` atoms and two
    copies of ``blended``'s hypothesis, moved apart along the feature direction ``weak`` of
    ``rest`` (its weakest: the two samples' difference), at each of SPLITS, with half its
    weight each. (From the blend and any other root the joint fit stays in the blended local
    minimum.)"""
    whole = peeler.whole
    right = np.linalg.svd(rest)[2][weak]  # the weak feature direction, in core coordinates
    direction = right @ whole.null  # in theta
    size = float(np.linalg.norm(whole.coordinates(blended.theta)))
    norm = float(np.linalg.norm(direction))
    if not norm > 0:
        return None
    for offset in SPLITS:
        step = offset * size * direction / norm
        halves = [
            Atom(blended.free, blended.eps_free, blended.theta + sign * step, blended.weight / 2)
            for sign in (1.0, -1.0)
        ]
        fit = peeler.joint(kept, [*others, *halves])
        if fit is not None:
            return fit
    return None


def _complete(peeler: _Peeler, progress: _Progress) -> JointFit | None:
    """A stalled peel completed by the joint fit. With at most JOINT_MISSING samples missing:
    the last pass's best roots for them (`_with_last_roots`), and with two missing each of
    those roots split in two (`_split`: two samples of one label in a rank-2 rest). With more
    missing: the last pass's best root for each, their weights fitted together, then with one
    of them split in two along the rest's weakest direction. Then, with
    any number missing, one peeled atom at a time is put back (the most overlapping with the
    rest first: a blended atom of two samples of one label leaves a rest along it): split in
    two when it was the only sample missing, or that rest peeled anew and completed the same
    way."""
    samples, rest = progress.samples, progress.rest
    if progress.rank <= JOINT_MISSING and progress.space is not None:
        # The best roots first; with two missing the best root split in two (a rank-2 rest
        # whose best root weighs about twice a sample: two of one label) before the other
        # combinations, then the other roots split.
        tries = _tries(peeler, samples, progress)
        splits = tries[:JOINT_TRIES] if progress.rank == 2 else []
        attempts = [
            partial(_with_last_roots, peeler, samples, progress, tries=tries, stop=1),
            *(partial(_split, peeler, samples, root, rest) for root in splits[:1]),
            partial(_with_last_roots, peeler, samples, progress, tries=tries, start=1),
            *(partial(_split, peeler, samples, root, rest) for root in splits[1:]),
        ]
        for attempt in attempts:
            fit = attempt()
            if fit is not None:
                return fit
    elif progress.space is not None:
        # More missing: the last pass's best roots, one for each missing sample.
        tries = _tries(peeler, samples, progress, count=progress.rank)
        chosen = with_weights(peeler.whole, rest, tries[: progress.rank])
        fit = peeler.joint(samples, chosen)
        if fit is not None:
            return fit
        # Or one of them holds two samples of its label (the weakest direction of the rest).
        fewer = with_weights(peeler.whole, rest, tries[: progress.rank - 1])
        for index, twin in enumerate(fewer):
            others = tuple(fewer[:index] + fewer[index + 1 :])
            fit = _split(peeler, samples, twin, rest, others=others, weak=progress.rank - 1)
            if fit is not None:
                return fit
    overlap = [
        abs(float(np.sum(atom * rest)))
        / max(float(np.linalg.norm(atom) * np.linalg.norm(rest)), 1e-300)
        for atom in progress.atoms
    ]
    for put_back in np.argsort(overlap)[::-1][:BACKTRACK_TRIES]:
        kept = [samples[index] for index in range(len(samples)) if index != put_back]
        if progress.rank == 1:
            blended = samples[put_back]
            atom = Atom(blended.free_classes, blended.eps_free, blended.theta, blended.weight)
            fit = _split(peeler, kept, atom, rest + progress.atoms[put_back])
            if fit is not None:
                return fit
        again = peeler.run(
            _Progress(
                rest=rest + progress.atoms[put_back],
                rank=progress.rank + 1,
                errors=[error for index, error in enumerate(progress.errors) if index != put_back],
                sizes=[size for index, size in enumerate(progress.sizes) if index != put_back],
            )
        )
        if again.rank <= JOINT_MISSING:
            fit = _with_last_roots(peeler, kept + again.samples, again)
            if fit is not None:
                return fit
    return None


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
    verify: bool = False,
    seed: int = 0,
) -> Peeled:
    """Recover up to ``num_samples`` samples from Ĝ (``gradient``) given [W, b] (``weight``).

    ``precision`` bounds the gradient's digits (its dtype's, or more: the peel's tolerances);
    ``noise`` is what it measurably carries (its relative distance from rank B, often 10x
    below the dtype's epsilon): the ambiguity probe's band and the joint fit's bar.

    ``flat_check`` refuses roots whose softmax is too flat to pin the label (FLAT_FACTOR):
    needed at an unknown scale, without a bias, for the families with eps. ``verify`` (a weak
    batch) makes a complete peel stand as a joint fit (`joint.explains`) too.

    Shapes: ``weight``, ``gradient`` (C, m [+ 1]).
    """
    peeler = _Peeler(
        weight,
        gradient,
        num_samples,
        family=family,
        bias=bias,
        precision=precision,
        noise=noise,
        flat_check=flat_check,
        seed=seed,
    )
    progress = peeler.run(_Progress(rest=peeler.core, rank=num_samples))
    fit, remainder = None, None
    if progress.rank > 0 and progress.space is not None:
        fit = _complete(peeler, progress)
    elif progress.rank == 0:
        remainder = _remainder(gradient, peeler.whole, progress.rest)
        # A weak batch's peel must stand as a joint fit; a complete peel whose atoms' errors
        # add up beyond the gradient's precision may, refined together, explain it (otherwise
        # the caller refuses it as not jointly consistent).
        if verify or remainder > CONSISTENT * precision:
            fit = peeler.joint(progress.samples, [])
        if fit is None and verify:
            return Peeled(
                tuple(progress.samples),
                remainder,
                progress.ambiguous,
                progress.passes,
                refused=(
                    f"a weak batch (sigma_{num_samples} / sigma_1 within {ROOT_FACTOR:g}x the "
                    "precision): its peeled atoms do not explain the gradient to its measured "
                    f"noise {noise:.1e} as a joint fit"
                ),
            )
    if fit is not None:
        return Peeled(
            tuple(as_samples(fit, peeler.whole, bias)),
            _remainder(gradient, peeler.whole, fit.rest),
            progress.ambiguous,
            progress.passes,
        )
    if remainder is None:  # (a complete peel measured it above)
        remainder = _remainder(gradient, peeler.whole, progress.rest)
    return Peeled(tuple(progress.samples), remainder, progress.ambiguous, progress.passes)


def _remainder(gradient: np.ndarray, whole: Subspace, rest: np.ndarray) -> float:
    """||Ĝ - what the samples explain|| / ||Ĝ||, with ``rest`` what they leave of the core."""
    remaining = (
        gradient - whole.left @ (whole.left.T @ gradient @ whole.right - rest) @ whole.right.T
    )
    return float(np.linalg.norm(remaining) / np.linalg.norm(gradient))


__all__ = ["Peeled", "Sample", "peel"]
