"""Inverting gradients: cosine gradient distance, Adam, total variation, restarts.

With ``labels=estimate`` the dummy's label is the recovered soft label ("ours"); with
``feature_weight > 0`` the dummy's last-layer input is also pulled toward the recovered
feature ("ours-feature", Wang, Liang & He, ICLR 2024, Sec. 5.3).

Paper: Geiping, Bauermeister, Droege & Moeller, "Inverting Gradients", NeurIPS 2020.
"""

from __future__ import annotations

from typing import ClassVar

from gradleak.reconstruction.matching_attack import GradientMatchingAttack
from gradleak.reconstruction.matching_settings import MatchingSettings
from gradleak.reconstruction.registry import register


@register("inverting-gradients")
class InvertingGradients(GradientMatchingAttack):
    """Cosine distance + TV, Adam (lr 0.1, 10x drops at 3/8, 5/8, 7/8), keep the best iterate.

    Defaults are the paper's Table 3 settings, `MatchingSettings`' own (4800 iterations, 10
    restarts, TV 1e-2 for untrained and 1e-3 for trained networks); ``settings=`` and/or field
    overrides (``iterations=``, ``tv_weight=``...) change them. ``image_mean``/``image_std``
    keep the dummy inside the valid pixel box. The label must be given (estimate or oracle).

    Shapes: returns ``inputs`` (1, C, H, W).
    """

    needs_label: ClassVar[bool] = True
    defaults: ClassVar[MatchingSettings] = MatchingSettings()
