"""The public verb of input reconstruction."""

from __future__ import annotations

import torch
from torch import nn

from gradleak.client.observation import GradientObservation
from gradleak.reconstruction.attack_inputs import LabelInput, label_probabilities
from gradleak.reconstruction.registry import build_attack
from gradleak.reconstruction.result import Reconstruction
from gradleak.recovery.estimate import LabelEstimate

_SUM_TOL = 1e-5


def check_label_input(labels: LabelInput, *, num_classes: int) -> None:
    """Raise ValueError naming ``labels`` when it is not a usable label for ``num_classes``.

    A `LabelEstimate` is checked for shape only (an unconverged estimate is the attack's to
    refuse, as a value); oracle labels must be finite, non-negative and sum to 1.
    Shapes: ``labels`` (C,) probabilities, or an object holding them.
    """
    probabilities = label_probabilities(labels)
    if probabilities is None:
        return
    if tuple(probabilities.shape) != (num_classes,):
        raise ValueError(
            f"labels must hold ({num_classes},) probabilities for this model's {num_classes} "
            f"classes, got shape {tuple(probabilities.shape)}"
        )
    if isinstance(labels, LabelEstimate):
        return
    values = probabilities.detach().double()
    if not torch.isfinite(values).all() or (values < 0).any():
        raise ValueError("labels must be finite, non-negative probabilities")
    total = float(values.sum())
    if abs(total - 1.0) > _SUM_TOL:
        raise ValueError(f"labels must sum to 1 (within {_SUM_TOL}), got {total}")


def reconstruct(
    observation: GradientObservation,
    model: nn.Module,
    attack: str = "inverting-gradients",
    *,
    labels: LabelInput = None,
    **params,
) -> Reconstruction:
    """Reconstruct the client's input from its gradient with a registered attack.

    ``labels`` is a `LabelEstimate` (recovered: what the server can know), a `SoftLabel` or a
    (C,) probability tensor (oracles, for comparison), or None for attacks that optimise the
    label themselves; the client's secret is never an input. ``params`` go to the attack's
    constructor (see ``ATTACKS[attack]``): for the gradient-matching attacks ``settings=`` (a
    `MatchingSettings`) and/or any of its fields (``iterations=``, ``tv_weight=``...), plus
    ``image_mean``, ``image_std`` and ``input_shape``; an unknown name is a ValueError listing
    the accepted ones.
    The model supplies the architecture; the weights the gradient was taken at come from
    ``observation.parameters``.

    Paper: Wang, Liang & He, ICLR 2024, Sec. 5.3. Shapes: returns ``inputs`` (1, C, H, W).
    """
    if not isinstance(observation, GradientObservation):
        raise ValueError(
            f"observation must be a GradientObservation, got {type(observation).__name__}"
        )
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch nn.Module, got {type(model).__name__}")
    check_label_input(labels, num_classes=observation.num_classes)
    return build_attack(attack, **params).run(observation, model, labels=labels)
