"""Batch labels as real clients make them, and one batch trial drawn by that protocol.

A client's augmentation acts on the whole batch: one eps for every sample
(``CrossEntropyLoss(label_smoothing=eps)``); batch mixup with one lam and partners given by a
permutation of the batch, inputs mixed the same way; hard labels as they are (docs/batch.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from gradleak.data import ImageSet
from gradleak.registry import Registry


def batch_smoothing(
    targets: Tensor, num_classes: int, eps: float, *, dtype: torch.dtype = torch.float64
) -> Tensor:
    """One eps for the whole batch, as ``CrossEntropyLoss(label_smoothing=eps)`` trains.

    Shapes: ``targets`` (B,) -> (B, C)."""
    one = torch.nn.functional.one_hot(targets.long(), num_classes).to(dtype)
    return (1.0 - eps) * one + eps / num_classes


def batch_mixup(
    inputs: Tensor,
    targets: Tensor,
    num_classes: int,
    lam: float,
    partners: Tensor,
    *,
    dtype: torch.dtype = torch.float64,
) -> tuple[Tensor, Tensor]:
    """Batch mixup: one lam, each input mixed with ``inputs[partners]`` and its label likewise.

    A sample whose partner has its own class gets a hard label (its lam is not identifiable).
    Shapes: ``inputs`` (B, ...), ``targets`` and ``partners`` (B,) -> (B, ...), (B, C)."""
    one = torch.nn.functional.one_hot(targets.long(), num_classes).to(dtype)
    mixed = lam * inputs + (1.0 - lam) * inputs[partners]
    return mixed, lam * one + (1.0 - lam) * one[partners]


def batch_hard(targets: Tensor, num_classes: int, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """One-hot labels. Shapes: ``targets`` (B,) -> (B, C)."""
    return torch.nn.functional.one_hot(targets.long(), num_classes).to(dtype)


def _compose_hard(inputs: Tensor, targets: Tensor, num_classes: int, partners: Tensor):
    return inputs, batch_hard(targets, num_classes)


def _compose_smoothing(
    inputs: Tensor, targets: Tensor, num_classes: int, partners: Tensor, *, eps: float
):
    return inputs, batch_smoothing(targets, num_classes, eps)


def _compose_mixup(
    inputs: Tensor,
    targets: Tensor,
    num_classes: int,
    partners: Tensor,
    *,
    lam: float,
    eps: float = 0.0,
):
    if eps != 0:
        raise ValueError(
            f"batch mixup mixes one-hot labels (eps = 0); eps = {eps} is not a batch protocol"
        )
    return batch_mixup(inputs, targets, num_classes, lam, partners)


#: Label family -> (inputs, targets, num_classes, partners, **family parameters) ->
#: (inputs, (B, C) labels): a batch labelled with given parameters (mixup pairs each input
#: with ``inputs[partners]``; the other families ignore ``partners``).
BATCH_LABELS: Registry[Callable[..., tuple[Tensor, Tensor]]] = Registry("batch label family")
BATCH_LABELS.add("hard", _compose_hard)
BATCH_LABELS.add("smoothing", _compose_smoothing)
BATCH_LABELS.add("mixup", _compose_mixup)


BatchDraw = Callable[[Tensor, Tensor, int, np.random.Generator], tuple[Tensor, Tensor]]


def _hard(inputs: Tensor, targets: Tensor, num_classes: int, rng: np.random.Generator):
    return inputs, batch_hard(targets, num_classes)


def _smoothing(inputs: Tensor, targets: Tensor, num_classes: int, rng: np.random.Generator):
    """eps ~ U(0, 0.5), the paper's range, shared by the batch."""
    return inputs, batch_smoothing(targets, num_classes, float(rng.uniform(0, 0.5)))


def _mixup(inputs: Tensor, targets: Tensor, num_classes: int, rng: np.random.Generator):
    """lam ~ U(0, 1) shared by the batch; partners a uniform permutation."""
    partners = torch.from_numpy(rng.permutation(len(targets)))
    return batch_mixup(inputs, targets, num_classes, float(rng.uniform(0, 1)), partners)


#: Label family -> (inputs, targets, num_classes, rng) -> (inputs, (B, C) labels).
BATCH_DRAWS: Registry[BatchDraw] = Registry("batch label family")
BATCH_DRAWS.add("hard", _hard)
BATCH_DRAWS.add("smoothing", _smoothing)
BATCH_DRAWS.add("mixup", _mixup)


def draw_batch(
    family: str, images: ImageSet, num_classes: int, batch_size: int, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """B normalised inputs (drawn without replacement when the set is large enough) and their
    labels by ``family``'s batch protocol.

    Shapes: returns (B, C, H, W) and (B, num_classes) float64.
    """
    draw = BATCH_DRAWS[family]
    count = len(images.labels)
    index = rng.choice(count, batch_size, replace=batch_size > count)
    inputs = images.normalise(images.images[index])
    return draw(inputs, images.labels[index].long(), num_classes, rng)
