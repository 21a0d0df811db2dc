"""Real test images that install offline: the 20 per dataset shipped inside ``foolbox==3.3.4``.

The PNG/JPEG files are read from the package's ``data/`` folder without importing foolbox
(its import pulls a framework stack we do not need). The label is in each file name:
``cifar10_03_0.png`` is sample 3 of class 0.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from gradleak.data.image_file import read_square_rgb

#: Dataset key -> (file prefix, classes, default size, per-channel mean, per-channel std).
EMBEDDED = {
    "embedded-cifar10": ("cifar10_", 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "embedded-cifar100": ("cifar100_", 100, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "embedded-imagenet": ("imagenet_", 1000, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclass(frozen=True)
class ImageSet:
    """Images in [0, 1] with integer labels and the dataset's normalisation statistics.

    Every loader returns one, so attacks and models see one shape whatever the source.
    ``mean`` and ``std`` are the dataset's own per-channel statistics (one entry per channel:
    1 for Fashion-MNIST, 3 for RGB sets). ``class_names`` is ``None`` when the source does not
    name its classes.

    Shapes: ``images`` (N, C, H, W) float32; ``labels`` (N,) int64; ``mean``, ``std`` (C,);
    ``class_names`` (num_classes,) when given.
    """

    name: str
    images: Tensor
    labels: Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.images.dim() != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        if self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be ({self.images.shape[0]},) to match images, "
                f"got shape {tuple(self.labels.shape)}"
            )
        channels = self.images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(
                f"mean and std need one entry per channel ({channels}), "
                f"got {len(self.mean)} and {len(self.std)}"
            )
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"class_names must name all num_classes={self.num_classes} classes, "
                f"got {len(self.class_names)}"
            )

    @property
    def in_channels(self) -> int:
        """Channels per image (1 for grey, 3 for RGB): what a model's first layer must accept."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """Side of the (square) images in pixels."""
        return int(self.images.shape[-1])

    def normalise(self, images: Tensor) -> Tensor:
        """Standardise ``images`` with this set's per-channel ``mean`` and ``std``.

        Shapes: ``images`` (N, C, H, W) or (C, H, W) -> same shape.
        """
        if images.dim() not in (3, 4) or images.shape[-3] != len(self.mean):
            raise ValueError(
                f"images must be (N, {len(self.mean)}, H, W) or ({len(self.mean)}, H, W) "
                f"for {self.name}, got shape {tuple(images.shape)}"
            )
        shape = (-1, 1, 1)
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(shape)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(shape)
        return (images - mean) / std


def foolbox_data_folder() -> Path:
    """The ``data/`` folder of the installed foolbox package, located without importing it."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the embedded images come from the foolbox==3.3.4 package; install it with "
            "`pip install foolbox==3.3.4` (gradleak depends on it)"
        )
    return Path(spec.origin).parent / "data"


def load_embedded(name: str, *, image_size: int | None = None) -> ImageSet:
    """Load one embedded dataset at ``image_size`` (default: 32 for CIFAR, 224 for ImageNet)."""
    if name not in EMBEDDED:
        raise ValueError(f"name={name!r} is unknown; choose one of {sorted(EMBEDDED)}")
    prefix, num_classes, default_size, mean, std = EMBEDDED[name]
    if image_size is not None and image_size < 8:
        raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
    size = image_size or default_size
    files = sorted(foolbox_data_folder().glob(f"{prefix}[0-9]*_*.*"))
    if not files:
        raise FileNotFoundError(f"no {prefix}*.png/jpg images in {foolbox_data_folder()}")
    images, labels = [], []
    for path in files:
        images.append(torch.from_numpy(read_square_rgb(path, size, dataset=name)))
        labels.append(int(path.stem.rsplit("_", 1)[1]))
    return ImageSet(
        name=name,
        images=torch.stack(images).permute(0, 3, 1, 2).contiguous(),
        labels=torch.tensor(labels, dtype=torch.int64),
        num_classes=num_classes,
        mean=mean,
        std=std,
    )


def load_embedded_split(
    name: str, root: Path | None, *, split: str, image_size: int | None, limit: int | None
) -> ImageSet:
    """Registry adapter for ``load_embedded``: the images ship inside foolbox, test split only.

    Shapes: ``images`` (N, 3, S, S) with N <= 20; ``labels`` (N,).
    """
    if root is not None:
        raise ValueError(
            f"root must be None for {name}: its images ship inside the foolbox package, got {root}"
        )
    if split != "test":
        raise ValueError(f"split must be 'test' for {name} (20 test images), got {split!r}")
    images = load_embedded(name, image_size=image_size)
    if limit is None:
        return images
    return replace(images, images=images.images[:limit], labels=images.labels[:limit])
