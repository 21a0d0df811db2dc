"""The public verbs of batch recovery."""

from __future__ import annotations

from torch import Tensor

from gradleak.client.observation import GradientObservation
from gradleak.recovery.batch.estimate import BatchEstimate
from gradleak.recovery.batch.methods import BATCH_FAMILIES, BATCH_METHODS
from gradleak.recovery.batch.problem import batch_problem


def recover_batch_from_last_layer(
    weight: Tensor,
    weight_grad: Tensor,
    bias: Tensor | None = None,
    bias_grad: Tensor | None = None,
    *,
    num_samples: int,
    family: str = "auto",
    reduction: str = "mean",
    scale: str = "unknown",
    method: str = "batch-search",
    seed: int = 0,
) -> BatchEstimate:
    """Every sample's soft label and feature from one batch's last-layer gradient (docs/batch.md).

    ``num_samples`` is B (Flower clients report it as ``num_examples``); ``family`` one of
    "auto", "hard", "smoothing" (one eps for the batch), "mixup" (one lam, partners by a
    permutation); ``reduction`` the loss's ("mean", PyTorch's default, or "sum"); ``scale``
    "unknown" (per-sample clipping, an unknown learning rate) or "known" (the plain gradient:
    every atom's weight must be 1/B); ``method`` a key of `BATCH_METHODS` ("batch-search",
    ours, or the count baselines "ilrg" and "llg").
    Shapes: ``weight``, ``weight_grad`` (C, m); ``bias``, ``bias_grad`` (C,).
    """
    if method not in BATCH_METHODS:
        raise ValueError(f"method={method!r}: choose one of {', '.join(BATCH_METHODS)}")
    allowed = BATCH_METHODS[method].families
    if family not in allowed:
        raise ValueError(
            f"family={family!r}: {method!r} answers {', '.join(allowed)} (all: "
            f"{', '.join(BATCH_FAMILIES)})"
        )
    problem = batch_problem(
        weight,
        weight_grad,
        bias,
        bias_grad,
        num_samples=num_samples,
        reduction=reduction,
        scale=scale,
    )
    params = {"seed": seed} if method == "batch-search" else {}
    return BATCH_METHODS.build(method, **params).estimate(problem, family)


def recover_batch(
    observation: GradientObservation,
    family: str = "auto",
    *,
    scale: str = "unknown",
    method: str = "batch-search",
    reduction: str = "mean",
    seed: int = 0,
) -> BatchEstimate:
    """`recover_batch_from_last_layer` on an observation's classifier, B = ``num_samples``."""
    return recover_batch_from_last_layer(
        observation.weight,
        observation.weight_grad,
        observation.bias,
        observation.bias_grad,
        num_samples=observation.num_samples,
        family=family,
        reduction=reduction,
        scale=scale,
        method=method,
        seed=seed,
    )
