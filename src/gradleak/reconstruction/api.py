"""The public verb of input reconstruction."""

from __future__ import annotations

import torch
from torch import nn

from gradleak.client.observation import GradientObservation
from gradleak.reconstruction.attack_inputs import LabelInput, label_probabilities
from gradleak.reconstruction.registry import build_attack
from gradleak.reconstruction.result import Reconstruction
from gradleak.recovery.batch.estimate import BatchEstimate
from gradleak.recovery.estimate import LabelEstimate

_SUM_TOL = 1e-5


def check_label_input(labels: LabelInput, *, num_classes: int, num_samples: int = 1) -> None:
    """Raise ValueError naming ``labels`` when it is not a usable label for ``num_classes``
    classes and a gradient of ``num_samples`` inputs.

    Estimates are checked for shape only (an unconverged estimate is the attack's to refuse,
    as a value); a `BatchEstimate` must be of ``num_samples`` samples. Oracle labels must be
    finite, non-negative and sum to 1 per sample.
    Shapes: ``labels`` (C,) probabilities for one input, (B, C) for a batch, or an object
    holding them.
    """
    if isinstance(labels, BatchEstimate):
        if labels.num_samples != num_samples:
            raise ValueError(
                f"labels is a BatchEstimate of {labels.num_samples} samples but the observation "
                f"is of {num_samples}"
            )
        if labels.soft_labels is None:
            raise ValueError(
                f"labels is a count-only BatchEstimate (method {labels.method!r}): it holds no "
                "per-sample labels; use method='batch-search'"
            )
        if labels.soft_labels.shape[1] != num_classes:
            raise ValueError(
                f"labels holds {labels.soft_labels.shape[1]} classes, the model {num_classes}"
            )
        return
    if isinstance(labels, LabelEstimate) and num_samples != 1:
        raise ValueError(
            f"labels is a LabelEstimate of one input but the observation is of {num_samples}; "
            "recover a BatchEstimate with gradleak.recover_batch(observation)"
        )
    probabilities = label_probabilities(labels)
    if probabilities is None:
        return
    expected = (num_classes,) if num_samples == 1 else (num_samples, num_classes)
    if tuple(probabilities.shape) not in {expected, (num_samples, num_classes)}:
        raise ValueError(
            f"labels must hold {expected} probabilities for this model's {num_classes} "
            f"classes and the observation's {num_samples} input(s), got shape "
            f"{tuple(probabilities.shape)}"
        )
    if isinstance(labels, LabelEstimate):
        return
    values = probabilities.detach().double()
    if not torch.isfinite(values).all() or (values < 0).any():
        raise ValueError("labels must be finite, non-negative probabilities")
    totals = values.reshape(-1, num_classes).sum(dim=1)
    worst = float((totals - 1.0).abs().max())
    if worst > _SUM_TOL:
        raise ValueError(
            f"labels must sum to 1 per sample (within {_SUM_TOL}), one sums to "
            f"{float(totals[(totals - 1.0).abs().argmax()])}"
        )


def reconstruct(
    observation: GradientObservation,
    model: nn.Module,
    attack: str = "inverting-gradients",
    *,
    labels: LabelInput = None,
    **params,
) -> Reconstruction:
    """Reconstruct the client's input from its gradient with a registered attack.

    ``labels`` is a `LabelEstimate` (recovered: what the server can know), a `BatchEstimate`
    for a batch gradient (``observation.num_samples`` = B > 1), a `SoftLabel` or a (C,) /
    (B, C) probability tensor (oracles, for comparison), or None for attacks that optimise the
    label themselves; the client's secret is never an input. ``params`` go to the attack's
    constructor (see ``ATTACKS[attack]``): for the gradient-matching attacks ``settings=`` (a
    `MatchingSettings`) and/or any of its fields (``iterations=``, ``tv_weight=``...), plus
    ``image_mean``, ``image_std`` and ``input_shape``; an unknown name is a ValueError listing
    the accepted ones. A gradient-matching run shows a progress bar on stderr when it is long
    (iterations x restarts >= 1000, on a terminal or in Jupyter) unless ``progress=False``
    (``progress=True`` always shows one; with ``settings=`` its ``progress`` field decides).
    The model supplies the architecture; the weights the gradient was taken at come from
    ``observation.parameters``.

    A batch is reconstructed as B dummies matched jointly to the mean-reduced gradient, in
    the order of the given labels (score them with `gradleak.metrics.score_batch_images`, which
    pairs them with the truth by optimal assignment). An unconverged `BatchEstimate` is refused
    as a value (``converged=False``, its reason), never filled with guesses.

    Paper: Wang, Liang & He, ICLR 2024, Sec. 5.3. Shapes: returns ``inputs`` (B, C, H, W).
    """
    if not isinstance(observation, GradientObservation):
        raise ValueError(
            f"observation must be a GradientObservation, got {type(observation).__name__}"
        )
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch nn.Module, got {type(model).__name__}")
    check_label_input(
        labels, num_classes=observation.num_classes, num_samples=observation.num_samples
    )
    return build_attack(attack, **params).run(observation, model, labels=labels)
