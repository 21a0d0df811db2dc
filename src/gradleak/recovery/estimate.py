"""The value a label-recovery method returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gradleak.json_values import fields_dict


@dataclass(frozen=True)
class LabelEstimate:
    """A recovered soft label and last-layer feature, with the evidence for them.

    Shapes: ``soft_label`` (C,), ``features`` (m,) or None for methods that do not recover it.
    ``scale`` is mu in x = mu * g_r (Paper: Wang, Liang & He, ICLR 2024, Sec. 4.1), ``row`` is r.
    ``residual`` is the family's constraint residual at the solution, relative to the size of
    the logit gradient (0 for an exact fit). ``gradient_scale`` is k in k dL/dW = the observed
    gradient: fitted when the scale is unknown (clipping, an unknown learning rate), 1.0 when
    it is known. ``converged`` is decided from observable quantities only; when it is False,
    ``reason`` says why.
    """

    soft_label: Tensor
    features: Tensor | None
    scale: float
    residual: float
    converged: bool
    family: str
    method: str
    row: int = -1
    reason: str = ""
    gradient_scale: float = 1.0
    family_params: Mapping[str, Any] = field(default_factory=dict)
    diagnostics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return int(self.soft_label.shape[-1])

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready values (tensors as lists, a refusal's NaN label as None)."""
        return fields_dict(self)

    @classmethod
    def refusal(
        cls,
        num_classes: int,
        *,
        reason: str,
        method: str,
        family: str,
        diagnostics: Mapping[str, Any] | None = None,
    ) -> LabelEstimate:
        """An answer that declines to name a label: NaN label, no feature, ``converged=False``.

        For settings where the gradient cannot single out a label at all (not identifiable),
        so that no number in the estimate can be mistaken for a recovered one.
        """
        if not reason:
            raise ValueError("a refusal must say why (reason is empty)")
        return cls(
            soft_label=torch.full((num_classes,), float("nan"), dtype=torch.float64),
            features=None,
            scale=float("nan"),
            residual=float("nan"),
            converged=False,
            family=family,
            method=method,
            reason=reason,
            diagnostics=dict(diagnostics or {}),
        )
