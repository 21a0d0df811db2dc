"""The part every gradient-matching attack shares: settings, inputs, build, run the loop.

Subclasses (`dlg`, `inverting-gradients`) only choose their default `MatchingSettings` and
whether a label must be given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
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
from gradleak.reconstruction.matching_settings import (
    MatchingSettings,
    auto_progress,
    with_overrides,
)
from gradleak.reconstruction.result import Reconstruction, refusal
from gradleak.recovery.batch.estimate import BatchEstimate

#: What a gradient-matching attack takes besides `MatchingSettings` fields.
_OWN_PARAMETERS = ("settings", "image_mean", "image_std", "input_shape")


class GradientMatchingAttack:
    """Holds `MatchingSettings` plus the pixel statistics and input shape of the client data.

    ``settings`` replaces the attack's ``defaults``; keyword ``overrides`` (any
    `MatchingSettings` field: ``iterations=``, ``tv_weight=``...) then replace single fields.
    ``progress``: True / False shows / hides a progress bar (tqdm, on stderr); None keeps
    ``settings.progress`` when ``settings`` is given, else shows one for a long run
    (`auto_progress`: iterations x restarts >= `AUTO_PROGRESS_STEPS`, on a terminal or in
    Jupyter). ``image_mean``/``image_std`` keep the dummy inside the valid pixel box (Adam
    only); ``input_shape`` defaults to the model's recorded architecture.
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
        progress: bool | None = None,
        **overrides: Any,
    ) -> None:
        base = self.defaults if settings is None else settings
        if not isinstance(base, MatchingSettings):
            raise ValueError(f"settings must be a MatchingSettings, got {type(base).__name__}")
        if progress is not None and not isinstance(progress, bool):
            raise ValueError(f"progress must be True, False or None, got {progress!r}")
        where = f"attack {self.key!r}"
        chosen = with_overrides(base, overrides, where=where, also=_OWN_PARAMETERS)
        if progress is None and settings is None:
            progress = auto_progress(chosen.iterations * chosen.restarts)
        self.settings = chosen if progress is None else replace(chosen, progress=progress)
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
