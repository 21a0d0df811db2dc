"""The reconstruction variants of the paper's Table 3: an attack, a label source, a budget.

``ours`` and ``ours-feature`` use only what the server sees (the recovered label and
feature); ``oracle-soft`` and ``oracle-hard`` take the truth from the client's secret and
exist to bound what label recovery can give; ``dlg`` optimises the label jointly;
``analytic-fc`` is the exact inversion for fully connected networks. The labels are resolved
here, before the attack is called: only `variant_labels` (through `experiments/oracles.py`)
touches the secret, and no attack ever receives it.

Paper: Wang, Liang & He, ICLR 2024, Sec. 5.3 and Table 3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from gradleak.client.observation import ClientSecret, GradientObservation
from gradleak.experiments.oracles import oracle_hard_label, oracle_soft_label
from gradleak.reconstruction import ATTACKS, MatchingSettings, Reconstruction, reconstruct
from gradleak.reconstruction.attack_inputs import LabelInput
from gradleak.recovery.batch.estimate import BatchEstimate
from gradleak.recovery.estimate import LabelEstimate
from gradleak.registry import Registry

#: What label recovery gave: one input's estimate, or a batch's.
Estimate = LabelEstimate | BatchEstimate

#: The recovered-feature weight of ``ours-feature`` in the paper's Table 3 runs.
FEATURE_WEIGHT = 0.1
#: DLG's L-BFGS steps when a run does not say (its own budget: it counts line-searched steps).
DLG_ITERATIONS = 300

#: Per-channel (mean, std) of the client's data, or (None, None) for no pixel box.
ImageBox = tuple[Sequence[float] | None, Sequence[float] | None]


def _recovered(estimate: Estimate, secret: ClientSecret | None) -> LabelInput:
    """The label (and feature) recovered from the gradient: what the server can know."""
    return estimate


def _oracle_soft(estimate: Estimate, secret: ClientSecret | None) -> LabelInput:
    """The client's true soft label (evaluation only)."""
    return oracle_soft_label(_needs(secret, "oracle-soft"))


def _oracle_hard(estimate: Estimate, secret: ClientSecret | None) -> LabelInput:
    """One-hot of the true label's largest entry (evaluation only)."""
    return oracle_hard_label(_needs(secret, "oracle-hard"))


def _joint(estimate: Estimate, secret: ClientSecret | None) -> LabelInput:
    """No label: the attack optimises it jointly with the input (DLG)."""
    return None


def _needs(secret: ClientSecret | None, source: str) -> ClientSecret:
    if not isinstance(secret, ClientSecret):
        raise ValueError(
            f"label_source {source!r} needs the client's secret (a ClientSecret: evaluation "
            f"only), got {type(secret).__name__}; a saved observation has no truth"
        )
    return secret


#: Label source -> (estimate, secret) -> the ``labels`` an attack is given.
LABEL_SOURCES: Registry[Callable[[Estimate, ClientSecret | None], LabelInput]] = Registry(
    "label source"
)
LABEL_SOURCES.add("recovered", _recovered)
LABEL_SOURCES.add("oracle-soft", _oracle_soft)
LABEL_SOURCES.add("oracle-hard", _oracle_hard)
LABEL_SOURCES.add("joint", _joint)
#: The label sources that read the client's secret.
ORACLE_SOURCES = ("oracle-soft", "oracle-hard")


def _matching(
    variant: Variant, settings: MatchingSettings, *, dlg_iterations: int, image_box: ImageBox
) -> dict[str, Any]:
    """The run's settings (the feature term only for a feature variant) and pixel box."""
    weight = settings.feature_weight if variant.feature else 0.0
    mean, std = image_box
    return {
        "settings": replace(settings, feature_weight=weight),
        "image_mean": mean,
        "image_std": std,
    }


def _dlg(
    variant: Variant, settings: MatchingSettings, *, dlg_iterations: int, image_box: ImageBox
) -> dict[str, Any]:
    """DLG as published (its own optimizer, one start, no TV, no pixel box): only the step
    count, the seed and the progress bar come from the run."""
    return {"iterations": dlg_iterations, "seed": settings.seed, "progress": settings.progress}


def _exact(
    variant: Variant, settings: MatchingSettings, *, dlg_iterations: int, image_box: ImageBox
) -> dict[str, Any]:
    """An analytic attack: no optimisation budget."""
    return {}


#: Budget kind -> (variant, settings, dlg_iterations=, image_box=) -> the attack's parameters.
BUDGETS: Registry[Callable[..., dict[str, Any]]] = Registry("budget")
BUDGETS.add("matching", _matching)
BUDGETS.add("dlg", _dlg)
BUDGETS.add("exact", _exact)


