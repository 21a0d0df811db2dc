"""Inverting gradients: cosine gradient distance, Adam, total variation, restarts.

With ``labels=estimate`` the dummy's label is the recovered soft label ("ours"); with
``feature_weight > 0`` the dummy's last-layer input is also pulled toward the recovered
feature ("ours + feature", Wang, Liang & He, ICLR 2024, Sec. 5.3).

Paper: Geiping, Bauermeister, Droege & Moeller, "Inverting Gradients", NeurIPS 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

from gradleak.reconstruction.matching import MatchingSettings
from gradleak.reconstruction.matching_attack import GradientMatchingAttack
from gradleak.reconstruction.registry import register


@register("inverting-gradients")
class InvertingGradients(GradientMatchingAttack):
    """Cosine distance + TV, Adam (lr 0.1, 10x drops at 3/8, 5/8, 7/8), keep the best iterate.

    Defaults are the paper's Table 3 settings (4800 iterations, 10 restarts, TV 1e-2 for
    untrained and 1e-3 for trained networks). ``image_mean``/``image_std`` keep the dummy
    inside the valid pixel box. The label must be given (estimate or oracle).
    """

    needs_label = True

    def __init__(
        self,
        *,
        iterations: int = 4800,
        restarts: int = 10,
        learning_rate: float = 0.1,
        tv_weight: float = 1e-2,
        feature_weight: float = 0.0,
        seed: int = 0,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        input_shape: Sequence[int] | None = None,
        progress: bool = False,
    ) -> None:
        settings = MatchingSettings(
            distance="cosine",
            optimiser="adam",
            iterations=iterations,
            restarts=restarts,
            learning_rate=learning_rate,
            tv_weight=tv_weight,
            feature_weight=feature_weight,
            seed=seed,
            progress=progress,
        )
        super().__init__(
            settings, image_mean=image_mean, image_std=image_std, input_shape=input_shape
        )
