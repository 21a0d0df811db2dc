"""The two public verbs of label recovery."""

from __future__ import annotations

from torch import Tensor

from gradleak.client.observation import GradientObservation
from gradleak.recovery.analytic import DEFAULT_TOL
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.last_layer import DEFAULT_RANK_TOL
from gradleak.recovery.registry import build_method
from gradleak.recovery.scalar_search import ScalarSearch


def recover_from_last_layer(
    weight: Tensor,
    weight_grad: Tensor,
    bias: Tensor | None = None,
    bias_grad: Tensor | None = None,
    *,
    family: str = "auto",
    search: str = "fast",
    tol: float = DEFAULT_TOL,
    rank_tol: float | None = DEFAULT_RANK_TOL,
    seed: int = 0,
) -> LabelEstimate:
    """Recover the soft label and feature from a last linear layer's weight and gradient.

    Paper: Wang, Liang & He, ICLR 2024, Sec. 4 (closed form with ``bias``/``bias_grad``; scalar
    search pinned by the label ``family`` without). Shapes: ``weight``, ``weight_grad`` (C, m);
    ``bias``, ``bias_grad`` (C,). Returns a `LabelEstimate`; ``converged=False`` and ``reason``
    when no answer is supported by the gradient.
    """
    recovery = ScalarSearch(family=family, search=search, tol=tol, rank_tol=rank_tol, seed=seed)
    return recovery.from_last_layer(weight, weight_grad, bias, bias_grad)


def recover_label(
    observation: GradientObservation,
    family: str = "auto",
    *,
    method: str = "scalar-search",
    **params,
) -> LabelEstimate:
    """Recover the client's label from an observation with a registered method.

    ``method="scalar-search"`` (the paper's, default; ``search``, ``tol``, ``rank_tol``,
    ``seed`` pass through) or ``"idlg"`` (hard-label baseline; ``family`` must be "hard" or
    "auto").
    """
    if method == "scalar-search":
        params["family"] = family
    elif family not in ("hard", "auto"):
        raise ValueError(f"method={method!r} recovers hard labels only, got family={family!r}")
    return build_method(method, **params).recover(observation)
