"""The reconstruction variants of the paper's Table 3, each one function of the same inputs.

``ours`` and ``ours+feature`` use only what the server sees (the recovered label and feature);
``oracle-soft`` and ``oracle-hard`` take the truth from the client's secret and exist to bound
what label recovery can give; ``dlg`` optimises the label jointly. ``analytic-fc`` is the exact
inversion for fully connected networks (Wang, Liang & He, ICLR 2024, Sec. 5.3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from gradleak.client.observation import ClientSecret, GradientObservation
from gradleak.experiments.oracles import oracle_hard_label, oracle_soft_label
from gradleak.reconstruction import Reconstruction, reconstruct
from gradleak.recovery.estimate import LabelEstimate


@dataclass(frozen=True)
class MatchingBudget:
    """Optimisation budget and regularisers shared by the gradient-matching variants.

    Paper settings: 4800 iterations, 10 restarts, TV 1e-2 (untrained) / 1e-3 (trained);
    ``dlg_iterations`` counts L-BFGS steps of the DLG baseline.
    """

    iterations: int = 4800
    restarts: int = 10
    tv_weight: float = 1e-2
    feature_weight: float = 1e-1
    dlg_iterations: int = 300
    seed: int = 0
    image_mean: tuple[float, ...] | None = None
    image_std: tuple[float, ...] | None = None
    progress: bool = False

    def adam(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments of the inverting-gradients attack under this budget."""
        return {
            "iterations": self.iterations,
            "restarts": self.restarts,
            "tv_weight": self.tv_weight,
            "seed": self.seed,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "progress": self.progress,
        } | extra


Variant = Callable[
    [GradientObservation, nn.Module, LabelEstimate, ClientSecret, MatchingBudget], Reconstruction
]


def _ours(observation, model, estimate, secret, budget):
    del secret  # the attack never sees it
    return reconstruct(observation, model, "inverting-gradients", labels=estimate, **budget.adam())


def _ours_feature(observation, model, estimate, secret, budget):
    del secret
    params = budget.adam(feature_weight=budget.feature_weight)
    return reconstruct(observation, model, "inverting-gradients", labels=estimate, **params)


def _oracle_soft(observation, model, estimate, secret, budget):
    del estimate
    label = oracle_soft_label(secret)
    return reconstruct(observation, model, "inverting-gradients", labels=label, **budget.adam())


def _oracle_hard(observation, model, estimate, secret, budget):
    del estimate
    label = oracle_hard_label(secret)
    return reconstruct(observation, model, "inverting-gradients", labels=label, **budget.adam())


def _dlg(observation, model, estimate, secret, budget):
    del estimate, secret
    return reconstruct(
        observation,
        model,
        "dlg",
        iterations=budget.dlg_iterations,
        seed=budget.seed,
        progress=budget.progress,
    )


def _analytic_fc(observation, model, estimate, secret, budget):
    del secret, budget
    return reconstruct(observation, model, "analytic-fc", labels=estimate)


#: Variant name -> function; the names are the table's rows and the CLI's --variants.
VARIANTS: dict[str, Variant] = {
    "oracle-soft": _oracle_soft,
    "oracle-hard": _oracle_hard,
    "dlg": _dlg,
    "ours": _ours,
    "ours+feature": _ours_feature,
    "analytic-fc": _analytic_fc,
}

#: The Table 3 rows for CNNs, and the FCN comparison.
CNN_VARIANTS = ("oracle-soft", "oracle-hard", "dlg", "ours", "ours+feature")
FCN_VARIANTS = ("analytic-fc", "dlg")


def run_variant(
    name: str,
    observation: GradientObservation,
    model: nn.Module,
    estimate: LabelEstimate,
    secret: ClientSecret,
    budget: MatchingBudget,
) -> Reconstruction:
    """Run variant ``name``; unknown names raise ValueError listing the known ones."""
    if name not in VARIANTS:
        raise ValueError(f"variant {name!r} is unknown; choose from {', '.join(VARIANTS)}")
    return VARIANTS[name](observation, model, estimate, secret, budget)
