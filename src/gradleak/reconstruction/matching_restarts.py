"""What every gradient-matching restart shares, run alone or batched with the others.

The optimizer and its schedule, the box clamp after a step, and the bookkeeping that keeps a
restart's lowest-objective iterate: one definition, so that the sequential loop and the
batched one (`matching_batched.py`) follow the same rules.

Paper: Geiping et al., NeurIPS 2020 (Adam with step drops, best iterate); Zhu et al.,
NeurIPS 2019 (L-BFGS).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from gradleak.reconstruction.matching_settings import MatchingSettings


class RestartResult(NamedTuple):
    """The lowest-objective iterate of one restart and the trace that led there.

    Shapes: ``inputs`` like the problem's input; ``label_logits`` (B, C) or None.
    """

    objective: float
    inputs: Tensor
    label_logits: Tensor | None
    history: list[float]


class RestartTrace:
    """Best-iterate bookkeeping of one restart: every objective in order, the lowest one and
    the iterate it was evaluated at. A non-finite objective is recorded and ends the restart.

    Shapes: ``inputs`` (B, C, H, W); ``label_logits`` (B, C') or None.
    """

    def __init__(self, inputs: Tensor, label_logits: Tensor | None) -> None:
        self.history: list[float] = []
        self.best = RestartResult(math.inf, inputs, label_logits, self.history)
        self.active = True

    def record(self, value: float, inputs: Tensor, label_logits: Tensor | None) -> bool:
        """Add the objective ``value`` of the iterate (``inputs``, ``label_logits``), copies
        the trace may keep; return whether the restart goes on."""
        self.history.append(value)
        if value < self.best.objective:
            self.best = RestartResult(value, inputs, label_logits, self.history)
        self.active = math.isfinite(value)
        return self.active

    def result(self) -> RestartResult:
        return self.best


def make_optimizer(
    variables: list[Tensor], settings: MatchingSettings
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimizer ``settings`` names and, for Adam, its 10x drops at 3/8, 5/8 and 7/8."""
    if settings.optimizer == "lbfgs":
        lbfgs = torch.optim.LBFGS(
            variables, lr=settings.learning_rate, max_iter=1, line_search_fn="strong_wolfe"
        )
        return lbfgs, None
    adam = torch.optim.Adam(variables, lr=settings.learning_rate)
    milestones = [round(settings.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    return adam, torch.optim.lr_scheduler.MultiStepLR(adam, milestones, gamma=0.1)


def clamp_to_box(inputs: Tensor, bounds: tuple[Tensor, Tensor] | None) -> None:
    """Clamp ``inputs`` in place to the per-channel pixel box (no-op without one).

    Shapes: ``inputs`` (..., C, H, W); ``bounds`` two (1, C, 1, 1) tensors.
    """
    if bounds is None:
        return
    with torch.no_grad():
        inputs.copy_(torch.maximum(torch.minimum(inputs, bounds[1]), bounds[0]))


def detached_copy(tensor: Tensor | None) -> Tensor | None:
    """A copy that keeps no graph and no storage of the optimised variable (None stays None)."""
    return None if tensor is None else tensor.detach().clone()
