"""Name -> builder registry for the model zoo, with seeded, side-effect-free construction.

Shapes: every built model maps (B, C, H, W) float inputs to (B, num_classes) logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from gradleak.models.init import INITS, apply_init
from gradleak.registry import Registry

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class Architecture:
    """Everything `build` needs to rebuild a model: stored in checkpoints as ``model.architecture``.

    Shapes: the model maps (B, in_channels, image_size, image_size) to (B, num_classes).
    """

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    classifier_bias: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A registered builder and the input shape it is designed for.

    Shapes: default input (default_in_channels, default_image_size, default_image_size).
    """

    builder: Builder
    default_image_size: int
    default_in_channels: int


MODELS: Registry[ModelSpec] = Registry("model")


def register(
    name: str, *, default_image_size: int, default_in_channels: int = 3
) -> Callable[[Builder], Builder]:
    """Decorator registering a builder under a kebab-case ``name``.

    The builder must accept keyword arguments ``num_classes``, ``in_channels``,
    ``image_size`` and ``classifier_bias`` and return an ``nn.Module``.

    Shapes: not applicable (returns the builder unchanged).
    """
    MODELS.check_new(name)
    if default_image_size < 1 or default_in_channels < 1:
        raise ValueError("default_image_size and default_in_channels must be positive")

    def decorator(builder: Builder) -> Builder:
        MODELS.add(name, ModelSpec(builder, default_image_size, default_in_channels))
        return builder

    return decorator


def names() -> list[str]:
    """Sorted list of registered model names.

    Shapes: not applicable.
    """
    return sorted(MODELS)


def default_input_shape(name: str) -> tuple[int, int, int]:
    """Default single-sample input shape of model ``name``.

    Shapes: returns (C, H, W).
    """
    spec = MODELS[name]
    return (spec.default_in_channels, spec.default_image_size, spec.default_image_size)


def build(
    name: str,
    *,
    num_classes: int,
    init: str = "default",
    seed: int | None = None,
    classifier_bias: bool = False,
    in_channels: int | None = None,
    image_size: int | None = None,
) -> nn.Module:
    """Construct model ``name`` in eval mode.

    ``init`` is one of ``"default"`` (PyTorch constructor init) or ``"uniform"``
    (U(-0.5, 0.5) on every parameter). With ``seed`` set, construction is deterministic and
    the caller's global RNG state is left untouched. ``in_channels``/``image_size`` default
    to the model's registered input shape. The built model carries ``model.architecture``
    (an `Architecture`), which checkpoints store to rebuild it.

    Shapes: the model maps (B, in_channels, image_size, image_size) to (B, num_classes).
    """
    spec = MODELS[name]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed values: {', '.join(INITS)}")
    channels = spec.default_in_channels if in_channels is None else in_channels
    size = spec.default_image_size if image_size is None else image_size
    if channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {channels}")
    if size < 1:
        raise ValueError(f"image_size must be >= 1, got {size}")

    def construct() -> nn.Module:
        model = spec.builder(
            num_classes=num_classes,
            in_channels=channels,
            image_size=size,
            classifier_bias=classifier_bias,
        )
        apply_init(model, init)
        model.architecture = Architecture(name, num_classes, channels, size, classifier_bias)
        return model

    if seed is None:
        model = construct()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = construct()
    return model.eval()


def build_for(name: str, images, **options) -> nn.Module:
    """`build` ``name`` for an `ImageSet`'s classes, channels and image size (``options``:
    ``init``, ``seed``, ``classifier_bias``)."""
    return build(
        name,
        num_classes=images.num_classes,
        in_channels=images.images.shape[1],
        image_size=images.images.shape[-1],
        **options,
    )


def build_architecture(architecture: Architecture, **options) -> nn.Module:
    """`build` the model an `Architecture` (a checkpoint's or an observation's record)
    describes (``options``: ``init``, ``seed``)."""
    return build(
        architecture.name,
        num_classes=architecture.num_classes,
        in_channels=architecture.in_channels,
        image_size=architecture.image_size,
        classifier_bias=architecture.classifier_bias,
        **options,
    )
