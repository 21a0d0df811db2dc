"""The part every gradient-matching attack shares: resolve its inputs, build, run the loop.

Subclasses (`dlg`, `inverting-gradients`) only choose the loop's settings and whether a label
must be given.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from gradleak.client.observation import GradientObservation
from gradleak.reconstruction.attack_inputs import (
    LabelInput,
    input_shape_of,
    pixel_box,
    resolve_label,
)
from gradleak.reconstruction.matching import MatchingSettings, build_problem, run_matching
from gradleak.reconstruction.result import Reconstruction


class GradientMatchingAttack:
    """Holds `MatchingSettings` plus the pixel statistics and input shape of the client data.

    ``image_mean``/``image_std`` keep the dummy inside the valid pixel box (Adam only);
    ``input_shape`` defaults to the model's recorded architecture.
    """

    key: str
    needs_label: bool = False

    def __init__(
        self,
        settings: MatchingSettings,
        *,
        image_mean: Sequence[float] | None,
        image_std: Sequence[float] | None,
        input_shape: Sequence[int] | None,
    ) -> None:
        self.settings = settings
        self.image_mean, self.image_std, self.input_shape = image_mean, image_std, input_shape

    def run(
        self, observation: GradientObservation, model: nn.Module, *, labels: LabelInput = None
    ) -> Reconstruction:
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
            input_shape=input_shape_of(model, self.input_shape),
            label=label,
            feature=feature,
            bounds=pixel_box(self.image_mean, self.image_std, dtype),
        )
        return run_matching(problem, self.settings, attack=self.key)
