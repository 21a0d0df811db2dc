"""Label-recovery benchmark cases: which model, data and label family each setting attacks.

Protocols follow the paper (Wang, Liang & He, ICLR 2024, Sec. 5.1): label smoothing with
eps ~ U(0, 0.5) and the image's class as target; mixup of two images of different classes with
lam ~ U(0, 1); one-hot labels for the iDLG comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gradleak import labels
from gradleak.data import ImageSet
from gradleak.labels import SoftLabel
from gradleak.models import load_checkpoint


@dataclass(frozen=True)
class LabelCase:
    """One benchmark setting. ``samples`` trials; a fresh model seed every ``per_model`` trials.

    With ``checkpoint`` set the case attacks that trained model (one model for every trial) on
    the test split of ``dataset`` (from ``data_root`` when it is not the default folder);
    ``init`` then describes the training ("trained smoothing:0.1").
    """

    model: str
    init: str
    dataset: str
    num_classes: int
    family: str
    samples: int
    per_model: int = 100
    checkpoint: str | None = None
    data_root: str | None = None

    @property
    def name(self) -> str:
        return setting_name(self)


def standard_cases(samples: int, large_samples: int) -> list[LabelCase]:
    """The settings of the issue: LeNet/ResNet18 at C=10 and 100, ResNet50 at C=1000."""
    cases = []
    for family in ("smoothing", "mixup", "hard"):
        for model, init in (("lenet", "uniform"), ("resnet18", "default")):
            for num_classes, dataset in ((10, "embedded-cifar10"), (100, "embedded-cifar100")):
                cases.append(LabelCase(model, init, dataset, num_classes, family, samples))
        cases.append(
            LabelCase("resnet50", "default", "embedded-imagenet", 1000, family, large_samples, 25)
        )
    return cases


def setting_name(case) -> str:
    """A benchmark row's name: "lenet (uniform) C=10 smoothing", with the dataset added for
    trained models ("lenet (trained mixup:1, fashion-mnist) C=10 mixup")."""
    data = f", {case.dataset}" if case.checkpoint else ""
    return f"{case.model} ({case.init}{data}) C={case.num_classes} {case.family}"


def trained_setting(path: Path) -> dict[str, object]:
    """What a trained checkpoint's card says about the setting that attacks it: model, init
    ("trained AUGMENTATION"), dataset, classes and the label family it was trained with (the
    paper's protocol: smoothing-trained models get smoothing labels, and so on)."""
    card = load_checkpoint(path).card
    training, architecture = card["training"], card["architecture"]
    missing = {"dataset", "augmentation", "label_family"} - set(training)
    if missing:
        raise ValueError(f"checkpoint {path} card lacks training facts {sorted(missing)}")
    return {
        "model": architecture["name"],
        "init": f"trained {training['augmentation']}",
        "dataset": training["dataset"],
        "num_classes": architecture["num_classes"],
        "family": training["label_family"],
        "checkpoint": str(path),
    }


def trained_cases(
    checkpoints: list[Path], samples: int, *, data_root: Path | None = None
) -> list[LabelCase]:
    """One case per trained checkpoint, attacked with the label family it was trained with."""
    root = None if data_root is None else str(data_root)
    return [
        LabelCase(**trained_setting(path), samples=samples, data_root=root) for path in checkpoints
    ]


def quick_cases(samples: int) -> list[LabelCase]:
    """A seconds-long twin for CI: LeNet at C=10, every family."""
    return [
        LabelCase("lenet", "uniform", "embedded-cifar10", 10, family, samples)
        for family in ("smoothing", "mixup", "hard")
    ]


def _draw_hard(case, images: ImageSet, classes: np.ndarray, first: int, rng) -> tuple:
    label = labels.one_hot(int(classes[first]), case.num_classes)
    return images.normalise(images.images[first]), label


def _draw_smoothing(case, images: ImageSet, classes: np.ndarray, first: int, rng) -> tuple:
    label = labels.smoothing(int(classes[first]), case.num_classes, float(rng.uniform(0, 0.5)))
    return images.normalise(images.images[first]), label


def _draw_mixup(case, images: ImageSet, classes: np.ndarray, first: int, rng) -> tuple:
    others = np.flatnonzero(classes != classes[first])
    if not len(others):
        raise ValueError(
            f"family = 'mixup' needs images of >= 2 classes; dataset {case.dataset!r} has only "
            f"class {int(classes[first])}"
        )
    other = int(rng.choice(others))
    lam = float(rng.uniform(0, 1))
    mixed = (1 - lam) * images.images[first] + lam * images.images[other]
    label = labels.mixup(int(classes[first]), int(classes[other]), lam, case.num_classes)
    return images.normalise(mixed), label


#: Client label family -> how a trial draws its input and label (the protocols above).
DRAWS = {"hard": _draw_hard, "smoothing": _draw_smoothing, "mixup": _draw_mixup}


def draw_trial(
    case: LabelCase, images: ImageSet, rng: np.random.Generator
) -> tuple[torch.Tensor, SoftLabel]:
    """One attacked input (normalised) and its soft label, as the paper's protocol draws them.

    ``case.family`` must be a key of `DRAWS`, and every dataset label must lie in
    0..num_classes-1 (labels are never wrapped onto fewer classes).
    """
    if case.family not in DRAWS:
        raise ValueError(f"family = {case.family!r} is unknown; choose one of {', '.join(DRAWS)}")
    classes = images.labels.numpy()
    if len(classes) and (classes.min() < 0 or classes.max() >= case.num_classes):
        bad = int(classes.max() if classes.max() >= case.num_classes else classes.min())
        raise ValueError(
            f"dataset {case.dataset!r} has label {bad}, outside 0..{case.num_classes - 1} "
            f"(num_classes = {case.num_classes})"
        )
    first = int(rng.integers(len(classes)))
    return DRAWS[case.family](case, images, classes, first, rng)
