"""The one residual evaluator: implied labels y(t) and a family's constraint residual at t.

Paper: Wang, Liang & He, ICLR 2024, Sec. 4.2. We search t = 1 / mu = p_r - y_r, which lies in
[-1, 0) U (0, 1] because |mu| >= 1; the degenerate limit |mu| -> infinity becomes t -> 0.
In t the implied label (their Eq. for y_i(mu)) reads

    y(t) = softmax(W g_r / t + b) - t * c,        dy/dt = -p * (u - <p, u>) / t^2 - c,

with u = W g_r. Each family constrains all entries but its ``free`` largest ones (hard: the
others are 0; smoothing: the C-1 others are equal; mixup: the C-2 others are equal), and the
relative residual ||deviation|| / ||p - y|| measures how far y(t) is from the family. Every
search, the verdict and the loss-landscape figure evaluate it here; all of it is vectorised
over many t.

With an unknown gradient scale k (clipping, an unknown learning rate: dL/dW = k (p - y) x^T)
the label is y(t, s) = softmax(u / t) - s c with s = p_r - y_r = t / k a second unknown. For
each t the family constraint is linear in s, so s is eliminated in closed form (least squares
on the constrained entries: variable projection) and the search stays one-dimensional in t.
``problem.scale`` says which: "known" (s = t, the paper's setting) or "unknown".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gradleak.families import LabelFamily
from gradleak.recovery.last_layer import LastLayerProblem


def implied_labels(
    inv_scale: np.ndarray, logit_direction: np.ndarray, coupling: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """y(t) and softmax(u / t) for every t. Shapes: (T,), (C,), (C,) -> (T, C), (T, C)."""
    logits = logit_direction[None, :] / inv_scale[:, None]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return probs - inv_scale[:, None] * coupling[None, :], probs


def implied_label_slope(
    inv_scale: np.ndarray, probs: np.ndarray, logit_direction: np.ndarray, coupling: np.ndarray
) -> np.ndarray:
    """dy/dt. Shapes: (T,), (T, C), (C,), (C,) -> (T, C)."""
    centred = logit_direction[None, :] - (probs @ logit_direction)[:, None]
    return -probs * centred / inv_scale[:, None] ** 2 - coupling[None, :]


def constrained_mask(labels: np.ndarray, family: LabelFamily) -> np.ndarray:
    """True on the entries the family constrains (all but the ``free`` largest). (T, C).

    Repeated argmax, not argpartition: for one or two free entries it is several times faster.
    """
    return _mask_of(_free_entries(labels, family.free), labels.shape)


def project(values: np.ndarray, mask: np.ndarray, family: LabelFamily) -> np.ndarray:
    """Deviation of the constrained entries from what the family allows; 0 elsewhere. (T, C).

    Linear in ``values`` for a fixed mask, so it maps y to the residual and dy/dt to its slope.
    """
    kept = values * mask
    if family.others_equal_zero:
        return kept
    centred = values - kept.sum(axis=-1, keepdims=True) / (mask.shape[-1] - family.free)
    centred *= mask
    return centred


def _row_dot(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Row-wise inner products in one pass, without a (T, C) temporary. (T, C) x 2 -> (T,)."""
    return np.einsum("ij,ij->i", left, right)


def _projected_coupling(coupling: np.ndarray, mask: np.ndarray, family: LabelFamily) -> np.ndarray:
    """`project` of the coupling c, the same vector in every row: its masked mean is one
    matrix-vector product, not a sum over a broadcast copy. Shapes: (C,), (T, C) -> (T, C)."""
    if family.others_equal_zero:
        return coupling * mask
    mean = (mask @ coupling) / (mask.shape[-1] - family.free)
    centred = coupling - mean[:, None]
    centred *= mask
    return centred


