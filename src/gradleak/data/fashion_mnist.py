"""Fashion-MNIST from its idx files: 28x28 grey images of 10 clothing classes.

Default location is ``/usr/share/datasets/fashion-mnist``, filled by the Debian package
``dataset-fashion-mnist``; any folder holding the four idx files (gzipped or not) works.

Paper: Xiao, Rasul & Vollgraf, "Fashion-MNIST: a novel image dataset for benchmarking machine
learning algorithms", arXiv:1708.07747, 2017.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gradleak.data.embedded import ImageSet
from gradleak.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from gradleak.data.locate import find_file, require_folder
from gradleak.data.pixels import resize_square, unit_images

DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
SPLITS = ("train", "test")
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Published per-channel statistics of the 60000 training images.
MEAN, STD = (0.2860,), (0.3530,)

#: Split -> (images file stem, labels file stem).
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_SIDE = 28
_LAYOUT = "the idx files " + ", ".join(f"{stem}.gz" for pair in _FILES.values() for stem in pair)
_SOURCE = (
    "Install the Debian package dataset-fashion-mnist (it fills "
    f"{DEFAULT_ROOT}) or copy the four files from the Fashion-MNIST release "
    "(github.com/zalandoresearch/fashion-mnist, data/fashion) into a folder"
)


def load_fashion_mnist(
    root: Path | None, *, split: str, image_size: int | None, limit: int | None
) -> ImageSet:
    """Load one split of Fashion-MNIST; ``gradleak.data.load`` validates the arguments.

    ``limit`` keeps the first samples (before resizing, so it also saves time).

    Shapes: ``images`` (N, 1, S, S) with S = ``image_size`` or 28; ``labels`` (N,).
    """
    folder = require_folder(
        DEFAULT_ROOT if root is None else root,
        dataset="fashion-mnist",
        layout=f"{_LAYOUT} (gzipped or not)",
        source=_SOURCE,
    )
    images_stem, labels_stem = _FILES[split]
    images_path = _idx_file(folder, images_stem)
    labels_path = _idx_file(folder, labels_stem)
    pixels = read_idx(images_path, magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, magic=LABELS_MAGIC)
    if pixels.shape[1:] != (_SIDE, _SIDE):
        raise ValueError(f"{images_path}: images are {pixels.shape[1:]}, expected (28, 28)")
    if len(pixels) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(pixels)} images but {labels_path} holds "
            f"{len(labels)} labels; the counts must match"
        )
    if len(labels) and int(labels.max()) >= len(CLASS_NAMES):
        raise ValueError(f"{labels_path}: label {int(labels.max())} is outside 0..9")
    pixels, labels = pixels[:limit, np.newaxis], labels[:limit]
    images = unit_images(pixels)
    return ImageSet(
        name="fashion-mnist",
        images=images if image_size is None else resize_square(images, image_size),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=len(CLASS_NAMES),
        mean=MEAN,
        std=STD,
        class_names=CLASS_NAMES,
    )


def _idx_file(folder: Path, stem: str) -> Path:
    return find_file(folder, (f"{stem}.gz", stem), dataset="fashion-mnist", source=_SOURCE)
