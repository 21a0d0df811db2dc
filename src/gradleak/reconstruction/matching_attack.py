"""The part every gradient-matching attack shares: settings, inputs, build, run the loop.

Subclasses (`dlg`, `inverting-gradients`) only choose their default `MatchingSettings` and
whether a label must be given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import nn

from gradleak.client.observation import GradientObservation
from gradleak.reconstruction.attack_inputs import (
    LabelInput,
    input_shape_of,
    pixel_box,
    resolve_label,
)
from gradleak.reconstruction.matching import build_problem, run_matching
from gradleak.reconstruction.matching_settings import MatchingSettings, with_overrides
from gradleak.reconstruction.result import Reconstruction, refusal
from gradleak.recovery.batch.estimate import BatchEstimate

#: What a gradient-matching attack takes besides `MatchingSettings` fields.
_OWN_PARAMETERS = ("settings", "image_mean", "image_std", "input_shape")


class GradientMatchingAttack:
    """Holds `MatchingSettings` plus the pixel statistics and input shape of the client data.

    ``settings`` replaces the attack's ``defaults``; keyword ``overrides`` (any
    `MatchingSettings` field: ``iterations=``, ``tv_weight=``...) then replace single fields.
    ``image_mean``/``image_std`` keep the dummy inside the valid pixel box (Adam only);
    ``input_shape`` defaults to the model's recorded architecture.
    """

    key: str
    needs_label: ClassVar[bool] = False
    defaults: ClassVar[MatchingSettings] = MatchingSettings()

    def __init__(
        self,
        *,
        settings: MatchingSettings | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        input_shape: Sequence[int] | None = None,
        **overrides: Any,
    ) -> None:
        base = self.defaults if settings is None else settings
        if not isinstance(base, MatchingSettings):
            raise ValueError(f"settings must be a MatchingSettings, got {type(base).__name__}")
        where = f"attack {self.key!r}"
        self.settings = with_overrides(base, overrides, where=where, also=_OWN_PARAMETERS)
        self.image_mean, self.image_std, self.input_shape = image_mean, image_std, input_shape

    def run(
        self, observation: GradientObservation, model: nn.Module, *, labels: LabelInput = None
    ) -> Reconstruction:
        batch = observation.num_samples
        shape = input_shape_of(model, self.input_shape, batch_size=batch)
        if isinstance(labels, BatchEstimate) and not labels.converged:
            return refusal(
                shape,
                self.key,
                f"the batch label recovery did not converge ({labels.reason}): no labels to "
                "reconstruct the batch with",
            )
        label, feature = resolve_label(labels, need_feature=self.settings.feature_weight > 0)
        if label is None and self.needs_label:
            raise ValueError(
                f"{self.key} needs labels (a LabelEstimate or an oracle label); "
                "use attack='dlg' to optimise the label jointly"
            )
        dtype = next(model.parameters()).dtype
        problem = build_problem(
            observation,
            model,
            input_shape=shape,
            label=label,
            feature=feature,
            bounds=pixel_box(self.image_mean, self.image_std, dtype),
        )
        return run_matching(problem, self.settings, attack=self.key)
