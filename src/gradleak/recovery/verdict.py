"""Judging a found scalar from observable quantities only: fit, validity, sum, uniqueness.

Paper: Wang, Liang & He, ICLR 2024, Sec. 4.2 accept a scalar when the family loss is near 0;
here a scalar is accepted only when (1) its family residual is below the acceptance threshold
of this gradient's precision (`noise`), (2) its label is a probability vector, (3) the label
sums to 1 as a softmax client's must (Theorem 1), and (4) no other label fits as exactly:
neither another root the search saw (a rival) nor a neighbour on a flat stretch, where the
residual stays at rounding level while the label moves. A flat stretch is what a saturated
softmax leaves: when p is one-hot to the gradient's precision, p(mu) no longer moves with mu
and every y(mu) = e_k - t c on a whole interval of t fits the family, so the gradient does not
say which of those labels the client used.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradleak.families import LabelFamily
from gradleak.recovery.identifiability import SATURATION_FACTOR, scale_equations
from gradleak.recovery.last_layer import LastLayerProblem
from gradleak.recovery.noise import (
    NOISE_FACTOR,
    entry_slack,
    label_sum_reason,
    noise_floor,
    valid_at,
)
from gradleak.recovery.refine import polish_many
from gradleak.recovery.residual import Evaluator, constrained_mask, implied_labels, project
from gradleak.recovery.search_result import ScalarSolution

#: A second solution makes the answer ambiguous when its label differs by more than this in l1
#: and its residual (relative to its threshold) is within AMBIGUITY_RATIO of the best one's.
AMBIGUITY_L1 = 1e-2
AMBIGUITY_RATIO = 10.0
#: Residuals below this fraction of the rounding floor, or below EXACT_RIVAL, count as equally
#: exact when comparing rivals (true scalars sit at 0.003-0.25 of the floor in float32).
RIVAL_FLOOR = 1e-2
EXACT_RIVAL = 1e-12


def label_at(
    problem: LastLayerProblem, family: LabelFamily, inv_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """y(t) and softmax(u / t) at one scalar (in the problem's scale mode, where the label at
    an unknown gradient scale depends on the family). Shapes: (C,), (C,)."""
    state = Evaluator(problem, family)(np.array([inv_scale]))
    return state.labels[0], state.probs[0]


def label_fit(labels: np.ndarray, probs: np.ndarray, family: LabelFamily) -> np.ndarray:
    """The family's relative residual ||deviation|| / ||p - y|| of given labels y beside their
    p (inf where p = y). Shapes: (K, C), (K, C) -> (K,)."""
    deviation = project(labels, constrained_mask(labels, family), family)
    with np.errstate(divide="ignore", invalid="ignore"):
        residual = np.linalg.norm(deviation, axis=1) / np.linalg.norm(probs - labels, axis=1)
    return np.where(np.isfinite(residual), residual, np.inf)


def family_residual(
    problem: LastLayerProblem, family: LabelFamily, label: np.ndarray, inv_scale: float
) -> float:
    """`label_fit` of one given label y at t. Shapes: (C,) -> float."""
    _, probs = implied_labels(np.array([inv_scale]), problem.logit_direction, problem.coupling)
    return float(label_fit(label[None], probs, family)[0])


def fit_reason(
    problem: LastLayerProblem,
    inv_scale: float,
    label: np.ndarray,
    probs: np.ndarray,
    residual: float,
    threshold: float,
) -> str:
    """Empty when one solution fits, else why not: residual, sum, validity (checks 1-3)."""
    if not residual <= threshold:
        return f"residual {residual:.2e} above the acceptance threshold {threshold:.1e}"
    wrong_sum = label_sum_reason(problem.precision, label, probs)
    if wrong_sum:
        return wrong_sum
    if not valid_at(problem, np.array([inv_scale]), label[None], probs[None])[0]:
        return (
            f"the fitting label leaves [0, 1] (min {label.min():.3g}, max {label.max():.3g}) by "
            "more than this gradient's precision allows: not a probability vector"
        )
    return ""


class Saturation(NamedTuple):
    """What still pins the scalar at t: ``equations`` (all ``linear`` or not), and the refusal
    (``reason``) when nothing does. ``census``: one nonlinear equation, so the verdict needs
    every root (`root_census`) before it can accept."""

    equations: int
    linear: bool
    reason: str

    @property
    def census(self) -> bool:
        return self.equations == 1 and not self.linear


#: Entries of a label this close to each other are a tie: either could be the free one.
TIE = 1e-3


def _masks(label: np.ndarray, family: LabelFamily) -> list[np.ndarray]:
    """The constrained entries at this label, and the alternative when the smallest free entry
    and the largest constrained one tie (a label near uniform has no clear target)."""
    mask = constrained_mask(label[None], family)[0]
    masks = [mask]
    free, kept = np.flatnonzero(~mask), np.flatnonzero(mask)
    weakest, strongest = free[np.argmin(label[free])], kept[np.argmax(label[kept])]
    if label[weakest] - label[strongest] <= TIE:
        swapped = mask.copy()
        swapped[[weakest, strongest]] = [True, False]
        masks.append(swapped)
    return masks


def saturation(
    problem: LastLayerProblem, family: LabelFamily, inv_scale: float, threshold: float
) -> Saturation:
    """How many of the family's equations still move with the scale at t
    (`identifiability.scale_equations`); none is a refusal.

    A class counts as frozen when p_i (or 1 - p_i) is within SATURATION_FACTOR times its own
    rounding, or so small that no change of it could move the relative residual past the
    acceptance ``threshold`` (p_i <= threshold ||p - y||): either way its entry says nothing
    the verdict can use about the scale. Where the free entries tie with a constrained one,
    the worse of the two readings counts.
    """
    t = np.array([inv_scale])
    state = Evaluator(problem, family)(t)
    labels, probs = state.labels, state.probs
    rounding = entry_slack(problem, t, labels, probs, least=0.0, per_row=True)[0] / NOISE_FACTOR
    unseen = threshold * float(np.linalg.norm(probs[0] - labels[0]))
    near = np.maximum(SATURATION_FACTOR * rounding, unseen)
    counts = []
    for mask in _masks(labels[0], family):
        low = mask & (probs[0] <= near)
        high = mask & (1.0 - probs[0] <= near)
        moving = mask & ~low & ~high
        counts.append(
            (
                *scale_equations(
                    moving=int(moving.sum()),
                    frozen_low=int(low.sum()),
                    frozen_high=int(high.sum()),
                    others_equal_zero=family.others_equal_zero,
                    scale=problem.scale,
                ),
                int((low | high).sum()),
                int(mask.sum()),
            )
        )
    equations, linear, frozen, constrained = min(counts, key=lambda count: count[:2])
    reason = ""
    if equations == 0:
        reason = (
            f"not identifiable at this scalar: the softmax is saturated on {frozen} of the "
            f"{constrained} classes the {family.key} family constrains (p too close to 0 or 1 "
            "to be seen at this gradient's precision), so no equation that moves with the "
            "scale is left to pin it: a whole interval of labels fits"
            + (" (the gradient scale is one more unknown)" if problem.scale == "unknown" else "")
        )
    return Saturation(equations, linear, reason)


def flat_reason(
    problem: LastLayerProblem,
    family: LabelFamily,
    inv_scale: float,
    label: np.ndarray,
    probs: np.ndarray,
    threshold: float,
) -> str:
    """Empty unless the softmax is too flat at t to tell the gradient scale (unknown scale only).

    Along the path x -> lam x, k -> k / lam^2 the label becomes (1 - lam) U + lam y, which fits
    the family up to the softmax's curvature (`identifiability`): to second order in the
    centred logits d = z - <p, z>, p moves by p (d^2 - <p, d^2>) / 2 beyond its linear part.
    When that curvature, relative to ||p - y||, is below the acceptance threshold, labels a
    whole unit of lam away fit: refused. A classifier bias pins the scale, and a hard label
    leaves the path ((1 - lam) U + lam e_k is not one-hot), so neither is affected.
    """
    if problem.scale != "unknown" or problem.bias is not None or family.others_equal_zero:
        return ""
    logits = problem.logit_direction / inv_scale
    centred = logits - probs @ logits
    squares = centred**2
    curvature = float(np.linalg.norm(probs * (squares - probs @ squares))) / 2
    size = float(np.linalg.norm(probs - label))
    if size > 0 and curvature > threshold * size:
        return ""
    return (
        "not identifiable at this scalar: the softmax is too flat (logit spread "
        f"{np.ptp(logits):.2g}) for its curvature to tell the gradient scale: at an unknown "
        "scale every label (1 - lam) U + lam y on a whole range of lam fits as well (observe "
        "a classifier bias, or assume the scale mode 'known' if nothing rescaled the gradient)"
    )


def _fitting(
    problem: LastLayerProblem, family: LabelFamily, candidates: np.ndarray, best_residual: float
) -> tuple[np.ndarray, np.ndarray]:
    """Which scalars imply a valid label fitting about as exactly as the best, and their labels.

    A candidate must come within AMBIGUITY_RATIO of the best residual (or of a hundredth of its
    own rounding floor, when the best fit is exact beyond rounding): a valley whose residual
    stalls far above the best fit is no rival. Its residual is `label_fit` of its label, all
    candidates in one evaluation. Shapes: (K,) -> (K,), (K, C).
    """
    state = Evaluator(problem, family)(candidates)
    labels, probs = state.labels, state.probs
    valid = valid_at(problem, candidates, labels, probs)
    floor = noise_floor(problem, family, candidates, labels, probs)
    residual = label_fit(labels, probs, family)
    reference = np.maximum(np.maximum(best_residual, RIVAL_FLOOR * floor), EXACT_RIVAL)
    return valid & (residual <= AMBIGUITY_RATIO * reference), labels


#: Label distances (multiples of AMBIGUITY_L1) at which the neighbourhood of a root is probed.
PROBE_DISTANCES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def _neighbours(problem: LastLayerProblem, family: LabelFamily, inv_scale: float) -> np.ndarray:
    """Scalars on either side of t where the label has moved by PROBE_DISTANCES x AMBIGUITY_L1.

    First order: the label moves at dy/dt, so a step of d / ||dy/dt||_1 moves it by about d in
    l1. Probing at several distances finds a flat stretch (every probe fits) and a second root
    close to the first (a probe lands in its basin and is polished into it), both of which a
    grid can miss. Probes that would leave t's branch ([-1, 0) or (0, 1] at a known scale) are
    dropped. The speed is a central difference of the label, which at an unknown scale moves
    with the re-fitted s as well.
    """
    step = 1e-7 * abs(inv_scale)
    sides = Evaluator(problem, family)(np.array([inv_scale - step, inv_scale + step])).labels
    speed = float(np.abs(sides[1] - sides[0]).sum() / (2 * step))
    if not np.isfinite(speed) or speed == 0.0:
        return np.empty(0)
    steps = AMBIGUITY_L1 * np.asarray(PROBE_DISTANCES) / speed
    probes = np.concatenate([inv_scale - steps, inv_scale + steps])
    bound = 1.0 if problem.scale == "known" else np.inf
    keep = (np.sign(probes) == np.sign(inv_scale)) & (np.abs(probes) <= bound)
    return probes[keep]


class Rival(NamedTuple):
    """A scalar other than the solution's that fits as exactly, and the label it implies."""

    inv_scale: float
    label: np.ndarray


