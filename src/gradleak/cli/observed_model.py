"""The model and images `gradleak reconstruct --observation FILE` attacks with.

A file that records its architecture and dataset (every file `gradleak recover
--save-observation` writes) needs no --model; a flag that contradicts the file is refused by
name. Older files need --model (and --dataset, if not the model's demo set). The weights always
come from the file; the model supplies the structure (and --checkpoint's buffers, if given).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn

import gradleak
from gradleak.cli.checkpoint_option import load_client_checkpoint
from gradleak.cli.simulation import load_images
from gradleak.client import GradientObservation, SavedObservation, load_saved_observation
from gradleak.data import ImageSet
from gradleak.models import Architecture, Checkpoint


def _describe(architecture: Architecture) -> str:
    bias = ", classifier bias" if architecture.classifier_bias else ""
    return (
        f"a {architecture.name} ({architecture.num_classes} classes, {architecture.in_channels}"
        f"x{architecture.image_size}x{architecture.image_size} inputs{bias})"
    )


def _check_flags(
    saved: SavedObservation, args: argparse.Namespace, checkpoint: Checkpoint | None
) -> None:
    """Refuse --model, --dataset or --checkpoint that contradict what the file records."""
    recorded = saved.architecture
    if recorded is not None and args.model is not None and args.model != recorded.name:
        raise ValueError(
            f"this observation is of a {recorded.name}; --model {args.model} does not match "
            f"(leave --model out: {args.observation} records its model)"
        )
    if recorded is not None and checkpoint is not None:
        held = checkpoint.model.architecture
        if held != recorded:
            raise ValueError(
                f"this observation is of {_describe(recorded)}; --checkpoint {args.checkpoint} "
                f"holds {_describe(held)}"
            )
    if saved.dataset and args.dataset and args.dataset != saved.dataset:
        raise ValueError(
            f"this observation is of {saved.dataset} images; --dataset {args.dataset} does not "
            f"match (leave --dataset out: {args.observation} records its dataset)"
        )


def _model_name(
    saved: SavedObservation, args: argparse.Namespace, checkpoint: Checkpoint | None
) -> str:
    if saved.architecture is not None:
        return saved.architecture.name
    if checkpoint is not None:
        return checkpoint.model.architecture.name
    if args.model is None:
        raise ValueError(
            f"{args.observation} does not record its model (written by an older gradleak); "
            "pass --model NAME (and --dataset, if not the model's demo images)"
        )
    return args.model


def check_fit(observation: GradientObservation, model: nn.Module, model_name: str) -> None:
    """Refuse an observation whose parameters (names, shapes) are not those of ``model``."""
    expected = {name: tuple(p.shape) for name, p in model.named_parameters() if p.requires_grad}
    observed = {name: tuple(value.shape) for name, value in observation.parameters.items()}
    head = f"{observation.classifier}."
    if all(name.startswith(head) for name in observed) and len(observed) < len(expected):
        raise ValueError(
            f"this observation holds only the classifier's parameters (saved with "
            f"classifier_only=True); --model {model_name} needs all {len(expected)} of them, so "
            "save the observation in full"
        )
    missing = [name for name in expected if name not in observed]
    unexpected = [name for name in observed if name not in expected]
    reshaped = [
        f"{name!r} is {observed[name]} in the observation, {expected[name]} in the model"
        for name in expected
        if name in observed and expected[name] != observed[name]
    ]
    problems = []
    if missing:
        problems.append(f"the model has {_few(missing)} that the observation lacks")
    if unexpected:
        problems.append(f"the observation has {_few(unexpected)} that the model has not")
    problems += reshaped[:3]
    if problems:
        raise ValueError(
            f"this observation's parameters do not fit --model {model_name}: " + "; ".join(problems)
        )


def _few(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(name) for name in names[:shown]) + more


def observed_model(
    args: argparse.Namespace,
) -> tuple[GradientObservation, ImageSet, nn.Module, str]:
    """--observation's observation, the images it was taken on (shape and statistics only: the
    truth stays unknown), the model to attack it with, and a one-line header."""
    path = Path(args.observation)
    saved = load_saved_observation(path)
    checkpoint = load_client_checkpoint(args)
    _check_flags(saved, args, checkpoint)
    name = _model_name(saved, args, checkpoint)
    recorded = saved.architecture
    side = None if recorded is None else recorded.image_size
    images = load_images(args, model=name, dataset=saved.dataset, side=side)
    observation = saved.observation
    if checkpoint is not None:
        model = checkpoint.model
    elif recorded is not None:
        model = gradleak.models.build_architecture(recorded, seed=0)
    else:
        model = gradleak.models.build(
            name,
            num_classes=observation.num_classes,
            seed=0,
            in_channels=images.images.shape[1],
            image_size=images.images.shape[-1],
        )
    check_fit(observation, model, name)
    source = "recorded in the file" if recorded is not None else "from --model"
    header = (
        f"attacking observation {path}: {name} ({source}"
        f"{f', buffers of --checkpoint {args.checkpoint}' if checkpoint is not None else ''}) "
        f"on {images.name} images, {observation.num_samples} input"
        f"{'s' * (observation.num_samples > 1)}; the truth is unknown"
    )
    return observation, images, model, header
