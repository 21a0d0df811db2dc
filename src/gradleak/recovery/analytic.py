"""The paper's analytic recovery of the soft label and last-layer feature.

Paper: Wang, Liang & He, ICLR 2024, Sec. 4. With a classifier bias the scalar is read off
dL/db (closed form); without one, a label family supplies the extra constraint that pins it
(Theorem 1: sum_i y_i(mu) = 1 for every mu, so "sums to one" alone pins nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch

from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.families import (
    AUTO_ORDER,
    FAMILIES,
    Family,
    family_params,
    implied_labels,
    label_residual,
)
from gradleak.recovery.fast_search import fast_search, polish
from gradleak.recovery.last_layer import LastLayerProblem, matvec
from gradleak.recovery.noise import NOISE_FACTOR, noise_floor, valid_labels
from gradleak.recovery.paper_search import paper_search
from gradleak.recovery.search_result import ScalarSolution

#: Upper bound on the relative family residual of an accepted solution; the bound actually used
#: is tighter where the gradient's precision allows (`noise.acceptance_threshold`).
DEFAULT_TOL = 1e-4
#: A second solution makes the answer ambiguous when its label differs by more than this in l1
#: and its residual (relative to its threshold) is within AMBIGUITY_RATIO of the best one's.
AMBIGUITY_L1 = 1e-2
AMBIGUITY_RATIO = 10.0
#: Residuals below this fraction of the rounding floor, or below EXACT_RIVAL, count as equally
#: exact when comparing rivals (true scalars sit at 0.003-0.25 of the floor in float32).
RIVAL_FLOOR = 1e-2
EXACT_RIVAL = 1e-12

SEARCHES: dict[str, Callable[..., ScalarSolution]] = {"fast": fast_search, "paper": paper_search}
FAMILY_CHOICES = (*FAMILIES, "auto")


def _label_at(problem: LastLayerProblem, inv_scale: float) -> np.ndarray:
    labels, _ = implied_labels(np.array([inv_scale]), problem.logit_direction, problem.coupling)
    return labels[0]


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def _family_residual(label: np.ndarray, inv_scale: float, problem, family: Family) -> float:
    norm = float(np.linalg.norm(problem.coupling))
    return float(label_residual(label[None, :], np.array([inv_scale]), norm, family)[0])


def _verdict(label: np.ndarray, residual: float, threshold: float) -> str:
    """Empty when the solution is accepted, else why not (observable quantities only)."""
    if not residual <= threshold:
        return f"residual {residual:.2e} above the acceptance threshold {threshold:.1e}"
    if not valid_labels(label[None, :])[0]:
        return (
            f"the fitting label leaves [0, 1] (min {label.min():.3g}, max {label.max():.3g}): "
            "not a probability vector"
        )
    return ""


def _rivals(
    problem: LastLayerProblem, family: Family, solution: ScalarSolution, label: np.ndarray
) -> list[float]:
    """Other scalars that fit as exactly as the best one but imply a different label.

    Each alternative is polished first, so a genuine second root is judged on the precision it
    can reach. It must come within AMBIGUITY_RATIO of the best residual (or of a hundredth of
    its own rounding floor, when the best fit is exact beyond rounding): a flat valley whose
    residual stalls far above the best fit is no rival.
    """
    rivals: list[float] = []
    for candidate, _ in solution.alternatives:
        inv_scale = polish(problem, family, candidate)
        other, probs = (
            row[0]
            for row in implied_labels(
                np.array([inv_scale]), problem.logit_direction, problem.coupling
            )
        )
        known = [label, *(_label_at(problem, rival) for rival in rivals)]
        if min(np.abs(other - seen).sum() for seen in known) <= AMBIGUITY_L1:
            continue
        if not valid_labels(other[None])[0]:
            continue
        floor = noise_floor(problem, family, np.array([inv_scale]), other[None], probs[None])[0]
        reference = max(solution.residual, RIVAL_FLOOR * floor, EXACT_RIVAL)
        if _family_residual(other, inv_scale, problem, family) <= AMBIGUITY_RATIO * reference:
            rivals.append(inv_scale)
    return rivals


def search_estimate(
    problem: LastLayerProblem, family_name: str, *, search: str, tol: float, seed: int
) -> LabelEstimate:
    """Bias-free recovery for one family: search the scalar, then read off label and feature."""
    family = FAMILIES[family_name]
    if problem.num_classes < family.min_classes:
        raise ValueError(
            f"family={family_name!r} needs num_classes >= {family.min_classes} to pin the scale, "
            f"got {problem.num_classes}: with fewer classes the gradient fixes the label only up "
            "to a one-parameter family (Theorem 1); use a classifier bias or another family"
        )
    solution = SEARCHES[search](problem, family, tol=tol, seed=seed)
    label = _label_at(problem, solution.inv_scale)
    reason = _verdict(label, solution.residual, solution.threshold)
    if reason.startswith("residual"):
        reason = (
            f"no scalar fits the {family_name} family: {reason} (min of tol and "
            f"{NOISE_FACTOR:.0f}x the rounding floor of this gradient)"
        )
    rivals = [] if reason else _rivals(problem, family, solution, label)
    if rivals:
        reason = (
            f"ambiguous: {len(rivals) + 1} scalars fit the {family_name} family with different "
            "labels; refusing to pick one"
        )
    scale = 1.0 / solution.inv_scale
    return LabelEstimate(
        soft_label=_tensor(label),
        features=_tensor(problem.features(scale)),
        scale=scale,
        residual=solution.residual,
        converged=not reason,
        family=family_name,
        method=f"scalar-search/{search}",
        row=problem.row,
        reason=reason,
        family_params=family_params(label, family),
        diagnostics={
            "threshold": solution.threshold,
            "evaluations": solution.evaluations,
            "rank_one_deviation": problem.rank_one_deviation,
            "precision": problem.precision,
            "rival_scales": [1.0 / t for t in rivals],
            **solution.notes,
        },
    )


def bias_estimate(problem: LastLayerProblem, *, tol: float, family: str) -> LabelEstimate:
    """Closed form with a classifier bias: t = (dL/db)_r, x = g_r / t, y = softmax(Wx + b) - dL/db.

    Converged when dL/db is consistent with dL/dW (both equal (p - y) times x, so
    dL/db / t must equal the coupling c); the family only names what the label looks like.
    """
    bias_grad, bias = problem.bias_grad, problem.bias
    inv_scale = float(bias_grad[problem.row])
    if inv_scale == 0.0:
        raise ValueError("bias_grad is zero at the largest weight_grad row: inconsistent gradients")
    features = problem.row_grad / inv_scale
    logits = matvec(problem.weight, features) + bias
    probs = np.exp(logits - logits.max())
    label = probs / probs.sum() - bias_grad
    mismatch = float(
        np.linalg.norm(bias_grad / inv_scale - problem.coupling) / np.linalg.norm(problem.coupling)
    )
    reason = _verdict(label, mismatch, tol)
    if reason:
        reason = f"bias and weight gradients disagree: {reason}"
    fitted = _fitting_family(label, inv_scale, problem, tol) if family == "auto" else family
    return LabelEstimate(
        soft_label=_tensor(label),
        features=_tensor(features),
        scale=1.0 / inv_scale,
        residual=mismatch,
        converged=not reason,
        family=fitted,
        method="bias-closed-form",
        row=problem.row,
        reason=reason,
        family_params=family_params(label, FAMILIES[fitted]) if fitted in FAMILIES else {},
        diagnostics={"rank_one_deviation": problem.rank_one_deviation},
    )


def _fitting_family(label: np.ndarray, inv_scale: float, problem, tol: float) -> str:
    for name in AUTO_ORDER:
        family = FAMILIES[name]
        if problem.num_classes >= family.min_classes and (
            _family_residual(label, inv_scale, problem, family) <= tol
        ):
            return name
    return "unknown"


def auto_estimate(
    problem: LastLayerProblem, *, search: str, tol: float, seed: int
) -> LabelEstimate:
    """Try hard, smoothing, mixup in turn and keep the first (simplest) family that fits."""
    tried: list[LabelEstimate] = []
    for name in AUTO_ORDER:
        if problem.num_classes < FAMILIES[name].min_classes:
            continue
        estimate = search_estimate(problem, name, search=search, tol=tol, seed=seed)
        if estimate.converged:
            return _with_tried(estimate, tried)
        tried.append(estimate)
    if not tried:
        raise ValueError(f"num_classes={problem.num_classes}: no label family is identifiable")
    best = min(tried, key=lambda estimate: estimate.residual)
    reason = (
        "no label family fits this gradient, so the label is not identifiable without a bias "
        f"(best: {best.family}, {best.reason})"
    )
    return _with_tried(best, tried, reason=reason)


def _with_tried(estimate: LabelEstimate, tried, reason: str | None = None) -> LabelEstimate:
    rejected = {other.family: other.residual for other in tried}
    diagnostics = {**estimate.diagnostics, "rejected_families": rejected}
    if reason is None:
        return replace(estimate, diagnostics=diagnostics)
    return replace(estimate, diagnostics=diagnostics, reason=reason, converged=False)
