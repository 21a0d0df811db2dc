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

from gradleak.families import FAMILIES
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.fast_search import fast_search
from gradleak.recovery.identifiability import identifiability
from gradleak.recovery.last_layer import LastLayerProblem, matvec
from gradleak.recovery.noise import NOISE_FACTOR, threshold_at
from gradleak.recovery.paper_search import paper_search
from gradleak.recovery.root_census import census
from gradleak.recovery.search_result import ScalarSolution
from gradleak.recovery.verdict import (
    family_residual,
    fit_reason,
    label_at,
    rivals,
    saturation,
)

#: Upper bound on the relative family residual of an accepted solution; the bound actually used
#: is tighter where the gradient's precision allows (`noise.acceptance_threshold`).
DEFAULT_TOL = 1e-4
#: The order in which ``family="auto"`` names a label's family: fewest parameters first.
AUTO_ORDER = tuple(sorted(FAMILIES.keys(), key=lambda key: len(FAMILIES[key].parameters)))

#: Recovery method key -> its scalar search.
SEARCHES: dict[str, Callable[..., ScalarSolution]] = {
    "fast-search": fast_search,
    "paper-search": paper_search,
}


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def _refusal(problem: LastLayerProblem, family: str, method: str) -> LabelEstimate | None:
    """The "not identifiable" answer when C is below the family's count, else None."""
    count = identifiability(problem.num_classes, family)
    if count.identifiable:
        return None
    return LabelEstimate.refusal(
        problem.num_classes,
        reason=count.reason,
        method=method,
        family=family,
        diagnostics={"equations": count.equations, "unknowns": count.unknowns},
    )


def search_estimate(
    problem: LastLayerProblem, family_name: str, *, method: str, tol: float, seed: int
) -> LabelEstimate:
    """Bias-free recovery for one family: search the scalar, then read off label and feature."""
    refused = _refusal(problem, family_name, method)
    if refused is not None:
        return refused
    solution = SEARCHES[method](problem, FAMILIES[family_name], tol=tol, seed=seed)
    return judge(problem, family_name, solution, method=method, tol=tol)


def judge(
    problem: LastLayerProblem,
    family_name: str,
    solution: ScalarSolution,
    *,
    method: str,
    tol: float,
) -> LabelEstimate:
    """The estimate at a search's solution, converged only if `verdict` accepts it."""
    family = FAMILIES[family_name]
    label, probs = label_at(problem, solution.inv_scale)
    reason = fit_reason(
        problem, solution.inv_scale, label, probs, solution.residual, solution.threshold
    )
    if reason.startswith("residual"):
        reason = (
            f"no scalar fits the {family_name} family: {reason} (min of tol and "
            f"{NOISE_FACTOR:.0f}x the rounding floor of this gradient)"
        )
        if solution.threshold >= tol:
            reason += (
                f"; this gradient's precision ({problem.precision:.1e}) alone allows residuals "
                "near tol: pass a larger tol to accept a less precise fit"
            )
    saturated = None
    if not reason:
        saturated = saturation(problem, family, solution.inv_scale, solution.threshold)
        reason = saturated.reason
    roots = census(problem, family, tol) if saturated is not None and saturated.census else None
    others = [] if reason else rivals(problem, family, solution, label, roots=roots)
    if others:
        reason = (
            f"ambiguous: {len(others) + 1} scalars fit the {family_name} family with different "
            "labels (a saturated softmax leaves a whole interval of them); refusing to pick one"
        )
    scale = 1.0 / solution.inv_scale
    return LabelEstimate(
        soft_label=_tensor(label),
        features=_tensor(problem.features(scale)),
        scale=scale,
        residual=solution.residual,
        converged=not reason,
        family=family_name,
        method=method,
        row=problem.row,
        reason=reason,
        family_params=family.read_params(label),
        diagnostics={
            "threshold": solution.threshold,
            "evaluations": solution.evaluations,
            "rank_one_deviation": problem.rank_one_deviation,
            "precision": problem.precision,
            "rival_scales": [1.0 / t for t in others],
            "census": roots is not None,
            **solution.notes,
        },
    )


