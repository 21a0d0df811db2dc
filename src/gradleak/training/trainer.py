"""Train a model on the CPU with a soft-label loss, so attacks can target trained networks.

Trained networks are the hard case for label recovery: the softmax is confident, the scale mu
can be positive and spurious minima appear (Wang, Liang & He, ICLR 2024, Sec. 4).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional
from tqdm import tqdm

from gradleak.data import ImageSet
from gradleak.registry import Registry
from gradleak.training.augment import Augmentation

logger = logging.getLogger(__name__)

#: Optimizer key -> builder(parameters, config); the key names the torch class it builds.
OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimizer")


@OPTIMIZERS.register("adamw")
def _adamw(parameters, config: TrainingConfig) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay): the default for LeNet and ResNet18 here."""
    return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)


@OPTIMIZERS.register("sgd")
def _sgd(parameters, config: TrainingConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum 0.9: the usual CIFAR recipe."""
    return torch.optim.SGD(
        parameters,
        lr=config.learning_rate,
        momentum=0.9,
        nesterov=True,
        weight_decay=config.weight_decay,
    )


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings. ``learning_rate`` decays to 0 on a cosine over all steps.

    ``crop_flip`` adds the usual CIFAR geometry (random 4-pixel-padded crop, horizontal flip).
    """

    augmentation: Augmentation = field(default_factory=lambda: Augmentation("hard"))
    epochs: int = 15
    batch_size: int = 128
    learning_rate: float = 3e-3
    optimizer: str = "adamw"
    weight_decay: float = 5e-4
    crop_flip: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class EpochStats:
    """One epoch: mean training loss, test accuracy after it, wall seconds."""

    epoch: int
    train_loss: float
    test_accuracy: float
    seconds: float


@dataclass(frozen=True)
class TrainingResult:
    """Final test accuracy, per-epoch history and total training seconds."""

    test_accuracy: float
    history: tuple[EpochStats, ...]
    seconds: float


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean over the batch of -sum_i y_i log softmax(z)_i: the loss the paper's clients use.

    Shapes: logits (B, C), targets (B, C) -> scalar.
    """
    return -(targets * functional.log_softmax(logits, dim=1)).sum(dim=1).mean()


def evaluate(model: nn.Module, images: ImageSet, *, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (switched to eval mode) on ``images``.

    Shapes: images.images (N, C, H, W) -> float in [0, 1].
    """
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images.labels), batch_size):
            batch = images.normalise(images.images[start : start + batch_size])
            predicted = model(batch).argmax(dim=1)
            correct += int((predicted == images.labels[start : start + batch_size]).sum())
    return correct / len(images.labels)


def _crop_flip(images: Tensor, generator: torch.Generator) -> Tensor:
    """Random 4-pixel-padded crop and horizontal flip, one draw per image."""
    size = images.shape[-1]
    padded = functional.pad(images, (4, 4, 4, 4), mode="reflect")
    offsets = torch.randint(0, 9, (len(images), 2), generator=generator)
    flips = torch.rand(len(images), generator=generator) < 0.5
    out = torch.empty_like(images)
    for index, ((top, left), flip) in enumerate(zip(offsets.tolist(), flips.tolist(), strict=True)):
        crop = padded[index, :, top : top + size, left : left + size]
        out[index] = crop.flip(-1) if flip else crop
    return out


def _train_epoch(model, train_set: ImageSet, config: TrainingConfig, steppers, randomness, epoch,
                 *, progress: bool) -> float:  # fmt: skip
    """One pass over ``train_set`` in a seeded order; returns the mean training loss."""
    optimizer, schedule = steppers
    generator, rng = randomness
    num_classes = int(model.architecture.num_classes)
    model.train()
    order = torch.randperm(len(train_set.labels), generator=generator)
    total_loss = 0.0
    batches = tqdm(
        order.split(config.batch_size),
        desc=f"epoch {epoch}/{config.epochs}",
        disable=not progress,
        leave=False,
    )
    for batch in batches:
        images = train_set.images[batch]
        if config.crop_flip:
            images = _crop_flip(images, generator)
        inputs, targets = config.augmentation.targets(
            train_set.normalise(images), train_set.labels[batch], num_classes, rng
        )
        loss = soft_cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        batch_loss = float(loss.detach())
        total_loss += batch_loss * len(batch)
        batches.set_postfix(loss=f"{batch_loss:.3f}")
    return total_loss / len(train_set.labels)


def train_model(
    model: nn.Module,
    train_set: ImageSet,
    test_set: ImageSet,
    config: TrainingConfig,
    *,
    progress: bool = True,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainingResult:
    """Train ``model`` in place on ``train_set`` and report accuracy on ``test_set``.

    Targets come from ``config.augmentation`` (one-hot, smoothed or mixed), the loss is
    `soft_cross_entropy`. ``on_epoch`` receives each epoch's `EpochStats` as it ends.
    Shuffling, crops and mixup partners are seeded by ``config.seed``;
    the model is left in eval mode.

    Shapes: train_set.images (N, C, H, W) with labels (N,) in [0, num_classes).
    """
    num_classes = int(model.architecture.num_classes)
    if int(train_set.labels.max()) >= num_classes:
        raise ValueError(
            f"train_set has labels up to {int(train_set.labels.max())} but the model has "
            f"num_classes={num_classes}"
        )
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    optimizer = OPTIMIZERS[config.optimizer](model.parameters(), config)
    steps_per_epoch = math.ceil(len(train_set.labels) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch
    )
    history: list[EpochStats] = []
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        steppers, randomness = (optimizer, schedule), (generator, rng)
        loss = _train_epoch(
            model, train_set, config, steppers, randomness, epoch, progress=progress
        )
        accuracy = evaluate(model, test_set)
        stats = EpochStats(epoch, loss, accuracy, time.perf_counter() - epoch_start)
        logger.info("epoch %d: loss %.4f, test accuracy %.4f", epoch, stats.train_loss, accuracy)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    model.eval()
    return TrainingResult(
        test_accuracy=history[-1].test_accuracy,
        history=tuple(history),
        seconds=time.perf_counter() - start,
    )
