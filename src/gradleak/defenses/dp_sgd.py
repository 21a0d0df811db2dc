"""DP-SGD on one input's gradient, as Opacus computes it: clip to C, add N(0, (sigma C)^2).

Abadi et al., CCS 2016; Opacus's DPOptimizer: per-sample clipping (`clipping`), the sum, then
Gaussian noise of standard deviation ``noise_multiplier * max_grad_norm`` per entry, divided by
the batch size. An observation holds one gradient, so this defense takes one input
(``num_samples == 1``, where per-sample and per-update clipping agree); a batch's DP-SGD step
needs its per-sample gradients: `gradleak.integrations.opacus` runs Opacus itself. The privacy
of the noise is accounted by Opacus (`gradleak.integrations.opacus.epsilon`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gradleak.client.observation import GradientObservation
from gradleak.defenses.additive import add_noise, check_noise_params
from gradleak.defenses.clipping import check_positive, clip_factor, scaled
from gradleak.defenses.gaussian import standard_normal
from gradleak.defenses.registry import DEFENSES


@DEFENSES.register("dp-sgd")
@dataclass(frozen=True)
class DPSGD:
    """Clip to ``max_grad_norm`` (> 0), then add N(0, (noise_multiplier * max_grad_norm)^2)
    to every entry (``noise_multiplier`` >= 0). Shapes: unchanged."""

    max_grad_norm: float
    noise_multiplier: float

    def __post_init__(self) -> None:
        check_positive("max_grad_norm", self.max_grad_norm)
        check_noise_params(self.noise_multiplier, False)

    def apply(
        self, observation: GradientObservation, *, generator: torch.Generator
    ) -> GradientObservation:
        if observation.num_samples != 1:
            raise ValueError(
                f"dp-sgd on an observation takes one input (num_samples = 1), got "
                f"{observation.num_samples}: DP-SGD clips each sample, and a batch's observation "
                "holds only their mean; audit batches with gradleak.integrations.opacus"
            )
        clipped = scaled(observation, clip_factor(observation, self.max_grad_norm))
        return add_noise(
            clipped,
            standard_normal,
            scale=float(self.noise_multiplier * self.max_grad_norm),
            relative=False,
            generator=generator,
        )
