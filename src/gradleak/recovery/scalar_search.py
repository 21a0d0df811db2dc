"""The paper's method as registered recoveries: closed form with a bias, scalar search without.

``fast-search`` (ours, default) and ``paper-search`` (the paper's L-BFGS and particle swarm,
reimplemented without the ground truth) share everything but the 1-D search.
Paper: Wang, Liang & He, ICLR 2024, Sec. 4.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from torch import Tensor

from gradleak.client.observation import GradientObservation
from gradleak.recovery.analytic import DEFAULT_TOL, auto_estimate, bias_estimate, search_estimate
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.last_layer import (
    DEFAULT_RANK_TOL,
    SCALE_MODES,
    NotSingleInputError,
    check_rank_tol,
    prepare,
)
from gradleak.recovery.registry import ATTACK_FAMILIES, METHODS, check_family


@dataclass(frozen=True)
class ScalarSearch:
    """Recover soft label and feature from one input's last-layer gradient.

    ``scale`` is "unknown" (the default: a server never knows that nothing rescaled the
    update, so the gradient scale k is fitted, which needs one more class) or "known" (the
    paper's exact-gradient setting). ``tol`` caps the relative family residual that counts as
    a fit (the threshold used is min(tol, 10x the gradient's rounding floor)); ``rank_tol``
    bounds the distance of dL/dW from rank one (None skips that check); ``seed`` seeds the
    paper search's particle swarm.
    """

    key: ClassVar[str]
    families: ClassVar[tuple[str, ...]] = ATTACK_FAMILIES

    scale: str = "unknown"
    tol: float = DEFAULT_TOL
    rank_tol: float | None = DEFAULT_RANK_TOL
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.tol, bool) or not isinstance(self.tol, int | float):
            raise ValueError(f"tol must be a number in (0, 1), got {self.tol!r}")
        if not 0 < self.tol < 1:
            raise ValueError(f"tol must be in (0, 1), got {self.tol}")
        check_rank_tol(self.rank_tol)
        if self.scale not in SCALE_MODES:
            raise ValueError(f"scale must be one of {', '.join(SCALE_MODES)}, got {self.scale!r}")

    def from_last_layer(
        self,
        weight: Tensor,
        weight_grad: Tensor,
        bias: Tensor | None = None,
        bias_grad: Tensor | None = None,
        *,
        family: str = "auto",
        precision: float | None = None,
    ) -> LabelEstimate:
        check_family(self.key, family)
        problem = prepare(
            weight,
            weight_grad,
            bias,
            bias_grad,
            rank_tol=self.rank_tol,
            scale=self.scale,
            precision=precision,
        )
        if problem.sign_like:
            return LabelEstimate.refusal(
                problem.num_classes,
                reason=(
                    "nearly every entry of the weight gradient has one magnitude: a sign-based "
                    "update (Adam's first step, signSGD) that was not declared; the magnitudes "
                    "that identify the label are gone (declare optimizer='adam' in from_update)"
                ),
                method=self.key,
                family=family,
            )
        if problem.bias is not None:
            return bias_estimate(problem, tol=self.tol, family=family, method=self.key)
        if family == "auto":
            return auto_estimate(problem, method=self.key, tol=self.tol, seed=self.seed)
        return search_estimate(problem, family, method=self.key, tol=self.tol, seed=self.seed)

    def recover(self, observation: GradientObservation, *, family: str = "auto") -> LabelEstimate:
        """One input's label; a declared batch is only answered when its gradient is rank one.

        A batch of B > 1 inputs gives a rank-B gradient, refused by the rank check. A rank-one
        gradient despite B > 1 means the inputs share one feature (identical inputs, or all
        but one contributed nothing): the label then recovered is the batch's mean label, not
        any one sample's, so the estimate is returned with ``converged=False`` and says so.
        """
        arrays = (
            observation.weight,
            observation.weight_grad,
            observation.bias,
            observation.bias_grad,
        )
        precision = observation.precision
        if observation.num_samples == 1:
            return self.from_last_layer(*arrays, family=family, precision=precision)
        try:
            estimate = self.from_last_layer(*arrays, family=family, precision=precision)
        except NotSingleInputError as error:
            raise NotSingleInputError(
                f"observation.num_samples is {observation.num_samples}: {error}. The analytic "
                "attack recovers the label of one input; for every sample of a batch use "
                "gradleak.recover_batch(observation)"
            ) from None
        reason = (
            f"observation.num_samples is {observation.num_samples} but the weight gradient is "
            "rank one: the inputs share one feature (identical inputs, or all but one "
            "contributed nothing), so only their mean label is identified, not each sample's"
            + (f"; besides, {estimate.reason}" if estimate.reason else "")
        )
        diagnostics = {**estimate.diagnostics, "declared_num_samples": observation.num_samples}
        return replace(estimate, converged=False, reason=reason, diagnostics=diagnostics)


@METHODS.register("fast-search")
@dataclass(frozen=True)
class FastSearch(ScalarSearch):
    """Ours: a multi-scale grid over t = 1/mu, vectorised Gauss-Newton, a dense fallback."""


@METHODS.register("paper-search")
@dataclass(frozen=True)
class PaperSearch(ScalarSearch):
    """The paper's L-BFGS from +1 then -1 (|mu| <= 100), then a seeded particle swarm."""
