"""Deep leakage from gradients: Euclidean gradient distance, L-BFGS, label optimised jointly.

The baseline of the paper's Table 3 ("DLG"): the dummy label starts random and is learned
with the dummy input. Given ``labels``, the label is fixed instead.

Paper: Zhu, Liu & Han, "Deep Leakage from Gradients", NeurIPS 2019.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradleak.reconstruction.matching import MatchingSettings
from gradleak.reconstruction.matching_attack import GradientMatchingAttack
from gradleak.reconstruction.registry import register


@register("dlg")
class DeepLeakage(GradientMatchingAttack):
    """Euclidean distance, L-BFGS (lr 1, strong-Wolfe line search), random restarts.

    ``iterations`` counts L-BFGS steps (each with its line search). ``labels=None`` (the
    default use) optimises softmax(label logits) jointly; the learned label is returned in
    ``diagnostics["label"]``.
    """

    def __init__(
        self,
        *,
        iterations: int = 300,
        restarts: int = 1,
        learning_rate: float = 1.0,
        tv_weight: float = 0.0,
        seed: int = 0,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        input_shape: Sequence[int] | None = None,
        progress: bool = False,
    ) -> None:
        settings = MatchingSettings(
            distance="euclidean",
            optimiser="lbfgs",
            iterations=iterations,
            restarts=restarts,
            learning_rate=learning_rate,
            tv_weight=tv_weight,
            seed=seed,
            progress=progress,
        )
        super().__init__(
            settings, image_mean=image_mean, image_std=image_std, input_shape=input_shape
        )
