"""Undo the client's optimizer: the gradient, or what is left of it, from one sent update.

A server receives the parameters after the client's step; ``delta = before - after``. For the
first step of a freshly built ``torch.optim`` optimizer (Flower's clients build one per round):

- SGD: the momentum buffer starts as the step direction d = g + wd * before, so
  ``delta = lr * d`` (plain or heavy-ball momentum) or ``lr * (1 + momentum) * d`` (Nesterov).
  Undone exactly: g = delta / (lr * f) - wd * before.
- Adam / AdamW: the bias-corrected moments of one step are g and g^2, so
  ``delta = lr * g / (|g| + eps)`` (+ ``lr * wd * before`` for AdamW's decoupled decay; Adam's
  L2 decay is inside g). With |g| >> eps = 1e-8 every entry is lr * sign(g) to the parameters'
  rounding: the magnitudes, and with them the soft label, are gone. Only signs survive.

Later steps carry state (a momentum buffer, Adam's moments) the server never sees: refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.registry import Registry


@dataclass(frozen=True)
class UndoneUpdate:
    """The gradient read back from an update, and what the update rule left of it.

    ``gradients`` are float64. ``sign_only``: only their signs carry information (Adam).
    ``not_identifiable`` is the reason no label can be read from them ("" when one can).
    """

    gradients: dict[str, Tensor]
    sign_only: bool = False
    not_identifiable: str = ""


@dataclass(frozen=True)
class UpdateSettings:
    """What the server knows of the client's step (the train config it sent)."""

    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    fresh_optimizer: bool = True

    def __post_init__(self) -> None:
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0 (the client's learning rate), got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0 (torch.optim.SGD refuses it too)")


#: optimizer key -> function(before, delta, settings) -> UndoneUpdate. Keys are the
#: ``optimizer`` argument of `GradientObservation.from_update`.
UPDATE_RULES: Registry = Registry("optimizer")


def _as64(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {name: value.to(torch.float64) for name, value in tensors.items()}


@UPDATE_RULES.register("sgd")
def undo_sgd(
    before: Mapping[str, Tensor], delta: Mapping[str, Tensor], settings: UpdateSettings
) -> UndoneUpdate:
    """g = delta / (lr * (1 + momentum if nesterov else 1)) - weight_decay * before."""
    if settings.momentum > 0 and not settings.fresh_optimizer:
        return UndoneUpdate(
            _as64(delta),
            not_identifiable=(
                "the client's SGD momentum buffer carries earlier steps the server never "
                "saw (fresh_optimizer=False): the update mixes this gradient with them"
            ),
        )
    factor = settings.lr * (1 + settings.momentum if settings.nesterov else 1)
    gradients = {
        name: step.to(torch.float64) / factor
        - settings.weight_decay * before[name].to(torch.float64)
        for name, step in delta.items()
    }
    return UndoneUpdate(gradients)


def _undo_adam(decoupled: bool):
    def undo(
        before: Mapping[str, Tensor], delta: Mapping[str, Tensor], settings: UpdateSettings
    ) -> UndoneUpdate:
        decay = settings.lr * settings.weight_decay if decoupled else 0.0
        signs = {
            name: (step.to(torch.float64) - decay * before[name].to(torch.float64)) / settings.lr
            for name, step in delta.items()
        }
        reason = (
            "sign-only update: Adam's first step is lr * g / (|g| + eps), lr * sign(g) to the "
            "parameters' rounding, so the gradient's magnitudes are gone, and with them the "
            "soft label (only the signs remain: a hard-label guess at best)"
        )
        if not settings.fresh_optimizer:
            reason = (
                "the client's Adam moments carry earlier steps the server never saw "
                "(fresh_optimizer=False); besides, " + reason
            )
        return UndoneUpdate(signs, sign_only=True, not_identifiable=reason)

    return undo


UPDATE_RULES.add("adam", _undo_adam(decoupled=False))
UPDATE_RULES.add("adamw", _undo_adam(decoupled=True))
