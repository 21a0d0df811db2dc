"""The simulated client shared by `gradleak recover` and `gradleak reconstruct`."""

from __future__ import annotations

import argparse

from torch import nn

import gradleak
from gradleak import data, labels
from gradleak.client import ClientSecret, GradientObservation
from gradleak.data import ImageSet
from gradleak.recovery import FAMILIES

#: Models whose demo uses other images than embedded CIFAR-10 (dataset, image side).
DEMO_DATA = {"fcn4": ("embedded-imagenet", 64), "resnet50": ("embedded-imagenet", 224)}


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
    client.add_argument("--image-size", type=int, help="resize images to this side")
    client.add_argument("--index", type=int, default=0, help="which test image")
    client.add_argument(
        "--label", default="smoothing", choices=sorted(FAMILIES), help="the client's label family"
    )
    client.add_argument("--eps", type=float, default=0.2, help="label smoothing in [0, 1]")
    client.add_argument("--lam", type=float, default=0.3, help="mixup weight of the 2nd image")
    client.add_argument("--seed", type=int, default=0, help="model initialisation seed")
    return client


def load_images(args: argparse.Namespace) -> ImageSet:
    """The test images the simulated client draws from."""
    dataset, size = DEMO_DATA.get(args.model, ("embedded-cifar10", None))
    return data.load(
        args.dataset or dataset,
        args.data_root,
        split="test",
        image_size=args.image_size or (None if args.dataset else size),
    )


def simulate(
    args: argparse.Namespace,
) -> tuple[GradientObservation, ClientSecret, ImageSet, nn.Module]:
    """Build the model, label the chosen image as asked and compute the client's gradient."""
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
        label = labels.smoothing(first, images.num_classes, args.eps)
    else:
        other = next(i for i in range(len(images.labels)) if int(images.labels[i]) != first)
        inputs = (1 - args.lam) * inputs + args.lam * images.images[other]
        label = labels.mixup(first, int(images.labels[other]), args.lam, images.num_classes)
    observation, secret = gradleak.simulate_client_step(model, images.normalise(inputs), label)
    return observation, secret, images, model
