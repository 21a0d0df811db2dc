"""Gaussian noise on every gradient tensor, the noise defense of the paper's appendix.

Paper: Wang, Liang & He, ICLR 2024, Appendix (noise): the client adds N(0, sigma^2) to its
gradient; label accuracy falls as sigma grows. The same mechanism as the Gaussian mechanism of
differentially private SGD (Abadi et al., CCS 2016), without clipping or accounting.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gradleak.defenses.additive import AdditiveNoise
from gradleak.defenses.registry import DEFENSES


def standard_normal(shape: torch.Size, generator: torch.Generator) -> Tensor:
    """N(0, 1) draws in float64 on the CPU. Shapes: ``shape`` -> ``shape``."""
    return torch.randn(shape, generator=generator, dtype=torch.float64)


@DEFENSES.register("gaussian-noise")
@dataclass(frozen=True)
class GaussianNoise(AdditiveNoise):
    """Add N(0, sigma^2) independently to every entry of every gradient tensor.

    ``noise_scale`` is sigma (>= 0); with ``relative=True`` sigma is ``noise_scale`` times the
    RMS of each tensor's gradient, so one number means the same signal-to-noise ratio for
    every layer.

    Shapes: each gradient keeps its shape and dtype.
    """

    sampler = staticmethod(standard_normal)
