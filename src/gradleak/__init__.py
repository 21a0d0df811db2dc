"""gradleak: measure how much one federated-learning client's gradient leaks.

Paper: Wang, Liang & He, "Towards Eliminating Hard Label Constraints in Gradient Inversion
Attacks", ICLR 2024.
"""

from gradleak import labels, models
from gradleak.client import ClientSecret, GradientObservation, simulate_client_step
from gradleak.reconstruction import Reconstruction, reconstruct
from gradleak.recovery import LabelEstimate, recover_from_last_layer, recover_label

__version__ = "0.1.0"

__all__ = [
    "ClientSecret",
    "GradientObservation",
    "LabelEstimate",
    "Reconstruction",
    "labels",
    "models",
    "reconstruct",
    "recover_from_last_layer",
    "recover_label",
    "simulate_client_step",
]
