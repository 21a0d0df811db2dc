"""The value every input-reconstruction attack returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gradleak.json_values import fields_dict


@dataclass(frozen=True)
class Reconstruction:
    """A reconstructed client input with the evidence for it.

    ``inputs`` lives in the model's (normalised) input space, shaped like the client's batch;
    metrics de-normalise it with the dataset's statistics. ``objective`` is the attack's final
    loss (gradient distance for optimisation attacks, relative residual for analytic ones) and
    ``history`` its trace (per iteration, or per layer for layer-by-layer inversion).
    ``converged`` is decided from observable quantities only; when it is False, ``reason``
    says why and ``inputs`` is the best the attack has (zeros when it has nothing).

    Paper: Wang, Liang & He, ICLR 2024, Sec. 5.3 (image reconstruction from recovered labels).
    Shapes: ``inputs`` (1, C, H, W) (or (1, d) for flat inputs); ``history`` (iterations,) or
    fewer entries.
    """

    inputs: Tensor
    objective: float
    iterations: int
    converged: bool
    history: tuple[float, ...]
    attack: str
    reason: str = ""
    diagnostics: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", self.inputs.detach())
        object.__setattr__(self, "history", tuple(float(value) for value in self.history))
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if not self.converged and not self.reason:
            raise ValueError("a Reconstruction with converged=False must say why in reason")

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (``inputs`` as nested lists)."""
        return fields_dict(self)


def refusal(shape: tuple[int, ...], attack: str, reason: str) -> Reconstruction:
    """An attack that declined to run: zeros of ``shape``, ``converged=False`` and why."""
    return Reconstruction(
        inputs=torch.zeros(shape),
        objective=float("nan"),
        iterations=0,
        converged=False,
        history=(),
        attack=attack,
        reason=reason,
    )
