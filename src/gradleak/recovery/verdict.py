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
from gradleak.recovery.residual import (
    constrained_mask,
    implied_label_slope,
    implied_labels,
    label_residual,
)
from gradleak.recovery.search_result import ScalarSolution

#: A second solution makes the answer ambiguous when its label differs by more than this in l1
#: and its residual (relative to its threshold) is within AMBIGUITY_RATIO of the best one's.
AMBIGUITY_L1 = 1e-2
AMBIGUITY_RATIO = 10.0
#: Residuals below this fraction of the rounding floor, or below EXACT_RIVAL, count as equally
#: exact when comparing rivals (true scalars sit at 0.003-0.25 of the floor in float32).
RIVAL_FLOOR = 1e-2
EXACT_RIVAL = 1e-12


def label_at(problem: LastLayerProblem, inv_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """y(t) and softmax(u / t) at one scalar. Shapes: (C,), (C,)."""
    labels, probs = implied_labels(np.array([inv_scale]), problem.logit_direction, problem.coupling)
    return labels[0], probs[0]


def family_residual(
    problem: LastLayerProblem, family: LabelFamily, label: np.ndarray, inv_scale: float
) -> float:
    """The family's relative residual of one label at t. Shapes: (C,) -> float."""
    norm = float(np.linalg.norm(problem.coupling))
    return float(label_residual(label[None, :], np.array([inv_scale]), norm, family)[0])


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


def saturation(
    problem: LastLayerProblem, family: LabelFamily, inv_scale: float, threshold: float
) -> Saturation:
    """How many of the family's equations still move with the scale at t
    (`identifiability.scale_equations`); none is a refusal.

    A class counts as frozen when p_i (or 1 - p_i) is within SATURATION_FACTOR times its own
    rounding, or so small that no change of it could move the relative residual past the
    acceptance ``threshold`` (p_i <= threshold |t| ||c||): either way its entry says nothing
    the verdict can use about the scale.
    """
    t = np.array([inv_scale])
    labels, probs = implied_labels(t, problem.logit_direction, problem.coupling)
    mask = constrained_mask(labels, family)[0]
    rounding = entry_slack(problem, t, labels, probs, least=0.0, per_row=True)[0] / NOISE_FACTOR
    unseen = threshold * abs(inv_scale) * float(np.linalg.norm(problem.coupling))
    near = np.maximum(SATURATION_FACTOR * rounding, unseen)
    low = mask & (probs[0] <= near)
    high = mask & (1.0 - probs[0] <= near)
    moving = mask & ~low & ~high
    equations, linear = scale_equations(
        moving=int(moving.sum()),
        frozen_low=int(low.sum()),
        frozen_high=int(high.sum()),
        others_equal_zero=family.others_equal_zero,
    )
    reason = ""
    if equations == 0:
        reason = (
            f"not identifiable at this scalar: the softmax is saturated on "
            f"{int((low | high).sum())} of the {int(mask.sum())} classes the {family.key} family "
            "constrains (p too close to 0 or 1 to be seen at this gradient's precision), so "
            "their entries are linear in the scale and no equation pins it: a whole interval "
            "of labels fits"
        )
    return Saturation(equations, linear, reason)


def _is_rival(
    problem: LastLayerProblem,
    family: LabelFamily,
    inv_scale: float,
    best_residual: float,
    known: list[np.ndarray],
) -> bool:
    """t implies a valid label unlike every known one, fitting about as exactly as the best.

    It must come within AMBIGUITY_RATIO of the best residual (or of a hundredth of its own
    rounding floor, when the best fit is exact beyond rounding): a valley whose residual
    stalls far above the best fit is no rival.
    """
    other, probs = label_at(problem, inv_scale)
    if min(np.abs(other - seen).sum() for seen in known) <= AMBIGUITY_L1:
        return False
    if not valid_at(problem, np.array([inv_scale]), other[None], probs[None])[0]:
        return False
    floor = noise_floor(problem, family, np.array([inv_scale]), other[None], probs[None])[0]
    reference = max(best_residual, RIVAL_FLOOR * floor, EXACT_RIVAL)
    return family_residual(problem, family, other, inv_scale) <= AMBIGUITY_RATIO * reference


#: Label distances (multiples of AMBIGUITY_L1) at which the neighbourhood of a root is probed.
PROBE_DISTANCES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def _neighbours(problem: LastLayerProblem, inv_scale: float) -> np.ndarray:
    """Scalars on either side of t where the label has moved by PROBE_DISTANCES x AMBIGUITY_L1.

    First order: the label moves at dy/dt, so a step of d / ||dy/dt||_1 moves it by about d in
    l1. Probing at several distances finds a flat stretch (every probe fits) and a second root
    close to the first (a probe lands in its basin and is polished into it), both of which a
    grid can miss. Probes that would leave t's branch ([-1, 0) or (0, 1]) are dropped.
    """
    _, probs = label_at(problem, inv_scale)
    t = np.array([inv_scale])
    slope = implied_label_slope(t, probs[None], problem.logit_direction, problem.coupling)[0]
    speed = float(np.abs(slope).sum())
    if not np.isfinite(speed) or speed == 0.0:
        return np.empty(0)
    steps = AMBIGUITY_L1 * np.asarray(PROBE_DISTANCES) / speed
    probes = np.concatenate([inv_scale - steps, inv_scale + steps])
    keep = (np.sign(probes) == np.sign(inv_scale)) & (np.abs(probes) <= 1.0)
    return probes[keep]


def rivals(
    problem: LastLayerProblem,
    family: LabelFamily,
    solution: ScalarSolution,
    label: np.ndarray,
    *,
    roots: np.ndarray | None = None,
) -> list[float]:
    """Scalars other than the solution's that fit as exactly but imply a different label
    (check 4): the search's other local solutions and the solution's neighbours (`_neighbours`,
    as probed and polished), each polished first so a genuine second root is judged on the
    precision it can reach; and ``roots``, every root a census found (already polished)."""
    starts = np.array([candidate for candidate, _ in solution.alternatives])
    neighbours = _neighbours(problem, solution.inv_scale)
    found: list[float] = []
    for candidate in (
        *polish_many(problem, family, starts),
        *neighbours,
        *polish_many(problem, family, neighbours),
        *(() if roots is None else roots),
    ):
        known = [label, *(label_at(problem, rival)[0] for rival in found)]
        if _is_rival(problem, family, candidate, solution.residual, known):
            found.append(candidate)
    return found
