"""Name -> loader registry for datasets: one ``load(name, root, ...)`` for every source.

Each entry says which splits it has and which function reads it; ``load`` validates the
arguments once, here, so loaders can trust them. Keys are kebab-case and are the names used in
configs, CLI flags and records.

Shapes: every loader returns an ``ImageSet`` with ``images`` (N, C, H, W) float32 in [0, 1]
and ``labels`` (N,) int64.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from gradleak.data import cifar, fashion_mnist, image_folder
from gradleak.data.embedded import EMBEDDED, ImageSet, load_embedded_split
from gradleak.registry import Registry

#: ``loader(root, *, split, image_size, limit) -> ImageSet``; ``root`` is ``None`` or a Path.
Loader = Callable[..., ImageSet]

#: Smallest ``image_size`` accepted (the smallest side the model zoo handles).
MIN_IMAGE_SIZE = 8


@dataclass(frozen=True)
class DatasetSpec:
    """A registered loader, the splits it serves and a one-line description.

    Shapes: not applicable.
    """

    loader: Loader
    splits: tuple[str, ...]
    summary: str


_SPECS = {
    **{
        name: DatasetSpec(
            partial(load_embedded_split, name),
            ("test",),
            f"20 {name.removeprefix('embedded-')} test images shipped in foolbox (no root)",
        )
        for name in EMBEDDED
    },
    "fashion-mnist": DatasetSpec(
        fashion_mnist.load_fashion_mnist,
        fashion_mnist.SPLITS,
        f"Fashion-MNIST idx files (default root {fashion_mnist.DEFAULT_ROOT})",
    ),
    "cifar10": DatasetSpec(
        partial(cifar.load_cifar, cifar.CIFAR10),
        cifar.SPLITS,
        "CIFAR-10 python folder cifar-10-batches-py (root required)",
    ),
    "cifar100": DatasetSpec(
        partial(cifar.load_cifar, cifar.CIFAR100),
        cifar.SPLITS,
        "CIFAR-100 python folder cifar-100-python (root required)",
    ),
    "image-folder": DatasetSpec(
        image_folder.load_image_folder,
        image_folder.SPLITS,
        "root/<class_name>/<images>, optionally under train/, val/, test/ (root required)",
    ),
}

#: Every dataset, by key.
DATASETS: Registry[DatasetSpec] = Registry("dataset")
for _key, _spec in _SPECS.items():
    DATASETS.add(_key, _spec)


def names() -> list[str]:
    """Sorted list of registered dataset names.

    Shapes: not applicable.
    """
    return sorted(DATASETS)


def spec(name: str) -> DatasetSpec:
    """The registry entry of dataset ``name`` (its splits and summary), for CLIs and docs.

    Shapes: not applicable.
    """
    return DATASETS[name]


def load(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    split: str = "test",
    image_size: int | None = None,
    limit: int | None = None,
) -> ImageSet:
    """Load ``split`` of dataset ``name`` from the local folder ``root``; never downloads.

    ``root=None`` means the dataset's default location (the Debian package folder for
    Fashion-MNIST, the foolbox package for embedded sets); CIFAR and image folders need it.
    ``image_size`` resizes to a square side (default: the dataset's native size, 224 for image
    folders). ``limit`` keeps the first ``limit`` samples in file order.

    Shapes: ``images`` (N, C, image_size, image_size) float32 in [0, 1]; ``labels`` (N,) int64;
    ``mean``, ``std`` (C,).
    """
    entry = spec(name)
    if split not in entry.splits:
        raise ValueError(f"split={split!r} is not a split of {name}; choose one of {entry.splits}")
    if image_size is not None and image_size < MIN_IMAGE_SIZE:
        raise ValueError(f"image_size must be >= {MIN_IMAGE_SIZE} pixels, got {image_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 sample (or None for all), got {limit}")
    return entry.loader(
        None if root is None else Path(root), split=split, image_size=image_size, limit=limit
    )
