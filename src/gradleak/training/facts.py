"""What produced a checkpoint's weights: the ``training`` part of its card, as one value.

`gradleak train` writes it; the benchmark configs read it back to check a config against the
checkpoint it names (model, dataset, augmentation). Reading validates every field, so a card
edited by hand or written by another tool is an error naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_type_hints

import torch

if TYPE_CHECKING:
    from gradleak.training.trainer import TrainingConfig


@dataclass(frozen=True)
class TrainingFacts:
    """Dataset, augmentation and optimisation of one training run, and what it reached."""

    dataset: str
    augmentation: str
    label_family: str
    test_accuracy: float
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    weight_decay: float
    crop_flip: bool
    seed: int
    train_images: int = 0
    test_images: int = 0
    seconds: float = 0.0
    threads: int = 0
    machine: str = ""

    @classmethod
    def of_run(
        cls,
        config: TrainingConfig,
        *,
        dataset: str,
        train_images: int,
        test_images: int,
        test_accuracy: float,
        seconds: float,
    ) -> TrainingFacts:
        """The facts of a finished run with ``config`` on this machine."""
        return cls(
            dataset=dataset,
            augmentation=str(config.augmentation),
            label_family=config.augmentation.label_family,
            test_accuracy=test_accuracy,
            epochs=config.epochs,
            batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            optimizer=config.optimizer,
            weight_decay=config.weight_decay,
            crop_flip=config.crop_flip,
            seed=config.seed,
            train_images=train_images,
            test_images=test_images,
            seconds=round(seconds, 1),
            threads=torch.get_num_threads(),
            machine=platform.platform(),
        )

    @classmethod
    def from_card(cls, training: Mapping[str, Any], *, where: str) -> TrainingFacts:
        """Read and check a card's ``training`` mapping; errors name ``where`` and the field."""
        if not isinstance(training, Mapping):
            raise ValueError(f"{where}: the card's training must be an object, got {training!r}")
        hints = get_type_hints(cls)
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(training) - set(names))
        if unknown:
            raise ValueError(f"{where}: unknown training facts {unknown}; known: {names}")
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = sorted(set(required) - set(training))
        if missing:
            raise ValueError(f"{where}: the card lacks training facts {missing}")
        for name, value in training.items():
            expected = hints[name]
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise ValueError(
                    f"{where}: training.{name} = {value!r} must be of type {expected.__name__}"
                )
        return cls(**training)