def relative_residual(
    deviation: np.ndarray, label_scale: np.ndarray, coupling_norm: float
) -> np.ndarray:
    """||deviation|| / ||p - y||, with ||p - y|| = |s| * ||c||. Shapes: (T, C), (T,) -> (T,).

    Scale-aware: the plain variance tends to 0 as t -> 0 (the degenerate solution), this ratio
    does not, while the true t still gives exactly 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt(_row_dot(deviation, deviation)) / (np.abs(label_scale) * coupling_norm)
    return np.where(np.isfinite(ratio) & np.isfinite(label_scale), ratio, np.inf)


def label_residual(
    labels: np.ndarray, label_scale: np.ndarray, coupling_norm: float, family: LabelFamily
) -> np.ndarray:
    """The family's relative residual of given labels y = p - s c. Shapes: (T, C), (T,) -> (T,)."""
    deviation = project(labels, constrained_mask(labels, family), family)
    return relative_residual(deviation, label_scale, coupling_norm)


#: Alternations of mask and closed-form s when the gradient scale is unknown.
SCALE_ROUNDS = 3

#: The largest gradient scale k = t / s a fit may claim. Clipping and normalisation give
#: k <= 1; an undeclared Nesterov step gives 1 + momentum < 2, a learning rate the server
#: misjudges by up to 10x gives up to 10. Beyond that, s -> 0 approaches the degenerate "label
#: equals prediction": where the softmax is one-hot (t -> 0), y = p - s c fits any family as
#: s -> 0 (k -> infinity), and with k up to 1000 a near-degenerate wrong mixup label fitted a
#: flat ResNet18 within its threshold (2 of 600 trials).
LARGEST_GRADIENT_SCALE = 10.0


_LARGEST = np.finfo(np.float64).max