def bias_estimate(
    problem: LastLayerProblem, *, tol: float, family: str, method: str
) -> LabelEstimate:
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
    probs /= probs.sum()
    label = probs - bias_grad
    mismatch = float(
        np.linalg.norm(bias_grad / inv_scale - problem.coupling) / np.linalg.norm(problem.coupling)
    )
    reason = fit_reason(problem, inv_scale, label, probs, mismatch, tol)
    if reason.startswith("residual"):
        reason = f"bias and weight gradients disagree: {reason}"
    fitted = _fitting_family(label, inv_scale, problem, tol) if family == "auto" else family
    return LabelEstimate(
        soft_label=_tensor(label),
        features=_tensor(features),
        scale=1.0 / inv_scale,
        residual=mismatch,
        converged=not reason,
        family=fitted,
        method=method,
        row=problem.row,
        reason=reason,
        family_params=FAMILIES[fitted].read_params(label) if fitted in FAMILIES else {},
        diagnostics={
            "solution": "bias-closed-form",
            "rank_one_deviation": problem.rank_one_deviation,
        },
    )


def _fitting_family(label: np.ndarray, inv_scale: float, problem, tol: float) -> str:
    for name in AUTO_ORDER:
        if family_residual(problem, FAMILIES[name], label, inv_scale) <= tol:
            return name
    return "unknown"


def _simplest_family(problem: LastLayerProblem, inv_scale: float, tol: float) -> str:
    """The first of hard, smoothing, mixup whose constraint the label at t meets."""
    label, _ = label_at(problem, inv_scale)
    for name in AUTO_ORDER[:-1]:
        family = FAMILIES[name]
        limit = float(threshold_at(problem, family, np.array([inv_scale]), tol)[0])
        if family_residual(problem, family, label, inv_scale) <= limit:
            return name
    return AUTO_ORDER[-1]


def _named(problem: LastLayerProblem, estimate: LabelEstimate, tol: float, tried: dict):
    """An accepted widest-family estimate reported under the simplest family it belongs to."""
    name = _simplest_family(problem, 1.0 / estimate.scale, tol)
    params = FAMILIES[name].read_params(estimate.soft_label.numpy())
    diagnostics = {**estimate.diagnostics, "rejected_families": tried}
    return replace(estimate, family=name, family_params=params, diagnostics=diagnostics)


def auto_estimate(
    problem: LastLayerProblem, *, method: str, tol: float, seed: int
) -> LabelEstimate:
    """The label whatever its family: every mixup root, then the simplest family it is in.

    The families are nested (a hard label is a smoothing label with eps = 0, a smoothing label
    a mixup label with lam = 0), so the mixup roots are every answer auto could give: they
    must agree (the mixup verdict), and the claim needs the mixup count of classes. Only
    when the mixup search finds no fit at all are the narrower searches tried, and a root of
    theirs is still judged as a mixup root (rivals and flat neighbours under mixup).
    """
    refused = _refusal(problem, "auto", method)
    if refused is not None:
        return refused
    widest = FAMILIES[AUTO_ORDER[-1]]
    solution = SEARCHES[method](problem, widest, tol=tol, seed=seed)
    estimate = judge(problem, widest.key, solution, method=method, tol=tol)
    if estimate.converged:
        return _named(problem, estimate, tol, {})
    if estimate.reason.startswith(("ambiguous", "not identifiable")):
        return estimate
    tried = {widest.key: estimate.residual}
    for name in AUTO_ORDER[:-1]:
        narrow = search_estimate(problem, name, method=method, tol=tol, seed=seed)
        if not narrow.converged:
            tried[name] = narrow.residual
            continue
        inv_scale = 1.0 / narrow.scale
        label, _ = label_at(problem, inv_scale)
        as_widest = ScalarSolution(
            inv_scale=inv_scale,
            residual=family_residual(problem, widest, label, inv_scale),
            threshold=float(threshold_at(problem, widest, np.array([inv_scale]), tol)[0]),
            evaluations=solution.evaluations,
            alternatives=((solution.inv_scale, 0.0), *solution.alternatives),
        )
        judged = judge(problem, widest.key, as_widest, method=method, tol=tol)
        if not judged.converged:
            return judged
        return _named(problem, judged, tol, tried)
    best = min(tried, key=tried.get)
    return replace(
        estimate,
        reason=(
            "no label family fits this gradient, so the label is not identifiable without a "
            f"bias (closest: {best}, relative residual {tried[best]:.2e}; {estimate.reason})"
        ),
        diagnostics={**estimate.diagnostics, "rejected_families": tried},
    )
