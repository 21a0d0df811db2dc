"""Train networks with soft labels on local data, so attacks can target trained models."""

from gradleak.training.augment import Augmentation, parse_augmentation
from gradleak.training.facts import TrainingFacts
from gradleak.training.trainer import (
    OPTIMIZERS,
    EpochStats,
    TrainingConfig,
    TrainingResult,
    evaluate,
    soft_cross_entropy,
    train_model,
)

__all__ = [
    "OPTIMIZERS",
    "Augmentation",
    "EpochStats",
    "TrainingConfig",
    "TrainingFacts",
    "TrainingResult",
    "evaluate",
    "parse_augmentation",
    "soft_cross_entropy",
    "train_model",
]
