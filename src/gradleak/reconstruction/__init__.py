"""Input reconstruction from one client's gradient: a registry of attacks behind one verb."""

from gradleak.reconstruction import (  # noqa: F401  (importing registers the attacks)
    analytic_fc,
    dlg,
    inverting_gradients,
)
from gradleak.reconstruction.analytic_fc import AnalyticFC, LayerFit
from gradleak.reconstruction.api import check_label_input, reconstruct
from gradleak.reconstruction.dlg import DeepLeakage
from gradleak.reconstruction.fc_chain import NotLinearReluChain, linear_relu_chain
from gradleak.reconstruction.inverting_gradients import InvertingGradients
from gradleak.reconstruction.matching_settings import DISTANCES, OPTIMIZERS, MatchingSettings
from gradleak.reconstruction.registry import ATTACKS, Attack, build_attack, register
from gradleak.reconstruction.result import Reconstruction

__all__ = [
    "ATTACKS",
    "DISTANCES",
    "OPTIMIZERS",
    "AnalyticFC",
    "Attack",
    "DeepLeakage",
    "InvertingGradients",
    "LayerFit",
    "MatchingSettings",
    "NotLinearReluChain",
    "Reconstruction",
    "build_attack",
    "check_label_input",
    "linear_relu_chain",
    "reconstruct",
    "register",
]
