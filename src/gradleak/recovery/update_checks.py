"""Refusals an observation carries before any method runs, and what a sign-only update shows.

`GradientObservation.from_update` records why an update does not identify a label (Adam's
sign-only step, optimizer state from earlier steps, several local steps, too few digits);
every method then refuses with that reason. A sign-only update still shows which classes'
rows point down: reported in the diagnostics as a hard-label guess, never as a recovered label.
"""

from __future__ import annotations

import numpy as np

from gradleak.client.observation import GradientObservation
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.last_layer import as_array


def sign_guess(observation: GradientObservation) -> dict:
    """The classes whose gradient points down (y_i > p_i), read from signs alone.

    With a bias, sign(dL/db_i) = sign(p_i - y_i); without one, the row sums carry the same sign
    when the features are non-negative (ReLU), as iDLG reads them. ``hard_label_guess`` is the
    single such class, or None when there are several or none.
    """
    bias_grad = observation.bias_grad
    if bias_grad is not None:
        signs, source = as_array("bias_grad", bias_grad, 1), "bias gradient signs"
    else:
        signs = as_array("weight_grad", observation.weight_grad, 2).sum(axis=1, dtype=np.float64)
        source = "weight-gradient row sums (iDLG's rule)"
    negative = [int(index) for index in np.flatnonzero(signs < 0)]
    return {
        "negative_classes": negative,
        "hard_label_guess": negative[0] if len(negative) == 1 else None,
        "hard_label_guess_from": source,
    }


def observation_refusal(
    observation: GradientObservation, *, method: str, family: str
) -> LabelEstimate | None:
    """A refusal when the observation itself rules out a label (`not_identifiable`), else None."""
    if not observation.not_identifiable:
        return None
    diagnostics = sign_guess(observation) if observation.sign_only else {}
    return LabelEstimate.refusal(
        observation.num_classes,
        reason=observation.not_identifiable,
        method=method,
        family=family,
        diagnostics=diagnostics,
    )
