"""Client-side defenses that transform the gradient before the server sees it: noise
(Gaussian, Laplace), clipping, DP-SGD, top-k sparsification and quantization."""

from gradleak.defenses import (  # noqa: F401  (register the defenses)
    clipping,
    dp_sgd,
    gaussian,
    laplace,
    quantization,
    sparsification,
)
from gradleak.defenses.api import apply
from gradleak.defenses.clipping import Clipping
from gradleak.defenses.dp_sgd import DPSGD
from gradleak.defenses.gaussian import GaussianNoise
from gradleak.defenses.laplace import LaplaceNoise
from gradleak.defenses.quantization import Quantization
from gradleak.defenses.registry import DEFENSES, Defense
from gradleak.defenses.sparsification import TopK

__all__ = [
    "DEFENSES",
    "DPSGD",
    "Clipping",
    "Defense",
    "GaussianNoise",
    "LaplaceNoise",
    "Quantization",
    "TopK",
    "apply",
]
