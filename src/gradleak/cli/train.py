"""`gradleak train`: train a model with soft labels on local data and save a safe checkpoint."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import gradleak
from gradleak import data
from gradleak.cli.arguments import image_size, integer, number, torch_seed
from gradleak.cli.parameter_flags import declare
from gradleak.models import save_checkpoint
from gradleak.models.checkpoint import SUFFIX, sidecar_path
from gradleak.output_files import check_new_file
from gradleak.training import (
    OPTIMIZERS,
    EpochStats,
    TrainingConfig,
    TrainingFacts,
    parse_augmentation,
    train_model,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainingConfig()
    parser.add_argument("--model", default="lenet", choices=gradleak.models.names())
    parser.add_argument(
        "--dataset", default="fashion-mnist", help=f"one of {', '.join(data.names())}"
    )
    parser.add_argument("--data-root", type=Path, help="local dataset folder (if not default)")
    declare(parser, root="--data-root PATH", overwrite="--overwrite")
    parser.add_argument(
        "--augment",
        default="smoothing:0.1",
        help="training targets (a label family): hard, smoothing:EPS (0<EPS<1), mixup:ALPHA (>0)",
    )
    parser.add_argument("--epochs", type=integer(1), default=defaults.epochs, help=">= 1")
    parser.add_argument("--batch-size", type=integer(1), default=defaults.batch_size, help=">= 1")
    parser.add_argument(
        "--lr",
        type=number(0, strict=True),
        default=defaults.learning_rate,
        help="peak learning rate (cosine), > 0",
    )
    parser.add_argument("--optimizer", choices=OPTIMIZERS.keys(), default=defaults.optimizer)
    parser.add_argument(
        "--weight-decay", type=number(0), default=defaults.weight_decay, help=">= 0"
    )
    parser.add_argument(
        "--crop-flip", action="store_true", help="random crop + flip (the CIFAR recipe)"
    )
    parser.add_argument("--image-size", type=image_size(), help="resize images to this side (>= 8)")
    parser.add_argument(
        "--train-limit", type=integer(1), help="train on the first N (>= 1) training images only"
    )
    parser.add_argument(
        "--seed",
        type=torch_seed(),
        default=0,
        help="model init, shuffling and mixup; [0, 2**63 - 1]",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="checkpoint path (.safetensors); default checkpoints/MODEL-DATASET-AUGMENT",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing checkpoint at --out"
    )


def default_path(model: str, dataset: str, augment: str) -> Path:
    """``checkpoints/lenet-fashion-mnist-smoothing-0.1.safetensors``."""
    return Path("checkpoints") / f"{model}-{dataset}-{augment.replace(':', '-')}.safetensors"


def _print_epoch(stats: EpochStats) -> None:
    """One line as each epoch ends (not all of them after the last)."""
    print(
        f"epoch {stats.epoch:3d}  loss {stats.train_loss:.4f}  "
        f"test accuracy {stats.test_accuracy:.2%}  ({stats.seconds:.0f} s)",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    augmentation = parse_augmentation(args.augment)
    config = TrainingConfig(
        augmentation=augmentation,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        crop_flip=args.crop_flip,
        seed=args.seed,
    )
    out = args.out or default_path(args.model, args.dataset, str(augmentation))
    # Before any data is read.
    check_new_file(out, name="--out", suffix=SUFFIX, overwrite=args.overwrite)
    check_new_file(sidecar_path(out), name="--out's card", overwrite=args.overwrite)
    train_set = data.load(
        args.dataset,
        args.data_root,
        split="train",
        image_size=args.image_size,
        limit=args.train_limit,
    )
    test_set = data.load(args.dataset, args.data_root, split="test", image_size=args.image_size)
    channels, size = train_set.images.shape[1], train_set.images.shape[-1]
    model = gradleak.models.build(
        args.model,
        num_classes=train_set.num_classes,
        in_channels=channels,
        image_size=size,
        seed=args.seed,
    )
    print(
        f"training {args.model} on {args.dataset} ({len(train_set.labels)} images, "
        f"{channels}x{size}x{size}, {train_set.num_classes} classes) with {augmentation}, "
        f"{args.epochs} epochs"
    )
    result = train_model(model, train_set, test_set, config, on_epoch=_print_epoch)
    facts = TrainingFacts.of_run(
        config,
        dataset=args.dataset,
        train_images=len(train_set.labels),
        test_images=len(test_set.labels),
        test_accuracy=result.test_accuracy,
        seconds=result.seconds,
    )
    save_checkpoint(model, out, training=asdict(facts), overwrite=args.overwrite)
    print(
        f"test accuracy {result.test_accuracy:.2%} after {result.seconds:.0f} s; "
        f"checkpoint {out} (card {out.with_suffix('.json')})"
    )
    return 0
