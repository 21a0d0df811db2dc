"""What a gradient-matching attack takes besides the gradient: label, feature, shape, box.

Labels come as a `LabelEstimate` (ours: soft label and recovered feature), a `BatchEstimate`
(ours, one row per sample of a batch gradient), a `SoftLabel` or a (C,) / (B, C) probability
tensor (oracles, for evaluation), or None (the attack optimises the label).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gradleak.labels import SoftLabel
from gradleak.recovery.batch.estimate import BatchEstimate
from gradleak.recovery.estimate import LabelEstimate

LabelInput = LabelEstimate | BatchEstimate | SoftLabel | Tensor | None


def label_probabilities(labels: LabelInput) -> Tensor | None:
    """The probabilities ``labels`` holds (None for None); any other type is an error.

    Shapes: returns (C,), (k, C) for a `BatchEstimate` (its k recovered samples) or None.
    """
    if isinstance(labels, LabelEstimate):
        return labels.soft_label
    if isinstance(labels, BatchEstimate):
        return labels.soft_labels
    if isinstance(labels, SoftLabel):
        return labels.probabilities
    if isinstance(labels, Tensor) or labels is None:
        return labels
    raise ValueError(
        "labels must be a LabelEstimate or BatchEstimate (recovered), a SoftLabel or a (C,) "
        f"or (B, C) probability tensor (oracles), or None; got {type(labels).__name__}"
    )


def resolve_label(labels: LabelInput, *, need_feature: bool) -> tuple[Tensor | None, Tensor | None]:
    """The fixed soft labels (None: optimise them) and the recovered features (None if absent).

    Shapes: returns them as given ((C,) or (B, C), (m,) or (B, m)); `build_problem` makes
    them one row per sample.
    """
    label = label_probabilities(labels)
    feature = labels.features if isinstance(labels, LabelEstimate | BatchEstimate) else None
    if need_feature and feature is None:
        raise ValueError(
            "feature_weight > 0 needs labels=LabelEstimate with a recovered feature "
            "(gradleak.recover_label(...)); a plain label carries none"
        )
    if label is not None and not torch.isfinite(label).all():
        raise ValueError("labels must be finite")
    return label, feature


def input_shape_of(
    model: nn.Module, input_shape: Sequence[int] | None, *, batch_size: int = 1
) -> tuple[int, ...]:
    """(B, C, H, W) from ``input_shape`` ((C, H, W) or (B, C, H, W)) or the model's recorded
    architecture; B is ``batch_size``, the number of samples behind the gradient."""
    if input_shape is not None:
        shape = tuple(int(side) for side in input_shape)
        if len(shape) == 4 and shape[0] != batch_size:
            raise ValueError(
                f"input_shape {shape} holds {shape[0]} inputs but the observation is of "
                f"{batch_size}: pass the (C, H, W) of one input"
            )
        return shape if len(shape) == 4 else (batch_size, *shape)
    architecture = getattr(model, "architecture", None)
    if architecture is None:
        raise ValueError(
            "input_shape is needed: the model was not built by gradleak.models.build, so its "
            "input shape is unknown"
        )
    side = architecture.image_size
    return (batch_size, architecture.in_channels, side, side)


def pixel_box(
    mean: Sequence[float] | None, std: Sequence[float] | None, dtype: torch.dtype
) -> tuple[Tensor, Tensor] | None:
    """Per-channel bounds of normalised images whose pixels lie in [0, 1]; None without stats.

    Shapes: two (1, C, 1, 1) tensors.
    """
    if mean is None and std is None:
        return None
    if mean is None or std is None or len(mean) != len(std):
        raise ValueError("image_mean and image_std must be given together, one value per channel")
    if any(s <= 0 for s in std):
        raise ValueError(f"image_std must be > 0, got {list(std)}")
    mean_t = torch.tensor(mean, dtype=dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=dtype).view(1, -1, 1, 1)
    return (0 - mean_t) / std_t, (1 - mean_t) / std_t