def rivals(
    problem: LastLayerProblem,
    family: LabelFamily,
    solution: ScalarSolution,
    label: np.ndarray,
    *,
    roots: np.ndarray | None = None,
) -> list[Rival]:
    """Scalars other than the solution's that fit as exactly but imply a different label
    (check 4): the search's other local solutions and the solution's neighbours (`_neighbours`,
    as probed and polished), each polished first so a genuine second root is judged on the
    precision it can reach; and ``roots``, every root a census found (already polished)."""
    starts = np.array([candidate for candidate, _ in solution.alternatives])
    neighbours = _neighbours(problem, family, solution.inv_scale)
    polished = polish_many(problem, family, np.concatenate([starts, neighbours]))
    candidates = np.concatenate(
        [
            polished[: starts.size],
            neighbours,
            polished[starts.size :],
            np.empty(0) if roots is None else np.asarray(roots, dtype=np.float64),
        ]
    )
    if candidates.size == 0:
        return []
    fits, labels = _fitting(problem, family, candidates, solution.residual)
    found: list[Rival] = []
    known = [label]
    for candidate, fit, other in zip(candidates, fits, labels, strict=True):
        # A rival implies a label unlike every known one (the solution's, earlier rivals').
        if fit and min(np.abs(other - seen).sum() for seen in known) > AMBIGUITY_L1:
            found.append(Rival(float(candidate), other))
            known.append(other)
    return found