@dataclass(frozen=True)
class Variant:
    """One row of Table 3: which attack runs, with which label, under which budget.

    ``attack`` is a reconstruction registry key; ``label_source`` one of `LABEL_SOURCES`
    ("recovered", "oracle-soft", "oracle-hard", "joint": no label, the attack optimises it);
    ``feature`` adds the recovered-feature term (``settings.feature_weight``); ``budget`` one
    of `BUDGETS` ("matching": the run's `MatchingSettings`; "dlg": DLG's own, with
    ``dlg_iterations`` steps; "exact": none).

    Shapes: not applicable.
    """

    attack: str
    label_source: str
    feature: bool = False
    budget: str = "matching"

    def __post_init__(self) -> None:
        # Each lookup raises ValueError naming the argument's known keys.
        ATTACKS[self.attack]
        LABEL_SOURCES[self.label_source]
        BUDGETS[self.budget]
        if self.feature and self.label_source != "recovered":
            raise ValueError(
                f"feature=True needs label_source='recovered' (the recovered feature), got "
                f"{self.label_source!r}"
            )

    @property
    def needs_secret(self) -> bool:
        """True for the oracle rows: they exist only where the truth is known."""
        return self.label_source in ORACLE_SOURCES


#: Variant name -> `Variant`; the names are the table's rows, the records' ``variant`` column
#: and the CLI's --variants.
VARIANTS: Registry[Variant] = Registry("variant")
VARIANTS.add("oracle-soft", Variant("inverting-gradients", "oracle-soft"))
VARIANTS.add("oracle-hard", Variant("inverting-gradients", "oracle-hard"))
VARIANTS.add("dlg", Variant("dlg", "joint", budget="dlg"))
VARIANTS.add("ours", Variant("inverting-gradients", "recovered"))
VARIANTS.add("ours-feature", Variant("inverting-gradients", "recovered", feature=True))
VARIANTS.add("analytic-fc", Variant("analytic-fc", "recovered", budget="exact"))

#: The Table 3 rows for CNNs, and the FCN comparison.
CNN_VARIANTS = ("oracle-soft", "oracle-hard", "dlg", "ours", "ours-feature")
FCN_VARIANTS = ("analytic-fc", "dlg")


def variant_labels(
    variant: Variant, *, estimate: Estimate, secret: ClientSecret | None
) -> LabelInput:
    """The ``labels`` the variant's attack gets: the estimate, an oracle label, or None.

    Shapes: an estimate, a (C,) (one input) or (B, C) (a batch) probability tensor, or None.
    """
    return LABEL_SOURCES[variant.label_source](estimate, secret)


def run_variant(
    name: str,
    observation: GradientObservation,
    model: nn.Module,
    *,
    estimate: Estimate,
    secret: ClientSecret | None,
    settings: MatchingSettings,
    dlg_iterations: int = DLG_ITERATIONS,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
) -> Reconstruction:
    """Run variant ``name`` on one gradient; the attack never sees ``secret``.

    ``settings`` is the run's matching budget (seeded per trial); ``dlg_iterations`` DLG's
    own step count; ``image_mean``/``image_std`` the pixel box of the client's data. Unknown
    names raise ValueError listing the known ones; an oracle variant without a secret too.
    Shapes: returns ``inputs`` (B, C, H, W).
    """
    variant = VARIANTS[name]
    labels = variant_labels(variant, estimate=estimate, secret=secret)
    params = BUDGETS[variant.budget](
        variant, settings, dlg_iterations=dlg_iterations, image_box=(image_mean, image_std)
    )
    return reconstruct(observation, model, variant.attack, labels=labels, **params)


#: Budget kind -> its budget in words, from the run's matching settings and DLG's step count.
_BUDGET_WORDS: dict[str, Callable[[MatchingSettings, int], str]] = {
    "matching": lambda settings, _: (
        f"{settings.iterations} Adam steps x {settings.restarts} "
        f"restart{'' if settings.restarts == 1 else 's'}"
    ),
    "dlg": lambda _, dlg_iterations: f"{dlg_iterations} L-BFGS steps",
    "exact": lambda *_: "analytic, no steps",
}


def describe_budget(
    name: str, settings: MatchingSettings, *, dlg_iterations: int = DLG_ITERATIONS
) -> str:
    """Variant ``name``'s optimisation budget in words ("4800 Adam steps x 10 restarts",
    "300 L-BFGS steps", "analytic, no steps"), for records and figure titles."""
    return _BUDGET_WORDS[VARIANTS[name].budget](settings, dlg_iterations)
