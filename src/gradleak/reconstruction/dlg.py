"""Deep leakage from gradients: Euclidean gradient distance, L-BFGS, label optimised jointly.

The baseline of the paper's Table 3 ("DLG"): the dummy label starts random and is learned
with the dummy input. Given ``labels``, the label is fixed instead.

Paper: Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019.
"""

from __future__ import annotations

from typing import ClassVar

from gradleak.reconstruction.matching_attack import GradientMatchingAttack
from gradleak.reconstruction.matching_settings import MatchingSettings
from gradleak.reconstruction.registry import register


@register("dlg")
class DeepLeakage(GradientMatchingAttack):
    """Euclidean distance, L-BFGS (lr 1, strong-Wolfe line search), 300 steps, one start.

    Built like every gradient-matching attack: ``settings=`` and/or `MatchingSettings` field
    overrides (``iterations=`` counts L-BFGS steps, each with its line search), plus
    ``image_mean``, ``image_std`` and ``input_shape``. ``labels=None`` (the default use)
    optimises softmax(label logits) jointly; the learned label is returned in
    ``diagnostics["label"]``.

    Shapes: returns ``inputs`` (B, C, H, W); ``diagnostics["label"]`` (C',) for one input,
    (B, C') for a batch.
    """

    defaults: ClassVar[MatchingSettings] = MatchingSettings(
        distance="euclidean",
        optimizer="lbfgs",
        iterations=300,
        restarts=1,
        learning_rate=1.0,
        tv_weight=0.0,
    )