def _mask_of(free: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """True everywhere but at each row's ``free`` indices. Shapes: (T, free) -> (T, C)."""
    mask = np.ones(shape, dtype=bool)
    mask[np.arange(shape[0])[:, None], free] = False
    return mask


def _finite_scale(label_scale: np.ndarray) -> np.ndarray:
    """np.nan_to_num's mapping (NaN -> 0, +-inf -> +-max) without its per-call overhead."""
    return np.clip(np.where(np.isnan(label_scale), 0.0, label_scale), -_LARGEST, _LARGEST)


def _free_entries(start: np.ndarray, free: int) -> np.ndarray:
    """Indices of the ``free`` largest entries of each row (repeated argmax: the first of
    ties); `constrained_mask` is their complement. Shapes: (T, C) -> (T, free)."""
    largest = start.argmax(axis=1)
    if free == 1:
        return largest[:, None]
    rows = np.arange(start.shape[0])
    chosen = [largest]
    rest = start.copy()
    for _ in range(free - 1):
        rest[rows, chosen[-1]] = -np.inf
        chosen.append(rest.argmax(axis=1))
    return np.stack(chosen, axis=1)


def _closed_form_scale(
    probs: np.ndarray, coupling: np.ndarray, free: np.ndarray, family: LabelFamily
) -> np.ndarray:
    """s = <a, a> / <a, w> (a = P p, w = P c) with every entry but ``free`` constrained. The
    projections are formed explicitly, not from sums over all classes minus the free entries:
    where the softmax saturates (or is nearly uniform) those differences cancel to a few
    digits. Shapes: (R, C), (C,), (R, free) -> (R,)."""
    mask = _mask_of(free, probs.shape)
    shaped = project(probs, mask, family)
    power = _row_dot(shaped, shaped)
    # <a, w> = <a, c>: a is zero off the mask and sums to zero on it, so w's mean drops out.
    overlap = shaped @ coupling
    return np.divide(power, overlap, out=np.full_like(power, np.nan), where=overlap != 0)


def _minus_scaled(probs: np.ndarray, scales: np.ndarray, coupling: np.ndarray) -> np.ndarray:
    """p - s c for both starts at once: row k of ``scales`` pairs with row k mod T of
    ``probs`` (no copy of ``probs``). Shapes: (T, C), (2T,), (C,) -> (2T, C)."""
    count = probs.shape[0]
    return (probs[None] - scales.reshape(2, count, 1) * coupling).reshape(2 * count, probs.shape[1])


class _ScaleFit(NamedTuple):
    """The fitted s (NaN: no fit), and the label y = p - s c, its constrained entries and its
    family deviation where s is finite. Shapes: (T,), (T, C) x 3."""

    label_scale: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    deviation: np.ndarray


def fitted_label_scale(
    inv_scale: np.ndarray, probs: np.ndarray, coupling: np.ndarray, family: LabelFamily
) -> np.ndarray:
    """`_fit_scale`'s s only. Shapes: (T,), (T, C), (C,) -> (T,)."""
    return _fit_scale(inv_scale, probs, coupling, family).label_scale


def _fit_scale(
    inv_scale: np.ndarray, probs: np.ndarray, coupling: np.ndarray, family: LabelFamily
) -> _ScaleFit:
    """The s that makes p(t) - s c closest to the family, for every t (unknown gradient scale).

    For a fixed set of constrained entries the family's deviation is a - s w with a = P p and
    w = P c (P: `project`). The relative residual ||a - s w|| / (|s| ||c||) = ||w - a / s|| /
    ||c|| is least at 1 / s = <a, w> / <a, a> (minimising the absolute deviation instead would
    take s -> 0 wherever the softmax is one-hot, a "label equals prediction" that fits any
    gradient). The set of constrained entries depends on s (it excludes the ``free`` largest
    entries of y), so free entries and s alternate, up to SCALE_ROUNDS times (no further once
    the free entries repeat), from two starts: the known-scale s = t (k near 1) and the largest
    entries of -sign(t) c (k far from 1: the label's correction outweighs p); the start whose
    label has the smaller residual wins. Both starts run as one batch, and the winner's label,
    mask and deviation are returned for the evaluator to keep. An s of the other sign than t
    would need k < 0, an s below |t| / LARGEST_GRADIENT_SCALE a k beyond it, and <a, w> = 0
    leaves nothing to fit: all are NaN (no fit). Shapes: (T,), (T, C), (C,) -> `_ScaleFit`.
    """
    count = inv_scale.size
    rows = np.concatenate([np.arange(count), np.arange(count)])
    signs = np.sign(inv_scale)[rows]
    both = probs[rows]
    label_scale = np.concatenate([inv_scale, np.full(count, np.nan)])
    previous, settled = None, None
    for _ in range(SCALE_ROUNDS):
        finite = np.isfinite(label_scale)
        start = _minus_scaled(probs, np.where(finite, label_scale, 0.0), coupling)
        if not finite.all():
            start[~finite] = -signs[~finite, None] * coupling[None, :]
        free = _free_entries(start, family.free)
        if previous is not None and np.array_equal(free, previous):
            settled = start, free, finite
            break  # the same free entries give the same s again
        label_scale, previous = _closed_form_scale(both, coupling, free, family), free
    if settled is None:
        labels = _minus_scaled(probs, _finite_scale(label_scale), coupling)
        mask = constrained_mask(labels, family)
    else:
        # The last round formed this very label, and its free entries, wherever s is finite.
        labels, free, finite = settled
        mask = _mask_of(free, labels.shape)
        if not finite.all():
            lost = ~finite
            labels[lost] = both[lost] - _finite_scale(label_scale[lost])[:, None] * coupling
            mask[lost] = constrained_mask(labels[lost], family)
    deviation = project(labels, mask, family)
    residual = relative_residual(deviation, label_scale, float(np.linalg.norm(coupling)))
    plausible = (np.sign(label_scale) == signs) & (
        np.abs(label_scale) * LARGEST_GRADIENT_SCALE >= np.abs(inv_scale[rows])
    )
    label_scale = np.where(plausible, label_scale, np.nan)
    residual = np.where(plausible, residual, np.inf)
    chosen = np.arange(count) + count * (residual[count:] < residual[:count])
    return _ScaleFit(label_scale[chosen], labels[chosen], mask[chosen], deviation[chosen])


class ResidualState(NamedTuple):
    """The implied label and its family residual at a batch of scalars. Shapes: (K,), (K, C).

    ``label_scale`` is s in y = p - s c: t itself when the gradient scale is known, fitted
    when it is not (the gradient scale is then k = t / s).
    """

    inv_scale: np.ndarray
    labels: np.ndarray
    probs: np.ndarray
    mask: np.ndarray
    deviation: np.ndarray
    residual: np.ndarray
    label_scale: np.ndarray


class Evaluator:
    """Evaluates the residual of one problem and family (in the problem's scale mode); counts
    evaluations."""

    def __init__(self, problem: LastLayerProblem, family: LabelFamily) -> None:
        self.problem, self.family = problem, family
        self.coupling_norm = float(np.linalg.norm(problem.coupling))
        self.count = 0

    def __call__(self, inv_scale: np.ndarray) -> ResidualState:
        self.count += inv_scale.size
        problem, family = self.problem, self.family
        inv_scale = np.asarray(inv_scale, dtype=np.float64)
        labels, probs = implied_labels(inv_scale, problem.logit_direction, problem.coupling)
        if problem.scale == "known":
            label_scale = inv_scale
            mask = constrained_mask(labels, family)
            deviation = project(labels, mask, family)
        else:
            label_scale, fitted, mask, deviation = _fit_scale(
                inv_scale, probs, problem.coupling, family
            )
            # Where no s fits, keep the known-scale label (finite, so rounding floors and
            # validity stay defined) and let the residual say "no fit".
            unfit = ~np.isfinite(label_scale)
            labels = np.where(unfit[:, None], labels, fitted)
            if unfit.any():
                mask[unfit] = constrained_mask(labels[unfit], family)
                deviation[unfit] = project(labels[unfit], mask[unfit], family)
        residual = relative_residual(deviation, label_scale, self.coupling_norm)
        return ResidualState(inv_scale, labels, probs, mask, deviation, residual, label_scale)

    def slope(self, state: ResidualState) -> np.ndarray:
        """d(deviation)/dt at each candidate, for Gauss-Newton. Shapes: (K, C).

        Known scale: P dy/dt. Unknown: s(t) = <a, a> / <a, w> is re-fitted at every t
        (a = P p(t), w = P c), so the deviation a - s w moves by a' - s' w with a' = P dp/dt.
        """
        problem, family = self.problem, self.family
        u, c = problem.logit_direction, problem.coupling
        slope = implied_label_slope(state.inv_scale, state.probs, u, c)
        if problem.scale == "known":
            return project(slope, state.mask, family)
        moved = project(slope + c[None, :], state.mask, family)  # a' = P dp/dt
        shaped = project(state.probs, state.mask, family)  # a
        along = _projected_coupling(c, state.mask, family)  # w
        # <a, w> = <a, c> and <a', w> = <a', c>: both are projected (see _closed_form_scale).
        power, overlap = _row_dot(shaped, shaped), shaped @ c
        with np.errstate(all="ignore"):  # far from a fit these overflow; Gauss-Newton skips them
            growth = 2.0 * _row_dot(shaped, moved) * overlap - power * (moved @ c)
            change = growth / overlap**2
            change[~np.isfinite(change)] = 0.0
            return np.nan_to_num(moved - change[:, None] * along)


def residual_at(
    problem: LastLayerProblem, family: LabelFamily, inv_scale: np.ndarray
) -> np.ndarray:
    """The family's relative residual at each t. Shapes: (T,) -> (T,)."""
    return Evaluator(problem, family)(np.asarray(inv_scale, dtype=np.float64)).residual
