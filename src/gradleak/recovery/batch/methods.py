"""Batch label-recovery methods, one registry: ours (per-sample roots) and the count baselines.

Every method maps a `BatchProblem` to a `BatchEstimate`, so all answer the same gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gradleak.families import FAMILIES
from gradleak.recovery.batch.ambiguity import remix_reason
from gradleak.recovery.batch.estimate import BatchEstimate, as_tensor
from gradleak.recovery.batch.label_mass import (
    hard_counts,
    mean_probs,
    reduction_factor,
    smoothing_counts,
)
from gradleak.recovery.batch.peeling import CONSISTENT, ROOT_FACTOR, Peeled, peel
from gradleak.recovery.batch.problem import BatchProblem
from gradleak.recovery.batch.sample import EXACT
from gradleak.recovery.identifiability import batch_bound, batch_identifiability
from gradleak.recovery.llg import llg_targets
from gradleak.registry import Registry

BATCH_METHODS: Registry = Registry("batch method")
#: Families a batch method answers ("auto": whatever the batch used).
BATCH_FAMILIES = ("auto", "hard", "smoothing", "mixup")
#: Two samples' eps (or mixup weights) agree when they differ by less than this.
SHARED_TOL = 1e-3
#: The answer before (or instead of) a peel: no sample, the whole gradient unexplained.
NOTHING_PEELED = Peeled((), 1.0, 0, 0)


def _counts(mass: np.ndarray | None, family: str, num_samples: int):
    """Integer counts (hard, smoothing) and the eps the smoothing line search found."""
    if mass is None or family not in ("hard", "smoothing"):
        return None, {}
    if family == "hard":
        return torch.from_numpy(hard_counts(mass, num_samples)), {}
    counts, eps = smoothing_counts(mass, num_samples)
    return torch.from_numpy(counts), {"eps": eps}


def class_mean_mass(problem: BatchProblem) -> np.ndarray | None:
    """sum_b y_b = B mean_b p_b - factor * dL/db with mean p from class-mean features
    (`label_mass.mean_probs`, iLRG's estimate); None without a bias."""
    if not problem.has_bias:
        return None
    factor = reduction_factor(problem.reduction, problem.num_samples)
    mean = mean_probs(
        problem.weight,
        problem.bias,
        problem.weight_grad,
        problem.bias_grad,
        problem.num_samples,
        factor,
    )
    return problem.num_samples * mean - factor * problem.bias_grad


def _shared_reason(samples, family: str) -> tuple[str, dict]:
    """A batch-wide label parameter must be shared: one eps (smoothing), one lam (mixup)."""
    labels = np.stack([sample.soft_label for sample in samples])
    if family == "smoothing":
        eps = np.array([FAMILIES["smoothing"].read_params(label)["eps"] for label in labels])
        if np.ptp(eps) > SHARED_TOL:
            return (
                f"the samples' eps differ (from {eps.min():.3g} to {eps.max():.3g}): not one "
                "batch's label smoothing"
            ), {}
        return "", {"eps": float(eps.mean())}
    if family == "mixup":
        top = np.sort(labels, axis=1)[:, -2:]
        mixed = top[:, 0] > SHARED_TOL  # a sample mixed with its own class is a hard label
        weights = top[mixed, 1] / top[mixed].sum(axis=1)
        if mixed.any() and np.ptp(weights) > SHARED_TOL:
            return (
                f"the samples' mixup weights differ (from {weights.min():.3g} to "
                f"{weights.max():.3g}): not one batch's mixup"
            ), {}
        lam = float(weights.mean()) if mixed.any() else float("nan")
        return "", {"lam": lam, "self_mixed": int((~mixed).sum())}
    return "", {}


def _narrowest(samples) -> str:
    """``family="auto"``: the narrowest family every recovered label belongs to (hard, then
    smoothing, then mixup), so the estimate names what fitted."""
    labels = np.stack([sample.soft_label for sample in samples])
    if (labels.max(axis=1) > 1.0 - SHARED_TOL).all():
        return "hard"
    smoothing = FAMILIES["smoothing"]
    rebuilt = []
    for label in labels:
        eps = float(np.clip(smoothing.read_params(label)["eps"], 0.0, 1.0))
        target = int(label.argmax())
        rebuilt.append(smoothing.make(label.shape[0], target=target, eps=eps).probabilities)
    gap = np.abs(np.stack([row.numpy() for row in rebuilt]) - labels).sum(axis=1)
    return "smoothing" if (gap < SHARED_TOL).all() else "mixup"


@BATCH_METHODS.register("batch-search")
@dataclass(frozen=True)
class BatchSearch:
    """Ours: every sample's soft label and feature from per-sample roots, peeled (docs/batch.md).

    Refuses (``converged=False``, the bound named) beyond `batch_identifiability`; the label
    mass is exact when every sample is recovered, else iLRG's class-mean estimate
    (`class_mean_mass`; known scale only: at an unknown one the bias gradient's scale is
    unknown too).
    """

    families: ClassVar[tuple[str, ...]] = BATCH_FAMILIES
    seed: int = 0

    def estimate(self, problem: BatchProblem, family: str) -> BatchEstimate:
        count = batch_identifiability(
            problem.num_classes, family, problem.num_samples, bias=problem.has_bias
        )
        bound = batch_bound(problem.num_classes, family, bias=problem.has_bias)
        peeled = NOTHING_PEELED
        reason = count.reason
        if not reason:
            reason, peeled = self._peel(problem, family)
        params: dict = {}
        named = family
        if peeled.samples and not reason:
            named = _narrowest(peeled.samples) if family == "auto" else family
            reason, params = _shared_reason(peeled.samples, named)
        unverified = len(peeled.samples) if reason else 0
        if reason:
            # A peeled atom is vouched for only by the whole: one wrong atom corrupts the rest,
            # so roots of a batch that did not explain its gradient are not reported.
            peeled = Peeled((), peeled.remainder, peeled.ambiguous, peeled.passes)
        samples = peeled.samples
        labels = [sample.soft_label for sample in samples]
        if samples:
            mass = np.sum(labels, axis=0)  # every sample recovered: the mass is exact
        else:
            mass = class_mean_mass(problem) if problem.scale == "known" else None
        counts, found = _counts(mass, family, problem.num_samples)
        width = problem.weight.shape[1]
        return BatchEstimate(
            soft_labels=as_tensor(labels, problem.num_classes),
            features=as_tensor([sample.feature for sample in samples], width),
            num_samples=problem.num_samples,
            converged=not reason,
            reason=reason,
            residuals=torch.tensor([sample.residual for sample in samples], dtype=torch.float64),
            weights=torch.tensor([sample.weight for sample in samples], dtype=torch.float64),
            label_mass=None if mass is None else torch.from_numpy(mass),
            counts=counts,
            bound=bound,
            family=family if reason else named,
            method="batch-search",
            family_params={**found, **params},
            diagnostics={
                "precision": problem.precision,
                "remainder": peeled.remainder,
                "ambiguous_roots": peeled.ambiguous,
                "passes": peeled.passes,
                "unverified_roots": unverified,
                "equations": count.equations,
                "unknowns": len(count.unknowns),
            },
        )

    def _peel(self, problem: BatchProblem, family: str) -> tuple[str, Peeled]:
        batch = problem.num_samples
        singular = problem.singular / problem.singular[0]
        if singular.size > batch and singular[batch] > 1e-3:
            return (
                f"the gradient has rank above num_samples={batch} (sigma_{batch + 1} / sigma_1 = "
                f"{singular[batch]:.1e}): not one step on {batch} samples (noise, several local "
                "steps, or a larger batch)"
            ), NOTHING_PEELED
        if singular[batch - 1] <= ROOT_FACTOR * max(problem.noise, EXACT):
            return (
                f"the gradient has rank below num_samples={batch} (sigma_{batch} / sigma_1 = "
                f"{singular[batch - 1]:.1e}, within {ROOT_FACTOR:g}x its measured noise "
                f"{problem.noise:.1e}): some samples' gradients vanish (saturated, or repeated "
                "inputs)"
            ), NOTHING_PEELED
        # A weak batch (its weakest atom within ROOT_FACTOR x the dtype's precision, above its
        # measured noise): the peel's tolerances cannot tell that atom from a wrong one, so
        # what it peels must also stand as a joint fit to the measured noise.
        verify = bool(singular[batch - 1] <= ROOT_FACTOR * problem.precision)
        weight, gradient = problem.augmented
        flat = problem.scale == "unknown" and not problem.has_bias and family != "hard"
        peeled = peel(
            weight,
            gradient,
            batch,
            family=family,
            bias=problem.has_bias,
            precision=problem.precision,
            noise=problem.noise,
            flat_check=flat,
            verify=verify,
            seed=self.seed,
        )
        if peeled.refused:
            return peeled.refused, peeled
        found = len(peeled.samples)
        if found < batch:
            more = (
                f"; {peeled.ambiguous} root(s) refused as not pinned by the gradient (a flat or "
                "saturated softmax, or samples sharing a label in a nearly linear one)"
                if peeled.ambiguous
                else ""
            )
            return (
                f"incomplete peel: {found} of {batch} samples, then no further root of the "
                f"{family} family fits (the rest leaves {peeled.remainder:.1e} of the gradient "
                "unexplained), so "
                f"none is reported: a wrong atom would explain the misfit as well{more}"
            ), peeled
        if peeled.remainder > CONSISTENT * problem.precision:
            return (
                f"the {batch} recovered atoms leave {peeled.remainder:.1e} of the gradient "
                "unexplained: not jointly consistent"
            ), peeled
        remixed = remix_reason(peeled.samples, problem.weight, problem.bias, problem.noise, family)
        if remixed:
            return remixed, peeled
        if problem.scale == "known":
            expected = 1.0 / reduction_factor(problem.reduction, batch)
            weights = np.array([sample.weight for sample in peeled.samples])
            off = float(np.abs(weights / expected - 1.0).max())
            if off > 1e-3:
                return (
                    f"at a known scale every atom's weight must be {expected:.4g}; the recovered "
                    f"ones are off by up to {off:.1e} (clipping or an unknown learning rate: use "
                    "scale='unknown')"
                ), peeled
        return "", peeled


@BATCH_METHODS.register("ilrg")
@dataclass(frozen=True)
class Ilrg:
    """iLRG's label counts (Ma et al., ICLR 2023): B (mean p - dL/db) with mean p from class-mean
    features (`label_mass.mean_probs`). Needs a classifier bias; hard-label counts only."""

    families: ClassVar[tuple[str, ...]] = ("auto", "hard")

    def estimate(self, problem: BatchProblem, family: str) -> BatchEstimate:
        bound = batch_bound(problem.num_classes, family, bias=problem.has_bias)
        mass = class_mean_mass(problem)
        reason = "" if mass is not None else "iLRG needs a classifier bias"
        return _counts_only(problem, family, "ilrg", mass, reason, bound)


@BATCH_METHODS.register("llg")
@dataclass(frozen=True)
class LlgCounts:
    """LLG's batch counts (Wainakh et al., PoPETs 2022) from the weight-gradient row sums."""

    families: ClassVar[tuple[str, ...]] = ("auto", "hard")

    def estimate(self, problem: BatchProblem, family: str) -> BatchEstimate:
        targets, _impact = llg_targets(problem.weight_grad.sum(axis=1), problem.num_samples)
        mass = np.bincount(targets, minlength=problem.num_classes).astype(np.float64)
        bound = batch_bound(problem.num_classes, family, bias=problem.has_bias)
        return _counts_only(problem, family, "llg", mass, "", bound)


def _counts_only(problem, family, method, mass, reason, bound) -> BatchEstimate:
    counts = None if mass is None else torch.from_numpy(hard_counts(mass, problem.num_samples))
    empty = torch.zeros(0, dtype=torch.float64)
    return BatchEstimate(
        soft_labels=None,
        features=None,
        num_samples=problem.num_samples,
        converged=False,
        reason=reason or "counts only: this method recovers no per-sample label",
        residuals=empty,
        weights=empty,
        label_mass=None if mass is None else torch.from_numpy(mass),
        counts=counts,
        bound=bound,
        family=family,
        method=method,
    )
