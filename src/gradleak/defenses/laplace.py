"""Laplace noise on every gradient tensor, the second noise defense of the paper's appendix.

Paper: Wang, Liang & He, ICLR 2024, Appendix (noise): the client adds Laplace(0, b) noise to its
gradient (the Laplace mechanism of differential privacy, Dwork et al. 2006, without clipping or
accounting). Its standard deviation is sqrt(2) b.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.defenses.additive import AdditiveNoise
from gradleak.defenses.registry import DEFENSES


def standard_laplace(shape: torch.Size, generator: torch.Generator) -> Tensor:
    """Laplace(0, 1) draws in float64 on the CPU, as the difference of two Exp(1) draws.

    ``torch.distributions.Laplace`` takes no generator; E1 - E2 with E ~ Exp(1) is exactly
    Laplace(0, 1) and never hits log(0). Shapes: ``shape`` -> ``shape``.
    """
    first = torch.empty(shape, dtype=torch.float64).exponential_(1.0, generator=generator)
    second = torch.empty(shape, dtype=torch.float64).exponential_(1.0, generator=generator)
    return first - second


@DEFENSES.register("laplace-noise")
@dataclass(frozen=True)
class LaplaceNoise(AdditiveNoise):
    """Add Laplace(0, b) independently to every entry of every gradient tensor.

    ``noise_scale`` is b (>= 0; standard deviation sqrt(2) b); with ``relative=True`` b is
    ``noise_scale`` times the RMS of each tensor's gradient.

    Shapes: each gradient keeps its shape and dtype.
    """

    sampler = staticmethod(standard_laplace)
