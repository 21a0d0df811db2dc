"""Registry of input-reconstruction attacks: a kebab-case key -> a class with ``run(...)``.

An attack class holds its parameters (validated in ``__init__``) and nothing else; ``run``
reads the observation and the model and returns a `Reconstruction`. The attack never receives
the client's secret: oracle labels are resolved by the caller (`experiments/variants.py`).
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import nn

from gradleak.client.observation import GradientObservation
from gradleak.reconstruction.attack_inputs import LabelInput
from gradleak.reconstruction.result import Reconstruction
from gradleak.registry import Registry


class Attack(Protocol):
    """What `build_attack` returns: an object whose parameters were fixed at construction."""

    key: str

    def run(
        self, observation: GradientObservation, model: nn.Module, *, labels: LabelInput
    ) -> Reconstruction: ...


#: Attack key ("analytic-fc", "dlg", "inverting-gradients") -> attack class.
ATTACKS: Registry[type] = Registry("attack")

#: Class decorator adding an attack under a kebab-case key (sets ``cls.key``).
register = ATTACKS.register


def build_attack(key: str, **params: Any) -> Attack:
    """Instantiate the attack registered as ``key`` with its parameters.

    Unknown keys and unknown parameter names raise ValueError listing what is allowed.
    Shapes: not applicable.
    """
    return ATTACKS.build(key, **params)
