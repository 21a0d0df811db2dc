"""gradleak: measure how much one federated-learning client's gradient leaks.

Paper: Wang, Liang & He, "Towards Eliminating Hard Label Constraints in Gradient Inversion
Attacks", ICLR 2024.
"""

from gradleak import (
    client,
    data,
    defenses,
    families,
    labels,
    metrics,
    models,
    reconstruction,
    recovery,
    training,
)
from gradleak.client import ClientSecret, GradientObservation, simulate_client_step
from gradleak.reconstruction import Reconstruction, reconstruct
from gradleak.recovery import (
    BatchEstimate,
    LabelEstimate,
    recover_batch,
    recover_batch_from_last_layer,
    recover_from_last_layer,
    recover_label,
)
from gradleak.version import __version__

__all__ = [
    "BatchEstimate",
    "ClientSecret",
    "GradientObservation",
    "LabelEstimate",
    "Reconstruction",
    "__version__",
    "client",
    "data",
    "defenses",
    "families",
    "labels",
    "metrics",
    "models",
    "reconstruct",
    "reconstruction",
    "recover_batch",
    "recover_batch_from_last_layer",
    "recover_from_last_layer",
    "recover_label",
    "recovery",
    "simulate_client_step",
    "training",
]
