"""The one verb of defenses: transform an observation into what a defended client sends."""

from __future__ import annotations

import torch

from gradleak.client.observation import GradientObservation
from gradleak.defenses.registry import DEFENSES, Defense


def apply(
    observation: GradientObservation,
    defense: str | Defense,
    *,
    seed: int,
    **params,
) -> GradientObservation:
    """Apply a registered defense (by key, with ``params``) or a built one to ``observation``.

    Returns a new observation; the input is never modified. ``seed`` seeds a fresh
    ``torch.Generator``, so the same seed gives the same noise.
    Paper: Wang, Liang & He, ICLR 2024, Appendix (noise defenses).
    Shapes: every gradient keeps its shape and dtype.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    if isinstance(defense, str):
        defense = DEFENSES.build(defense, **params)
    elif params:
        raise ValueError(
            f"params {sorted(params)} are only accepted with a defense key; a built defense "
            "already holds its parameters"
        )
    return defense.apply(observation, generator=torch.Generator().manual_seed(seed))
