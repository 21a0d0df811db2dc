"""``--checkpoint PATH`` of `gradleak recover` and `gradleak reconstruct`: attack a model from
`gradleak train` (its card fixes the architecture), checked against the other flags."""

from __future__ import annotations

import argparse

from gradleak.data import ImageSet
from gradleak.models import Checkpoint, load_checkpoint


def checkpoint_dataset(checkpoint: Checkpoint) -> str:
    """The dataset the checkpoint's card says it was trained on ("" if it names none)."""
    training = checkpoint.card.get("training")
    dataset = training.get("dataset") if isinstance(training, dict) else None
    return dataset if isinstance(dataset, str) else ""


def load_client_checkpoint(args: argparse.Namespace) -> Checkpoint | None:
    """The model of ``--checkpoint`` (None without it), refused where a flag contradicts it:
    ``--model`` of another architecture, ``--init`` (the weights are trained),
    ``--classifier-bias`` or ``--image-size`` other than the card's."""
    if args.checkpoint is None:
        return None
    path = args.checkpoint
    try:
        checkpoint = load_checkpoint(path)
    except (ValueError, OSError) as error:
        raise type(error)(f"--checkpoint: {error}") from error
    architecture = checkpoint.model.architecture
    where = f"--checkpoint {path}"
    if args.model is not None and args.model != architecture.name:
        raise ValueError(
            f"--model {args.model} does not match {where}, a {architecture.name}; "
            "leave --model out (the checkpoint names its model) or pass another checkpoint"
        )
    if args.init is not None:
        raise ValueError(f"--init applies to a fresh model; {where} holds trained weights")
    if args.classifier_bias and not architecture.classifier_bias:
        raise ValueError(
            f"--classifier-bias does not match {where}, whose classifier has no bias "
            "(the checkpoint's architecture decides)"
        )
    if args.image_size is not None and args.image_size != architecture.image_size:
        raise ValueError(
            f"--image-size {args.image_size} does not match {where}, which takes "
            f"{architecture.image_size}-pixel images; leave --image-size out"
        )
    return checkpoint


def check_checkpoint_images(checkpoint: Checkpoint, path: object, images: ImageSet) -> None:
    """Refuse images of another class count or channel count than the checkpoint's model.

    Other images of the same shape are allowed (for example the embedded CIFAR-10 test images
    for a model trained on a local CIFAR-10 folder).
    """
    architecture = checkpoint.model.architecture
    channels = images.images.shape[1]
    trained = checkpoint_dataset(checkpoint) or "an unnamed dataset"
    if images.num_classes != architecture.num_classes or channels != architecture.in_channels:
        raise ValueError(
            f"--dataset {images.name} has {_shape(images.num_classes, channels)}; --checkpoint "
            f"{path} ({architecture.name}, trained on {trained}) takes "
            f"{_shape(architecture.num_classes, architecture.in_channels)}"
        )


def _shape(classes: int, channels: int) -> str:
    return f"{classes} classes and {channels} channel{'s' * (channels != 1)}"
