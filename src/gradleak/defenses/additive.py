"""Shared mechanics of additive gradient noise: parameter checks and per-tensor application.

Shapes: every gradient tensor keeps its shape, dtype and device; noise is drawn per tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from numbers import Real

import torch
from torch import Tensor

from gradleak.client.observation import GradientObservation

#: Draws noise of unit scale: (shape, generator) -> float64 CPU tensor.
UnitSampler = Callable[[torch.Size, torch.Generator], Tensor]


def check_noise_params(noise_scale: float, relative: bool) -> None:
    """Raise ValueError naming the argument when ``noise_scale`` or ``relative`` is out of range."""
    if isinstance(noise_scale, bool) or not isinstance(noise_scale, Real):
        raise ValueError(f"noise_scale must be a real number >= 0, got {noise_scale!r}")
    if not (math.isfinite(noise_scale) and noise_scale >= 0):
        raise ValueError(f"noise_scale must be finite and >= 0, got {noise_scale}")
    if not isinstance(relative, bool):
        raise ValueError(f"relative must be True or False, got {relative!r}")


def tensor_scale(gradient: Tensor, scale: float, relative: bool) -> float:
    """The noise scale for one tensor: ``scale``, or ``scale`` times the tensor's RMS."""
    if not relative or gradient.numel() == 0:
        return scale
    return scale * float(gradient.detach().double().square().mean().sqrt())


def add_noise(
    observation: GradientObservation,
    sample: UnitSampler,
    *,
    scale: float,
    relative: bool,
    generator: torch.Generator,
) -> GradientObservation:
    """A new observation whose every gradient tensor has ``sample`` noise times its scale added.

    Tensors are visited in the observation's order; noise is drawn on the CPU in float64 (so a
    seed gives the same noise whatever the device), added in float64 and cast back. A tensor
    whose scale is 0 is passed through unchanged. Parameters are shared, not copied: they are
    read-only and the defense changes only what the client sends.
    """
    noisy: dict[str, Tensor] = {}
    for name, gradient in observation.gradients.items():
        sigma = tensor_scale(gradient, scale, relative)
        if sigma == 0.0:
            noisy[name] = gradient
            continue
        noise = sample(gradient.shape, generator).to(gradient.device)
        noisy[name] = (gradient.double() + sigma * noise).to(gradient.dtype)
    return replace(observation, gradients=noisy)


@dataclass(frozen=True)
class AdditiveNoise:
    """Base of the noise defenses: ``noise_scale`` times a unit draw of ``sampler`` per entry,
    with ``relative=True`` meaning ``noise_scale`` times each tensor's gradient RMS."""

    noise_scale: float
    relative: bool = False

    def __post_init__(self) -> None:
        check_noise_params(self.noise_scale, self.relative)

    @staticmethod
    def sampler(shape: torch.Size, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def apply(
        self, observation: GradientObservation, *, generator: torch.Generator
    ) -> GradientObservation:
        return add_noise(
            observation,
            self.sampler,
            scale=float(self.noise_scale),
            relative=self.relative,
            generator=generator,
        )
