"""The two public verbs of label recovery."""

from __future__ import annotations

from torch import Tensor

from gradleak.client.observation import GradientObservation
from gradleak.recovery.analytic import DEFAULT_TOL
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.last_layer import DEFAULT_RANK_TOL
from gradleak.recovery.registry import METHODS, check_family
from gradleak.recovery.scalar_search import ScalarSearch
from gradleak.recovery.update_checks import observation_refusal


def recover_from_last_layer(
    weight: Tensor,
    weight_grad: Tensor,
    bias: Tensor | None = None,
    bias_grad: Tensor | None = None,
    *,
    family: str = "auto",
    method: str = "fast-search",
    scale: str = "unknown",
    tol: float = DEFAULT_TOL,
    rank_tol: float | None = DEFAULT_RANK_TOL,
    seed: int = 0,
) -> LabelEstimate:
    """Recover the soft label and feature from a last linear layer's weight and gradient.

    Paper: Wang, Liang & He, ICLR 2024, Sec. 4 (closed form with ``bias``/``bias_grad``; scalar
    search pinned by the label ``family`` without). ``method`` is "fast-search" (ours) or
    "paper-search"; ``scale`` is "unknown" (default: the gradient scale k is fitted, as
    clipping or an unknown learning rate require) or "known" (the paper's exact gradient).
    Shapes: ``weight``, ``weight_grad`` (C, m); ``bias``, ``bias_grad`` (C,).
    Returns a `LabelEstimate`; ``converged=False`` and ``reason`` when no answer is supported
    by the gradient.
    """
    recovery = METHODS.build(method, scale=scale, tol=tol, rank_tol=rank_tol, seed=seed)
    if not isinstance(recovery, ScalarSearch):
        raise ValueError(
            f"method={method!r} needs the whole observation: use recover_label(observation, "
            "method=...); recover_from_last_layer runs fast-search or paper-search"
        )
    return recovery.from_last_layer(weight, weight_grad, bias, bias_grad, family=family)


def recover_label(
    observation: GradientObservation,
    family: str = "auto",
    *,
    method: str = "fast-search",
    **params,
) -> LabelEstimate:
    """Recover the client's label from an observation with a registered method.

    ``method`` is a key of `METHODS` ("fast-search", the default, "paper-search", "idlg",
    "gradinversion", "llg", "nonnegative"); ``params`` are its parameters (``scale``,
    ``tol``, ``rank_tol``, ``seed`` for the searches). ``family`` must be one the method answers
    (``METHODS[method].families``: the one-hot baselines answer "hard" and "auto"). An
    observation marked ``not_identifiable`` (an Adam update, several local steps) is refused
    with that reason by every method (`observation_refusal`).
    """
    check_family(method, family)
    refusal = observation_refusal(observation, method=method, family=family)
    if refusal is not None:
        return refusal
    return METHODS.build(method, **params).recover(observation, family=family)
