"""The client side: what a federated-learning client computes and sends."""

from gradleak.client.files import (
    SavedObservation,
    load_observation,
    load_saved_observation,
    save_observation,
)
from gradleak.client.observation import ClientSecret, GradientObservation
from gradleak.client.simulate import find_classifier, simulate_client_step

__all__ = [
    "ClientSecret",
    "GradientObservation",
    "SavedObservation",
    "find_classifier",
    "load_observation",
    "load_saved_observation",
    "save_observation",
    "simulate_client_step",
]
