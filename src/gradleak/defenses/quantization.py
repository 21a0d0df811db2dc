"""Quantization of the gradient a client sends: float16, bfloat16 or int8, read back as sent.

float16 / bfloat16 round every entry to that format; int8 is per-tensor symmetric
(scale = max |g| / 127, round to the nearest level), as communication-efficient FL sends it.
The server knows the format it receives, so the observation declares the format's relative
precision (``precision``: 2^-11 for float16, 2^-8 for bfloat16, 1/254 for int8): the attacks'
noise floors follow it instead of the float32 they would otherwise assume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from gradleak.client.observation import GradientObservation
from gradleak.defenses.registry import DEFENSES


def _cast(dtype: torch.dtype) -> Callable[[Tensor], Tensor]:
    return lambda gradient: gradient.to(dtype).to(gradient.dtype)


def _int8(gradient: Tensor) -> Tensor:
    scale = float(gradient.abs().max()) / 127.0
    if scale == 0.0:
        return gradient
    levels = torch.round(gradient.double() / scale).clamp(-127, 127)
    return (levels * scale).to(gradient.dtype)


#: format -> (quantize one tensor, its relative precision: half a step over the largest value).
FORMATS: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {
    "float16": (_cast(torch.float16), 2.0**-11),
    "bfloat16": (_cast(torch.bfloat16), 2.0**-8),
    "int8": (_int8, 1.0 / 254.0),
}


@DEFENSES.register("quantization")
@dataclass(frozen=True)
class Quantization:
    """Quantize every gradient tensor to ``dtype`` (a key of FORMATS). Shapes: unchanged."""

    dtype: str

    def __post_init__(self) -> None:
        if self.dtype not in FORMATS:
            raise ValueError(f"dtype must be one of {', '.join(FORMATS)}, got {self.dtype!r}")

    def apply(
        self, observation: GradientObservation, *, generator: torch.Generator
    ) -> GradientObservation:
        quantize, precision = FORMATS[self.dtype]
        gradients = {name: quantize(g) for name, g in observation.gradients.items()}
        declared = max(precision, observation.precision or 0.0)
        return replace(observation, gradients=gradients, precision=declared)
