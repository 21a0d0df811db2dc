"""CIFAR-10 and CIFAR-100 from their "python version" folders, unpickled safely.

The folders are the official archives, extracted: ``cifar-10-batches-py`` (``data_batch_1`` to
``data_batch_5``, ``test_batch``, ``batches.meta``) and ``cifar-100-python`` (``train``,
``test``, ``meta``). Each batch is a Python 2 pickle of a dict with bytes keys: ``b"data"``, a
uint8 (N, 3072) array (1024 red, 1024 green, 1024 blue values of a 32x32 image, row-major), and
``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100), lists of N ints.

Paper: Krizhevsky, "Learning multiple layers of features from tiny images", tech. report, 2009.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradleak.data.embedded import EMBEDDED, ImageSet
from gradleak.data.locate import ROOT, find_file, require_folder
from gradleak.data.pixels import resize_square, unit_images
from gradleak.data.safe_pickle import load_pickle
from gradleak.parameter_hints import MissingDataError

SPLITS = ("train", "test")
_SIDE = 32


@dataclass(frozen=True)
class CifarLayout:
    """Where one CIFAR variant keeps its batches and which keys its pickles use.

    Shapes: ``mean``, ``std`` (3,).
    """

    name: str
    folder: str
    archive: str
    batches: dict[str, tuple[str, ...]]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


CIFAR10 = CifarLayout(
    name="cifar10",
    folder="cifar-10-batches-py",
    archive="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    batches={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    num_classes=10,
    mean=EMBEDDED["embedded-cifar10"][3],
    std=EMBEDDED["embedded-cifar10"][4],
)
CIFAR100 = CifarLayout(
    name="cifar100",
    folder="cifar-100-python",
    archive="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    batches={"train": ("train",), "test": ("test",)},
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    num_classes=100,
    mean=EMBEDDED["embedded-cifar100"][3],
    std=EMBEDDED["embedded-cifar100"][4],
)


def load_cifar(
    layout: CifarLayout,
    root: Path | None,
    *,
    split: str,
    image_size: int | None,
    limit: int | None,
) -> ImageSet:
    """Load one split of a CIFAR variant; ``gradleak.data.load`` validates the arguments.

    ``root`` is the extracted folder itself or its parent. Train batches are read in order
    until ``limit`` samples are in hand. Class names come from the meta file when present.

    Shapes: ``images`` (N, 3, S, S) with S = ``image_size`` or 32; ``labels`` (N,).
    """
    folder = _folder(layout, root)
    source = _source(layout)
    pixels, labels = [], []
    for stem in layout.batches[split]:
        if limit is not None and sum(map(len, labels)) >= limit:
            break
        path = find_file(folder, (stem,), dataset=layout.name, source=source)
        batch_pixels, batch_labels = _read_batch(path, layout)
        pixels.append(batch_pixels)
        labels.append(batch_labels)
    images = unit_images(np.concatenate(pixels)[:limit].reshape(-1, 3, _SIDE, _SIDE))
    meta = folder / layout.meta_file
    return ImageSet(
        name=layout.name,
        images=images if image_size is None else resize_square(images, image_size),
        labels=torch.from_numpy(np.concatenate(labels)[:limit]),
        num_classes=layout.num_classes,
        mean=layout.mean,
        std=layout.std,
        class_names=_class_names(meta, layout) if meta.is_file() else None,
    )


def _source(layout: CifarLayout) -> str:
    return f"Download {layout.archive} yourself and extract it (it holds {layout.folder}/)"


def _folder(layout: CifarLayout, root: Path | None) -> Path:
    if root is None:
        raise MissingDataError(
            f"{layout.name} needs root: the folder {layout.folder} or the folder holding it. "
            f"{_source(layout)}; then pass its folder with ",
            ROOT,
            ". Nothing is downloaded.",
        )
    nested = root / layout.folder
    return require_folder(
        nested if nested.is_dir() else root,
        dataset=layout.name,
        layout=f"{layout.folder}/ with {', '.join(sum(layout.batches.values(), ()))}",
        source=_source(layout),
    )


def _field(batch: dict[Any, Any], key: str, path: Path) -> Any:
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise ValueError(f"{path}: the pickled dict has no {key!r} entry")


def _read_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    batch = load_pickle(path)
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    pixels = _field(batch, "data", path)
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 2
        or pixels.shape[1] != 3 * _SIDE * _SIDE
    ):
        raise ValueError(f"{path}: 'data' must be a uint8 (N, 3072) array")
    labels = np.asarray(_field(batch, layout.label_key, path))
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: {layout.label_key!r} must be a list of ints")
    if len(labels) != len(pixels):
        raise ValueError(
            f"{path}: {len(pixels)} images but {len(labels)} {layout.label_key!r}; "
            "the counts must match"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise ValueError(f"{path}: labels must lie in 0..{layout.num_classes - 1}")
    return pixels, labels.astype(np.int64)


def _class_names(path: Path, layout: CifarLayout) -> tuple[str, ...]:
    meta = load_pickle(path)
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(meta).__name__}")
    names = _field(meta, layout.names_key, path)
    if not isinstance(names, list) or len(names) != layout.num_classes:
        raise ValueError(f"{path}: {layout.names_key!r} must list {layout.num_classes} names")
    if not all(isinstance(name, bytes | str) for name in names):
        raise ValueError(f"{path}: {layout.names_key!r} must hold strings")
    return tuple(name.decode() if isinstance(name, bytes) else name for name in names)
