"""The simulated client shared by `gradleak recover` and `gradleak reconstruct`."""

from __future__ import annotations

import argparse

from torch import nn

import gradleak
from gradleak import data, labels
from gradleak.cli.arguments import MIN_IMAGE_SIZE, image_size, integer, number, torch_seed
from gradleak.client import ClientSecret, GradientObservation
from gradleak.data import ImageSet
from gradleak.recovery import FAMILIES

#: Models whose demo uses other images than embedded CIFAR-10 (dataset, image side).
DEMO_DATA = {"fcn4": ("embedded-imagenet", 64), "resnet50": ("embedded-imagenet", 224)}

#: Label smoothing and mixup weights without a value given on the command line.
DEFAULT_EPS, DEFAULT_LAM = 0.2, 0.3


def add_client_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The options that describe the simulated client; returns their group."""
    client = parser.add_argument_group("simulated client (ignored with --observation)")
    client.add_argument("--model", default="lenet", choices=gradleak.models.names())
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
    client.add_argument(
        "--image-size",
        type=image_size(),
        help=f"resize images to this side (>= {MIN_IMAGE_SIZE}; default: the dataset's)",
    )
    client.add_argument(
        "--index", type=integer(0), default=0, help="which test image (>= 0, below the count)"
    )
    client.add_argument(
        "--label", default="smoothing", choices=sorted(FAMILIES), help="the client's label family"
    )
    client.add_argument(
        "--eps",
        type=number(0, 1),
        help=f"label smoothing in [0, 1] for --label smoothing (default {DEFAULT_EPS})",
    )
    client.add_argument(
        "--lam",
        type=number(0, 1),
        help=f"mixup weight of the 2nd image, in [0, 1], for --label mixup (default {DEFAULT_LAM})",
    )
    client.add_argument(
        "--seed", type=torch_seed(), default=0, help="model initialisation seed, [0, 2**63 - 1]"
    )
    return client


def check_label_arguments(args: argparse.Namespace) -> None:
    """Refuse a label parameter that the chosen ``--label`` family would silently ignore."""
    for flag, value, family in (("--eps", args.eps, "smoothing"), ("--lam", args.lam, "mixup")):
        if value is not None and args.label != family:
            raise ValueError(
                f"{flag} applies to --label {family} only; it would be ignored with "
                f"--label {args.label}"
            )


def load_images(args: argparse.Namespace) -> ImageSet:
    """The test images the simulated client draws from."""
    dataset, size = DEMO_DATA.get(args.model, ("embedded-cifar10", None))
    if args.image_size is not None:
        size = args.image_size
    elif args.dataset:
        size = None  # the chosen dataset's own side
    return data.load(args.dataset or dataset, args.data_root, split="test", image_size=size)


def simulate(
    args: argparse.Namespace,
) -> tuple[GradientObservation, ClientSecret, ImageSet, nn.Module]:
    """Build the model, label the chosen image as asked and compute the client's gradient."""
    check_label_arguments(args)
    images = load_images(args)
    if not 0 <= args.index < len(images.labels):
        raise ValueError(f"--index must be in [0, {len(images.labels) - 1}], got {args.index}")
    init = args.init or ("uniform" if args.model == "lenet" else "default")
    model = gradleak.models.build(
        args.model,
        num_classes=images.num_classes,
        init=init,
        seed=args.seed,
        classifier_bias=args.classifier_bias,
        in_channels=images.images.shape[1],
        image_size=images.images.shape[-1],
    )
    first = int(images.labels[args.index])
    inputs = images.images[args.index]
    if args.label == "hard":
        label = labels.one_hot(first, images.num_classes)
    elif args.label == "smoothing":
        eps = DEFAULT_EPS if args.eps is None else args.eps
        label = labels.smoothing(first, images.num_classes, eps)
    else:
        lam = DEFAULT_LAM if args.lam is None else args.lam
        other = next(i for i in range(len(images.labels)) if int(images.labels[i]) != first)
        inputs = (1 - lam) * inputs + lam * images.images[other]
        label = labels.mixup(first, int(images.labels[other]), lam, images.num_classes)
    observation, secret = gradleak.simulate_client_step(model, images.normalise(inputs), label)
    return observation, secret, images, model
