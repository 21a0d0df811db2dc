"""Registry of label-recovery methods: a kebab-case key -> a class with ``recover``.

Every method declares the attack families it answers (``families``) and is called as
``recover(observation, family=...)``; `recover_label` checks the family against that
declaration, so no caller special-cases a method by name.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from gradleak.client.observation import GradientObservation
from gradleak.recovery.estimate import LabelEstimate
from gradleak.registry import Registry

#: Families an attacker can assume: the client's, or "auto" when it is hidden.
ATTACK_FAMILIES = ("hard", "smoothing", "mixup", "auto")
#: What a one-hot baseline answers to.
ONE_HOT = ("hard", "auto")


class LabelRecovery(Protocol):
    """A built method: its parameters fixed, the families it answers declared."""

    key: ClassVar[str]
    families: ClassVar[tuple[str, ...]]

    def recover(self, observation: GradientObservation, *, family: str) -> LabelEstimate: ...


METHODS: Registry[type] = Registry("recovery method")


def check_family(method: str, family: str) -> None:
    """``family`` must be one ``method`` answers."""
    families = METHODS[method].families
    if family not in families:
        raise ValueError(
            f"method={method!r} answers the attack families {', '.join(families)}; got "
            f"family={family!r}"
        )
