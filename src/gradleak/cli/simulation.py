"""The simulated client shared by `gradleak recover` and `gradleak reconstruct`."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

import gradleak
from gradleak import data
from gradleak.cli.arguments import MIN_IMAGE_SIZE, image_size, integer, number, torch_seed
from gradleak.cli.checkpoint_option import (
    check_checkpoint_images,
    checkpoint_dataset,
    load_client_checkpoint,
)
from gradleak.cli.parameter_flags import declare
from gradleak.client import ClientSecret, GradientObservation
from gradleak.data import ImageSet
from gradleak.families import FAMILIES
from gradleak.families.batch_trials import BATCH_LABELS
from gradleak.models import Checkpoint

#: Models whose demo uses other images than embedded CIFAR-10 (dataset, image side).
DEMO_DATA = {"fcn4": ("embedded-imagenet", 64), "resnet50": ("embedded-imagenet", 224)}
#: The model attacked when neither --model nor --checkpoint names one.
DEFAULT_MODEL = "lenet"


def add_client_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The options that describe the simulated client; returns their group."""
    client = parser.add_argument_group("simulated client (ignored with --observation)")
    client.add_argument(
        "--model",
        choices=gradleak.models.names(),
        help=f"architecture (default {DEFAULT_MODEL}, or --checkpoint's)",
    )
    client.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="attack this trained model from `gradleak train` (.safetensors) instead of a fresh "
        "one; its card fixes the architecture, and --dataset defaults to the one it was trained "
        "on (other images need its class and channel count)",
    )
    client.add_argument(
        "--init",
        choices=("uniform", "default"),
        help="uniform U(-0.5, 0.5) (default for lenet) "
        "or PyTorch's default (default for the others)",
    )
    client.add_argument("--classifier-bias", action="store_true", help="give the classifier a bias")
    client.add_argument(
        "--dataset",
        choices=data.names(),
        help="images to attack (default embedded-cifar10; embedded-imagenet for fcn4/resnet50)",
    )
    client.add_argument("--data-root", help="local folder of --dataset, if not its default")
    declare(parser, root="--data-root PATH")
    client.add_argument(
        "--image-size",
        type=image_size(),
        help=f"resize images to this side (>= {MIN_IMAGE_SIZE}; default: the dataset's)",
    )
    client.add_argument(
        "--index", type=integer(0), default=0, help="which test image (>= 0, below the count)"
    )
    client.add_argument(
        "--batch-size",
        type=integer(1),
        default=1,
        help="inputs in the client's step (>= 1; default 1): test images --index, --index + 1, "
        "..., labelled by --label-family's batch protocol (one eps for the batch; mixup pairs "
        "each image with the next, one lam)",
    )
    client.add_argument(
        "--label-family",
        default="smoothing",
        choices=FAMILIES.keys(),
        help="the client's label family (default smoothing)",
    )
    client.add_argument(
        "--eps",
        type=number(0, 1),
        help="label smoothing in [0, 1], for --label-family smoothing (default 0.2) or mixup "
        "(default 0)",
    )
    client.add_argument(
        "--lam",
        type=number(0, 1),
        help="mixup weight of the 2nd image, in [0, 1], for --label-family mixup (default 0.3)",
    )
    client.add_argument(
        "--seed",
        type=torch_seed(),
        default=0,
        help="initialisation seed of a fresh model (not --checkpoint), [0, 2**63 - 1]",
    )
    return client


#: Command-line flag of each label parameter.
PARAMETER_FLAGS = {"eps": "--eps", "lam": "--lam"}


def label_parameters(args: argparse.Namespace) -> dict[str, float]:
    """The parameters of ``--label-family``: its demo values, overridden by the flags given.

    A flag for a parameter the family does not have is refused (it would be ignored).
    """
    family = FAMILIES[args.label_family]
    given = {
        name: getattr(args, name) for name in PARAMETER_FLAGS if getattr(args, name) is not None
    }
    for name in given:
        if name not in family.parameters:
            takes = [key for key, other in FAMILIES.items() if name in other.parameters]
            raise ValueError(
                f"{PARAMETER_FLAGS[name]} applies to --label-family {' or '.join(takes)} only; "
                f"it would be ignored with --label-family {args.label_family}"
            )
    return dict(family.demo_params) | given


