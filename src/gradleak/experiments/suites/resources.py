"""Per-process caches of datasets and models, so a worker loads each only once."""

from __future__ import annotations

from functools import lru_cache

from torch import nn

import gradleak
from gradleak import data
from gradleak.data import ImageSet


@lru_cache(maxsize=8)
def images(dataset: str, root: str, image_size: int) -> ImageSet:
    """The test split of ``dataset`` (``root``/``image_size`` empty/0 for the defaults)."""
    return data.load(dataset, root or None, split="test", image_size=image_size or None)


@lru_cache(maxsize=4)
def model(
    name: str,
    init: str,
    num_classes: int,
    seed: int,
    channels: int,
    size: int,
    checkpoint: str,
    classifier_bias: bool = False,
) -> nn.Module:
    """A fresh model (seeded) or, with ``checkpoint``, the trained one stored there."""
    if checkpoint:
        return gradleak.models.load(checkpoint)
    return gradleak.models.build(
        name,
        num_classes=num_classes,
        init=init,
        seed=seed,
        in_channels=channels,
        image_size=size,
        classifier_bias=classifier_bias,
    )


def client_setting(case, model_seed: int) -> tuple[ImageSet, nn.Module]:
    """The test images and the attacked model of a case (fields model, init, num_classes,
    dataset, data_root, image_size, checkpoint, and classifier_bias where the case has it),
    the model sized to the images.

    The dataset's class count must equal ``num_classes``: for an image folder this first load
    is the earliest it is known (the others are checked when the config loads).
    """
    test_images = images(case.dataset, case.data_root, case.image_size)
    if test_images.num_classes != case.num_classes:
        raise ValueError(
            f"dataset {case.dataset!r} (data_root {case.data_root!r}) has "
            f"{test_images.num_classes} classes but num_classes = {case.num_classes}; "
            f"set num_classes = {test_images.num_classes}"
        )
    attacked = model(
        case.model,
        case.init,
        case.num_classes,
        model_seed,
        test_images.images.shape[1],
        test_images.images.shape[-1],
        case.checkpoint,
        getattr(case, "classifier_bias", False),
    )
    return test_images, attacked
