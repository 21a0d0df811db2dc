"""Any folder of images sorted into one subfolder per class: ``root/<class_name>/<image>``.

Classes are the subfolder names in sorted order (indices 0..K-1). A root may hold ``train/``,
``val/`` and ``test/`` subfolders, each laid out the same way. Images are converted to RGB,
their shorter side resized to ``image_size`` and centre-cropped (as the embedded images are).
There are no published statistics, so ``mean`` and ``std`` are measured on the loaded images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gradleak.data.embedded import ImageSet
from gradleak.data.image_file import read_square_rgb
from gradleak.data.locate import ROOT, require_folder
from gradleak.data.pixels import channel_stats
from gradleak.parameter_hints import MissingDataError

SPLITS = ("all", "train", "val", "test")
EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
DEFAULT_IMAGE_SIZE = 224
_SPLIT_FOLDERS = frozenset(SPLITS) - {"all"}
_LAYOUT = "root/<class_name>/<image files> (png, jpg, jpeg, bmp, webp), at least 2 classes"
_SOURCE = "Put one subfolder of images per class there"


def load_image_folder(
    root: Path | None, *, split: str, image_size: int | None, limit: int | None
) -> ImageSet:
    """Load a class-per-subfolder image collection; ``gradleak.data.load`` validates arguments.

    ``split="all"`` reads ``root`` itself. ``"train"``, ``"val"`` and ``"test"`` read the
    subfolder of that name; a root without any such subfolder is one unsplit collection and
    counts as the test split. ``limit`` keeps the first files in (class, file name) order.

    Shapes: ``images`` (N, 3, S, S) with S = ``image_size`` or 224; ``labels`` (N,).
    """
    if root is None:
        raise MissingDataError(
            f"image-folder needs root: a folder laid out as {_LAYOUT}; pass its folder with ", ROOT
        )
    folder = _split_folder(
        require_folder(root, dataset="image-folder", layout=_LAYOUT, source=_SOURCE), split
    )
    class_names = tuple(sorted(p.name for p in folder.iterdir() if _is_class_folder(p)))
    if len(class_names) < 2:
        raise ValueError(
            f"image-folder: {folder} holds {len(class_names)} class folder(s) "
            f"{list(class_names)}; at least 2 are needed ({_LAYOUT})"
        )
    files = [
        (path, index) for index, name in enumerate(class_names) for path in _images(folder / name)
    ]
    files = files[:limit]
    size = image_size or DEFAULT_IMAGE_SIZE
    pixels = np.stack([read_square_rgb(path, size, dataset="image-folder") for path, _ in files])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    mean, std = channel_stats(images)
    return ImageSet(
        name="image-folder",
        images=images,
        labels=torch.tensor([index for _, index in files], dtype=torch.int64),
        num_classes=len(class_names),
        mean=mean,
        std=std,
        class_names=class_names,
    )


def _split_folder(root: Path, split: str) -> Path:
    present = {name for name in _SPLIT_FOLDERS if (root / name).is_dir()}
    if split == "all":
        classes = {p.name for p in root.iterdir() if _is_class_folder(p)}
        if classes and classes <= _SPLIT_FOLDERS:
            raise ValueError(
                f"image-folder: {root} holds split folders {sorted(classes)}, not classes; "
                f"choose split= one of {sorted(classes)}"
            )
        return root
    if split in present:
        return root / split
    if split == "test" and not present:
        return root
    raise MissingDataError(
        f"image-folder: {root / split} not found; the {split!r} split needs that folder, laid "
        f"out as {_LAYOUT} (found split folders: {sorted(present) or 'none'}); pass its folder "
        "with ",
        ROOT,
    )


def _is_class_folder(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".")


def _images(class_folder: Path) -> list[Path]:
    files = sorted(
        p for p in class_folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS
    )
    if not files:
        raise FileNotFoundError(
            f"image-folder: class folder {class_folder} holds no images "
            f"({', '.join(sorted(EXTENSIONS))}); remove it or add its images"
        )
    return files
