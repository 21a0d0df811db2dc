"""One trial of the paper's protocol: an input and its label, drawn for a family.

Paper: Wang, Liang & He, ICLR 2024, Sec. 5.1 (smoothing eps ~ U(0, 0.5) with the image's
class; mixup of two images of different classes, lam ~ U(0, 1); one-hot for Table 1).
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

from gradleak.data import ImageSet
from gradleak.families.base import FAMILIES, SoftLabel


def draw_trial(
    family: str, images: ImageSet, num_classes: int, rng: np.random.Generator
) -> tuple[Tensor, SoftLabel]:
    """One attacked input (normalised) and its label, as ``family``'s protocol draws them.

    Every dataset label must lie in 0..num_classes-1 (labels are never wrapped onto fewer
    classes). Shapes: returns (C, H, W) and a (num_classes,) label.
    """
    drawer = FAMILIES[family]
    classes = images.labels.numpy()
    if len(classes) and (classes.min() < 0 or classes.max() >= num_classes):
        bad = int(classes.max() if classes.max() >= num_classes else classes.min())
        raise ValueError(
            f"dataset {images.name!r} has label {bad}, outside 0..{num_classes - 1} "
            f"(num_classes = {num_classes})"
        )
    first = int(rng.integers(len(classes)))
    inputs, label = drawer.draw(images.images, classes, first, num_classes, rng)
    return images.normalise(inputs), label
