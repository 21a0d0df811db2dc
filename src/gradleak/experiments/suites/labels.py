"""Label-recovery suite: Tables 1 and 2, the noise appendix and the unknown-family study.

Each trial draws an input and a label by the paper's protocol (Wang, Liang & He, ICLR 2024,
Sec. 5.1), optionally perturbs the observed gradient with a defense, and runs every method
on the same observation; the truth scores the answers afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import gradleak
from gradleak import defenses
from gradleak.experiments.case_checks import (
    ATTACK_FAMILIES,
    check_choice,
    check_client_setting,
    check_defense,
)
from gradleak.experiments.label_cases import draw_trial
from gradleak.experiments.suites import resources
from gradleak.experiments.suites.base import Record, TrialTask
from gradleak.experiments.tables import COLUMNS, csv, markdown, summarise
from gradleak.metrics.labels import label_l1, relative_feature_error
from gradleak.recovery import LabelEstimate
from gradleak.recovery.last_layer import NotSingleInputError

#: Label success as in the paper: l1 distance to the true label below this.
SUCCESS_L1 = 1e-2


@dataclass(frozen=True)
class LabelMethod:
    """A method of the table: its `recover_label` arguments and the attack families it
    answers (``None``: it takes no family and is not given one)."""

    arguments: Mapping[str, Any]
    families: tuple[str, ...] | None

    def accepts(self, family: str) -> bool:
        """Whether the method can attack under ``family`` (one it ignores counts)."""
        return self.families is None or family in self.families

    def recover_arguments(self, family: str) -> dict[str, Any]:
        """Keyword arguments of `gradleak.recover_label` under the attack ``family``."""
        return dict(self.arguments) | ({} if self.families is None else {"family": family})


#: The baselines answer one-hot labels only.
ONE_HOT = ("hard", "auto")

#: Method key in configs -> how it is called and which attack families it accepts.
METHODS: dict[str, LabelMethod] = {
    "ours-fast": LabelMethod({"method": "scalar-search", "search": "fast"}, ATTACK_FAMILIES),
    "ours-paper": LabelMethod({"method": "scalar-search", "search": "paper"}, ATTACK_FAMILIES),
    "idlg": LabelMethod({"method": "idlg"}, ONE_HOT),
    "gradinversion": LabelMethod({"method": "gradinversion"}, ONE_HOT),
    "llg": LabelMethod({"method": "llg"}, ONE_HOT),
    "nonnegative": LabelMethod({"method": "nonnegative"}, None),
}


def accepting(family: str) -> list[str]:
    """The methods that accept the attack ``family``."""
    return [key for key, spec in METHODS.items() if spec.accepts(family)]


@dataclass(frozen=True)
class LabelTrials:
    """One table row group: a model, data, the client's label family and the methods.

    ``attack_family`` is what the attacker assumes (empty: the client's family; ``auto``: the
    family is hidden). ``defense``/``defense_scale`` perturb the observed gradient (noise
    appendix). ``checkpoint`` attacks a trained model; empty fields mean defaults.
    """

    model: str
    dataset: str
    num_classes: int
    family: str
    samples: int = 100
    init: str = "default"
    methods: tuple[str, ...] = ("ours-fast",)
    attack_family: str = ""
    per_model: int = 100
    checkpoint: str = ""
    data_root: str = ""
    image_size: int = 0
    defense: str = ""
    defense_scale: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        unknown = [method for method in self.methods if method not in METHODS]
        if not self.methods:
            raise ValueError(f"methods must list at least one of {', '.join(METHODS)}")
        if unknown:
            raise ValueError(f"methods {unknown} unknown; choose from {', '.join(METHODS)}")
        if self.samples < 1 or self.per_model < 1:
            raise ValueError("samples and per_model must be >= 1")

    def validate(self) -> None:
        """Check every name against its registry, the checkpoint's card and the class count;
        each method must accept the attack family."""
        check_client_setting(self)
        if self.attack_family:
            check_choice("attack_family", self.attack_family, ATTACK_FAMILIES)
        family = self.attack_family or self.family
        for method in self.methods:
            if not METHODS[method].accepts(family):
                families = ", ".join(METHODS[method].families or ())
                raise ValueError(
                    f"methods: {method!r} answers only attack families {families}, "
                    f"but the attack family (attack_family, else family) is {family!r}; "
                    f"methods that accept {family!r}: {', '.join(accepting(family))}"
                )
        check_defense(self.defense, self.defense_scale)

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        text = f"{self.model} ({self.init}) {self.dataset} C={self.num_classes} {self.family}"
        if self.attack_family:
            text += f" as {self.attack_family}"
        if self.defense:
            text += f" + {self.defense} {self.defense_scale:g}"
        return text


def run_trial(task: TrialTask) -> list[Record]:
    """Simulate one client, attack it with every method, score each answer."""
    case: LabelTrials = task.case
    images, model = resources.client_setting(case, task.model_seed)
    rng = np.random.default_rng(task.seed)
    inputs, label = draw_trial(case, images, rng)
    observation, secret = gradleak.simulate_client_step(model, inputs, label)
    if case.defense:
        observation = defenses.apply(
            observation, case.defense, seed=task.seed, scale=case.defense_scale, relative=True
        )
    truth = secret.soft_label[0]
    records = []
    for method in case.methods:
        params = METHODS[method].recover_arguments(case.attack_family or case.family)
        start = time.perf_counter()
        try:
            estimate = gradleak.recover_label(observation, **params)
        except NotSingleInputError as error:  # noise can break the rank-one check: a refusal
            estimate = LabelEstimate.refusal(
                truth.shape[-1], reason=str(error), method=method, family="none"
            )
        seconds = time.perf_counter() - start
        l1 = label_l1(estimate.soft_label, truth)
        l1 = l1 if np.isfinite(l1) else None  # a refusal has no label: JSON null, not NaN
        records.append(
            {
                "case": case.name,
                "method": method,
                "trial": task.trial,
                "seed": task.seed,
                "model": case.model,
                "family": case.family,
                "attack_family": case.attack_family or case.family,
                "found_family": estimate.family,
                "defense": case.defense,
                "defense_scale": case.defense_scale,
                "l1": l1,
                "correct": l1 is not None and l1 < SUCCESS_L1,
                "converged": bool(estimate.converged),
                "residual": estimate.residual,
                "scale": estimate.scale,
                "reason": estimate.reason,
                "feature_error": relative_feature_error(estimate.features, secret.features[0]),
                "seconds": seconds,
            }
        )
    return records


def report(records: list[Record], folder: Path) -> list[Path]:
    """table.md / table.csv (accuracy, false accepts, refusals, times, mean +- std label l1
    over the trials a method answered) and, when the records vary a defense scale,
    accuracy-vs-noise.png."""
    rows = summarise(records)
    answered_l1: dict[tuple[str, str], list[float]] = {}
    for record in records:
        if record["l1"] is not None and np.isfinite(record["l1"]):
            answered_l1.setdefault((record["case"], record["method"]), []).append(record["l1"])
    for row in rows:
        answered = answered_l1.get((row["setting"], row["method"]), [])
        row["l1 mean ± std"] = (
            f"{np.mean(answered):.3g} ± {np.std(answered):.2g}" if answered else "-"
        )
    columns = (*COLUMNS, "l1 mean ± std")
    written = [folder / "table.md", folder / "table.csv"]
    written[0].write_text(markdown(rows, columns))
    written[1].write_text(csv(rows, columns))
    if len({r["defense_scale"] for r in records}) > 1:
        from gradleak.experiments.figures import accuracy_vs_noise

        written.append(accuracy_vs_noise(records, folder / "accuracy-vs-noise.png"))
    return written
