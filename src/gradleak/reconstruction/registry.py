"""Registry of input-reconstruction attacks: a kebab-case key -> a class with ``run(...)``.

An attack class holds its parameters (validated in ``__init__``) and nothing else; ``run``
reads the observation and the model and returns a `Reconstruction`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Protocol

from torch import nn

from gradleak.client.observation import GradientObservation
from gradleak.reconstruction.attack_inputs import LabelInput
from gradleak.reconstruction.result import Reconstruction

_KEY_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class Attack(Protocol):
    """What `build_attack` returns: an object whose parameters were fixed at construction."""

    key: str

    def run(
        self, observation: GradientObservation, model: nn.Module, *, labels: LabelInput
    ) -> Reconstruction: ...


ATTACKS: dict[str, type] = {}


def register(key: str) -> Callable[[type], type]:
    """Class decorator adding an attack under the kebab-case ``key`` (sets ``cls.key``).

    Shapes: not applicable.
    """
    if not _KEY_RE.match(key):
        raise ValueError(f"attack key must be kebab-case (e.g. 'analytic-fc'), got {key!r}")

    def add(cls: type) -> type:
        if key in ATTACKS:
            raise ValueError(f"attack {key!r} is registered twice")
        ATTACKS[key] = cls
        cls.key = key
        return cls

    return add


def build_attack(key: str, **params) -> Attack:
    """Instantiate the attack registered as ``key`` with its parameters.

    Unknown keys and unknown parameter names raise ValueError listing what is allowed.
    Shapes: not applicable.
    """
    if key not in ATTACKS:
        known = ", ".join(sorted(ATTACKS)) or "(none registered)"
        raise ValueError(f"attack={key!r} is unknown; known attacks: {known}")
    cls = ATTACKS[key]
    accepted = [
        name
        for name, parameter in inspect.signature(cls).parameters.items()
        if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    takes_any = any(
        parameter.kind is parameter.VAR_KEYWORD
        for parameter in inspect.signature(cls).parameters.values()
    )
    unknown = sorted(set(params) - set(accepted))
    if unknown and not takes_any:
        raise ValueError(
            f"attack {key!r} got unknown parameters {unknown}; it accepts {accepted or 'none'}"
        )
    return cls(**params)