def model_name(args: argparse.Namespace, checkpoint: Checkpoint | None = None) -> str:
    """The architecture attacked: ``checkpoint``'s, else --model, else `DEFAULT_MODEL`."""
    if checkpoint is not None:
        return checkpoint.model.architecture.name
    return args.model or DEFAULT_MODEL


def load_images(
    args: argparse.Namespace, *, model: str, dataset: str = "", side: int | None = None
) -> ImageSet:
    """The test images: ``dataset`` (else --dataset, else ``model``'s demo set) at ``side``
    pixels (else --image-size, else the demo's or the chosen dataset's own side)."""
    demo, size = DEMO_DATA.get(model, ("embedded-cifar10", None))
    if side is not None:
        size = side
    elif args.image_size is not None:
        size = args.image_size
    elif args.dataset or dataset:
        size = None  # the chosen dataset's own side
    name = dataset or args.dataset or demo
    return data.load(name, args.data_root, split="test", image_size=size)


def _client_model(args: argparse.Namespace, images: ImageSet, checkpoint: Checkpoint | None):
    """The client's model: ``checkpoint``'s (checked against the images) or a fresh one."""
    if checkpoint is not None:
        check_checkpoint_images(checkpoint, args.checkpoint, images)
        return checkpoint.model
    name = model_name(args)
    return gradleak.models.build_for(
        name, images, init=_init(args, name), seed=args.seed, classifier_bias=args.classifier_bias
    )


def _init(args: argparse.Namespace, model: str) -> str:
    """--init, else the model's default (uniform for lenet, the paper's untrained runs)."""
    return args.init or ("uniform" if model == "lenet" else "default")


def describe_client(args: argparse.Namespace, images: ImageSet, model: nn.Module) -> str:
    """One line: the model (fresh or which checkpoint), the images and the label attacked."""
    name = model.architecture.name
    if args.checkpoint is not None:
        weights = f"trained, --checkpoint {args.checkpoint}"
    else:
        weights = f"fresh, {_init(args, name)} init, "
        weights += f"seed {args.seed}"
    index = ((args.index + torch.arange(args.batch_size)) % len(images.labels)).tolist()
    classes = ", ".join(str(int(images.labels[i])) for i in index)
    several = len(index) > 1
    which = (
        f"test image{'s' * several} {', '.join(map(str, index))} (class{'es' * several} {classes})"
    )
    params = " ".join(f"{key}={value:g}" for key, value in label_parameters(args).items())
    return (
        f"attacking {name} ({weights}) on {images.name} {which}; client label "
        f"{args.label_family} {params}".rstrip()
    )


def simulate(
    args: argparse.Namespace,
) -> tuple[GradientObservation, ClientSecret, ImageSet, nn.Module]:
    """Build the model, label the chosen image as asked and compute the client's gradient."""
    params = label_parameters(args)
    checkpoint = load_client_checkpoint(args)
    side = None if checkpoint is None else checkpoint.model.architecture.image_size
    dataset = "" if checkpoint is None else checkpoint_dataset(checkpoint)
    if checkpoint is not None and not (dataset or args.dataset):
        raise ValueError(
            f"--checkpoint {args.checkpoint}'s card names no training dataset; pass --dataset"
        )
    images = load_images(
        args, model=model_name(args, checkpoint), dataset=args.dataset or dataset, side=side
    )
    count = len(images.labels)
    if not 0 <= args.index < count:
        raise ValueError(f"--index must be in [0, {count - 1}], got {args.index}")
    if not 1 <= args.batch_size <= count:
        raise ValueError(
            f"--batch-size must be in [1, {count}] for {images.name}, got {args.batch_size}"
        )
    model = _client_model(args, images, checkpoint)
    if args.batch_size == 1:
        inputs, label = FAMILIES[args.label_family].compose(
            images.images, images.labels.numpy(), args.index, images.num_classes, **params
        )
        observation, secret = gradleak.simulate_client_step(model, images.normalise(inputs), label)
        return observation, secret, images, model
    index = (args.index + torch.arange(args.batch_size)) % count
    partners = torch.roll(torch.arange(args.batch_size), -1)
    inputs, labels = BATCH_LABELS[args.label_family](
        images.normalise(images.images[index]),
        images.labels[index].long(),
        images.num_classes,
        partners,
        **params,
    )
    observation, secret = gradleak.simulate_client_step(model, inputs, labels)
    return observation, secret, images, model
