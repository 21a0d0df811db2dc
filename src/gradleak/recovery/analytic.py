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
from gradleak.recovery.residual import Evaluator, fitted_label_scale
from gradleak.recovery.root_census import census
from gradleak.recovery.search_result import ScalarSolution
from gradleak.recovery.verdict import (
    family_residual,
    fit_reason,
    flat_reason,
    label_at,
    rivals,
    saturation,
)

#: Why several labels can fit one gradient exactly, by scale mode (identifiability.py).
AMBIGUITY_CAUSES = {
    "known": "a saturated softmax leaves a whole interval of them",
    "unknown": (
        "a saturated softmax leaves a whole interval of them, and at an unknown gradient "
        "scale so does a nearly linear one (small logits: x -> lam x, k -> k / lam^2 turns "
        "the label y into (1 - lam) U + lam y, which only the softmax's curvature tells "
        "apart); a classifier bias or the scale mode 'known' removes this"
    ),
}

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
    bias = problem.bias is not None
    count = identifiability(problem.num_classes, family, scale=problem.scale, bias=bias)
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
    state = Evaluator(problem, family)(np.array([solution.inv_scale]))
    label, probs, label_scale = state.labels[0], state.probs[0], float(state.label_scale[0])
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
        reason = saturated.reason or flat_reason(
            problem, family, solution.inv_scale, label, probs, solution.threshold
        )
    roots = census(problem, family, tol) if saturated is not None and saturated.census else None
    others = [] if reason else rivals(problem, family, solution, label, roots=roots)
    spread = max((float(np.abs(rival.label - label).sum()) for rival in others), default=0.0)
    if others:
        cause = AMBIGUITY_CAUSES[problem.scale]
        reason = (
            f"ambiguous: {len(others) + 1} scalars fit the {family_name} family with labels up "
            f"to l1 {spread:.2g} apart ({cause}); refusing to pick one"
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
        gradient_scale=solution.inv_scale / label_scale if label_scale else float("nan"),
        family_params=family.read_params(label),
        diagnostics={
            "threshold": solution.threshold,
            "evaluations": solution.evaluations,
            "rank_one_deviation": problem.rank_one_deviation,
            "precision": problem.precision,
            "rival_scales": [1.0 / rival.inv_scale for rival in others],
            "rival_l1": spread,
            "census": roots is not None,
            **solution.notes,
        },
    )


def bias_estimate(
    problem: LastLayerProblem, *, tol: float, family: str, method: str
) -> LabelEstimate:
    """Closed form with a classifier bias: t = (dL/db)_r, x = g_r / t, p = softmax(Wx + b).

    A gradient scale k cancels in x (both gradients carry it), so p is exact either way. At a
    known scale y = p - dL/db; at an unknown one y = p - dL/db / k, and the family pins k in
    closed form (`residual.fitted_label_scale`). Converged when dL/db is consistent with dL/dW
    (both k (p - y) times x, so dL/db / t must equal the coupling c) and the label is one of
    the requested family; ``family="auto"`` at a known scale also answers a label no family
    explains ("unknown": the label is read off, not inferred), at an unknown scale it must fit
    one (an extra unknown needs an extra constraint).
    """
    refused = _refusal(problem, family, method)
    if refused is not None:
        return refused
    bias_grad, bias = problem.bias_grad, problem.bias
    inv_scale = float(bias_grad[problem.row])
    if inv_scale == 0.0:
        raise ValueError("bias_grad is zero at the largest weight_grad row: inconsistent gradients")
    features = problem.row_grad / inv_scale
    logits = matvec(problem.weight, features) + bias
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    coupling = bias_grad / inv_scale
    mismatch = float(np.linalg.norm(coupling - problem.coupling) / np.linalg.norm(problem.coupling))
    named = AUTO_ORDER[-1] if family == "auto" else family
    label_scale = inv_scale
    if problem.scale == "unknown":
        fitted = fitted_label_scale(np.array([inv_scale]), probs[None], coupling, FAMILIES[named])
        label_scale = float(fitted[0])
    label = probs - np.nan_to_num(label_scale) * coupling
    reason = fit_reason(problem, inv_scale, label, probs, mismatch, tol)
    if reason.startswith("residual"):
        reason = f"bias and weight gradients disagree: {reason}"
    fitted_family = _fitting_family(label, inv_scale, problem, tol)
    if (not reason and family != "auto") or problem.scale == "unknown":
        reason = reason or _family_reason(label, inv_scale, problem, named, tol)
    if family == "auto" and problem.scale == "known":
        named = fitted_family
    elif family == "auto" and not reason:
        named = _simplest_family(problem, inv_scale, tol, label=label)
    return LabelEstimate(
        soft_label=_tensor(label),
        features=_tensor(features),
        scale=1.0 / inv_scale,
        residual=mismatch,
        converged=not reason,
        family=named,
        method=method,
        row=problem.row,
        reason=reason,
        gradient_scale=inv_scale / label_scale if label_scale else float("nan"),
        family_params=FAMILIES[named].read_params(label) if named in FAMILIES else {},
        diagnostics={
            "solution": "bias-closed-form",
            "rank_one_deviation": problem.rank_one_deviation,
        },
    )


def _family_reason(label: np.ndarray, inv_scale: float, problem, family: str, tol: float) -> str:
    """Empty when the label read off the bias gradient is a ``family`` label, else why not."""
    residual = family_residual(problem, FAMILIES[family], label, inv_scale)
    if residual <= tol:
        return ""
    scale = "" if problem.scale == "known" else ", with the gradient scale fitted to it"
    return (
        f"the label the bias gradient implies is no {family} label (relative residual "
        f"{residual:.2e} > tol {tol:.0e}{scale}); at an unknown gradient scale a label must "
        "fit a family, since the scale is one more unknown"
    )


def _fitting_family(label: np.ndarray, inv_scale: float, problem, tol: float) -> str:
    for name in AUTO_ORDER:
        if family_residual(problem, FAMILIES[name], label, inv_scale) <= tol:
            return name
    return "unknown"


def _simplest_family(
    problem: LastLayerProblem, inv_scale: float, tol: float, *, label: np.ndarray | None = None
) -> str:
    """The first of hard, smoothing, mixup whose constraint the label at t meets (the widest
    family's label at t unless ``label`` is given)."""
    if label is None:
        label, _ = label_at(problem, FAMILIES[AUTO_ORDER[-1]], inv_scale)
    for name in AUTO_ORDER[:-1]:
        family = FAMILIES[name]
        limit = float(threshold_at(problem, family, np.array([inv_scale]), tol)[0])
        if family_residual(problem, family, label, inv_scale) <= limit:
            return name
    return AUTO_ORDER[-1]


def _named(problem: LastLayerProblem, estimate: LabelEstimate, tol: float, tried: dict):
    """An accepted widest-family estimate reported under the simplest family it belongs to."""
    label = estimate.soft_label.numpy()  # the widest family's label at t (`judge`)
    name = _simplest_family(problem, 1.0 / estimate.scale, tol, label=label)
    params = FAMILIES[name].read_params(label)
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
        label, _ = label_at(problem, widest, inv_scale)
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
