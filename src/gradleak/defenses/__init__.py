"""Client-side defenses that transform the gradient before the server sees it."""

from gradleak.defenses import gaussian, laplace  # noqa: F401  (register the defenses)
from gradleak.defenses.api import apply
from gradleak.defenses.gaussian import GaussianNoise
from gradleak.defenses.laplace import LaplaceNoise
from gradleak.defenses.registry import DEFENSES, Defense

__all__ = [
    "DEFENSES",
    "Defense",
    "GaussianNoise",
    "LaplaceNoise",
    "apply",
]
