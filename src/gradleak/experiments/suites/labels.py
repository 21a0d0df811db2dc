"""Label-recovery suite: Tables 1 and 2, the noise appendix and the unknown-family study.

Each trial draws an input and a label by the paper's protocol (Wang, Liang & He, ICLR 2024,
Sec. 5.1), optionally perturbs the observed gradient with a defense, and runs every method
on the same observation; the truth scores the answers afterwards.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

import gradleak
from gradleak import defenses
from gradleak.client.updates import ClientUpdate, client_update
from gradleak.experiments.case_checks import (
    check_choice,
    check_client_setting,
    check_defense,
    relative_noise,
)
from gradleak.experiments.suites import resources
from gradleak.experiments.suites.base import Record, TrialTask
from gradleak.experiments.tables import COLUMNS, markdown, refusal_kinds, summarise, write_csv
from gradleak.families import draw_trial
from gradleak.metrics.labels import label_l1, relative_feature_error
from gradleak.output_files import write_atomic
from gradleak.recovery import ATTACK_FAMILIES, METHODS, LabelEstimate
from gradleak.recovery.last_layer import SCALE_MODES, NotSingleInputError

#: Label success as in the paper: l1 distance to the true label below this.
SUCCESS_L1 = 1e-2


def accepting(family: str) -> list[str]:
    """The recovery methods that answer the attack ``family``."""
    return [key for key, method in METHODS.items() if family in method.families]


@dataclass(frozen=True)
class LabelTrials:
    """One table row group: a model, data, the client's label family and the methods.

    ``attack_family`` is what the attacker assumes (empty: the client's ``label_family``;
    ``auto``: the family is hidden). ``defense``/``defense_params`` perturb the observed
    gradient (noise appendix; noise scales relative to each tensor's RMS).
    ``samples_per_method`` caps some methods' trials (the paper search, slower, runs on the
    first N trials of the same gradients). ``scales`` lists the gradient-scale assumptions
    every method runs under ("unknown", the default, and/or "known", the paper's setting).
    ``client_update`` (fields of `ClientUpdate`: optimizer, lr, momentum, nesterov,
    weight_decay, clipping, max_grad_norm) makes the client send a real optimizer step, which
    the server reads back with `GradientObservation.from_update`; empty: the exact gradient.
    ``classifier_bias`` gives the fresh model's classifier a bias. ``checkpoint`` attacks a
    trained model; empty fields mean defaults; ``title`` overrides the row name.
    """

    model: str
    dataset: str
    num_classes: int
    label_family: str
    samples: int = 100
    init: str = "default"
    methods: tuple[str, ...] = ("fast-search",)
    attack_family: str = ""
    per_model: int = 100
    checkpoint: str = ""
    data_root: str = ""
    image_size: int = 0
    defense: str = ""
    defense_params: dict[str, Any] = field(default_factory=dict)
    samples_per_method: dict[str, int] = field(default_factory=dict)
    scales: tuple[str, ...] = ("unknown",)
    client_update: dict[str, Any] = field(default_factory=dict)
    classifier_bias: bool = False
    title: str = ""

    def __post_init__(self) -> None:
        unknown = [method for method in self.methods if method not in METHODS]
        if not self.methods:
            raise ValueError(f"methods must list at least one of {', '.join(METHODS)}")
        if unknown:
            raise ValueError(f"methods {unknown} unknown; choose from {', '.join(METHODS)}")
        if self.samples < 1 or self.per_model < 1:
            raise ValueError("samples and per_model must be >= 1")
        if not self.scales or set(self.scales) - set(SCALE_MODES):
            raise ValueError(f"scales = {list(self.scales)}: choose from {', '.join(SCALE_MODES)}")
        for method, count in self.samples_per_method.items():
            if method not in self.methods or count < 1:
                raise ValueError(
                    f"samples_per_method.{method} = {count}: it must name one of methods "
                    f"({', '.join(self.methods)}) and be >= 1"
                )
        if self.client_update:
            _ = self.update_settings  # unknown fields or values fail here, naming them

    @property
    def update_settings(self) -> ClientUpdate | None:
        """The client's optimizer step, or None for the exact gradient."""
        if not self.client_update:
            return None
        known = {item.name for item in fields(ClientUpdate)}
        unknown = sorted(set(self.client_update) - known)
        if unknown:
            raise ValueError(
                f"client_update: unknown fields {unknown}; choose from {', '.join(sorted(known))}"
            )
        try:
            return ClientUpdate(**self.client_update)
        except ValueError as error:
            raise ValueError(f"client_update: {error}") from None

    @property
    def attacked_family(self) -> str:
        return self.attack_family or self.label_family

    def validate(self) -> None:
        """Check every name against its registry, the checkpoint's card and the class count;
        each method must answer the attack family."""
        check_client_setting(self)
        if self.attack_family:
            check_choice("attack_family", self.attack_family, ATTACK_FAMILIES)
        family = self.attacked_family
        for method in self.methods:
            if family not in METHODS[method].families:
                raise ValueError(
                    f"methods: {method!r} answers only attack families "
                    f"{', '.join(METHODS[method].families)}, but the attack family "
                    f"(attack_family, else label_family) is {family!r}; methods that answer "
                    f"{family!r}: {', '.join(accepting(family))}"
                )
        check_defense(self.defense, self.defense_params)
        if self.checkpoint and self.classifier_bias:
            raise ValueError(
                "classifier_bias = true with a checkpoint: the checkpoint's architecture "
                "decides the bias; drop classifier_bias"
            )

    @property
    def name(self) -> str:
        if self.title:
            return self.title
        text = f"{self.model} ({self.init}) {self.dataset} C={self.num_classes} {self.label_family}"
        if self.attack_family:
            text += f" as {self.attack_family}"
        if self.defense:
            params = dict(self.defense_params)
            if set(params) == {
                "noise_scale"
            }:  # the noise appendix's rows: "+ gaussian-noise 1e-05"
                text += f" + {self.defense} {params['noise_scale']:g}"
            else:
                pairs = " ".join(f"{key}={value}" for key, value in params.items())
                text += f" + {self.defense} {pairs}".rstrip()
        if self.classifier_bias:
            text += " with bias"
        if self.update_settings is not None:
            text += f"; {self.update_settings.describe()}"
        return text


@dataclass(frozen=True)
class LabelRecord:
    """One method's answer on one trial, scored against the truth afterwards."""

    case: str
    method: str
    scale: str
    trial: int
    seed: int
    model: str
    label_family: str
    attack_family: str
    found_family: str
    defense: str
    defense_params: dict[str, Any]
    l1: float | None
    correct: bool
    converged: bool
    residual: float
    mu: float
    gradient_scale: float
    reason: str
    feature_error: float | None
    seconds: float
    clip_factor: float
    hard_label_guess: int | None
    hard_label_guess_correct: bool | None


def run_trial(task: TrialTask) -> list[Record]:
    """Simulate one client, attack it with every method, score each answer."""
    case: LabelTrials = task.case
    images, model = resources.client_setting(case, task.model_seed)
    rng = np.random.default_rng(task.seed)
    inputs, label = draw_trial(case.label_family, images, case.num_classes, rng)
    settings = case.update_settings
    factor = 1.0
    if settings is None:
        observation, secret = gradleak.simulate_client_step(model, inputs, label)
    else:
        observation, secret, factor = client_update(model, inputs, label, settings, rng=rng)
    if case.defense:
        observation = defenses.apply(
            observation, case.defense, seed=task.seed, **relative_noise(case.defense_params)
        )
    truth = secret.soft_label[0]
    records = []
    for method, scale in product(case.methods, case.scales):
        if task.trial >= case.samples_per_method.get(method, case.samples):
            continue
        start = time.perf_counter()
        try:
            estimate = gradleak.recover_label(
                observation, case.attacked_family, method=method, scale=scale
            )
        except NotSingleInputError as error:  # noise can break the rank-one check: a refusal
            estimate = LabelEstimate.refusal(
                truth.shape[-1], reason=str(error), method=method, family="none"
            )
        seconds = time.perf_counter() - start
        l1 = label_l1(estimate.soft_label, truth)
        l1 = l1 if np.isfinite(l1) else None  # a refusal has no label: JSON null, not NaN
        guess = estimate.diagnostics.get("hard_label_guess")
        record = LabelRecord(
            case=case.name,
            method=method,
            scale=scale,
            trial=task.trial,
            seed=task.seed,
            model=case.model,
            label_family=case.label_family,
            attack_family=case.attacked_family,
            found_family=estimate.family,
            defense=case.defense,
            defense_params=dict(case.defense_params),
            l1=l1,
            correct=l1 is not None and l1 < SUCCESS_L1,
            converged=bool(estimate.converged),
            residual=estimate.residual,
            mu=estimate.scale,
            gradient_scale=estimate.gradient_scale,
            reason=estimate.reason,
            feature_error=relative_feature_error(estimate.features, secret.features[0]),
            seconds=seconds,
            clip_factor=factor,
            hard_label_guess=guess,
            hard_label_guess_correct=None if guess is None else guess == int(truth.argmax()),
        )
        records.append(asdict(record))
    return records


def _guesses(records: list[Record]) -> str:
    """Right / made hard-label guesses from the signs of a sign-only update ("-": none)."""
    made = [r.get("hard_label_guess_correct") for r in records]
    made = [correct for correct in made if correct is not None]
    return f"{sum(made)} / {len(made)}" if made else "-"


def report(records: list[Record], folder: Path) -> list[Path]:
    """table.md / table.csv (accuracy, false accepts, refusals with their kinds, times, mean
    +- std label l1 over the trials a method answered, and the hard-label guesses of sign-only
    updates where any were made) and, when the records vary a defense's parameters,
    accuracy-vs-noise.png."""
    rows = summarise(records)
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for record in records:
        key = (record["case"], record["method"], record.get("scale", "known"))
        groups.setdefault(key, []).append(record)
    for row in rows:
        group = groups[(row["setting"], row["method"], row["scale"])]
        answered = [r["l1"] for r in group if r["l1"] is not None and np.isfinite(r["l1"])]
        row["l1 mean ± std"] = (
            f"{np.mean(answered):.3g} ± {np.std(answered):.2g}" if answered else "-"
        )
        row["refusal reasons"] = refusal_kinds(group)
        row["hard-label guesses right"] = _guesses(group)
    columns = (*COLUMNS, "l1 mean ± std", "refusal reasons")
    if any(row["hard-label guesses right"] != "-" for row in rows):
        columns = (*columns, "hard-label guesses right")
    written = [folder / "table.md", folder / "table.csv"]
    write_atomic(written[0], markdown(rows, columns))
    write_csv(written[1], rows, columns)
    if len({json.dumps(r["defense_params"], sort_keys=True) for r in records}) > 1:
        from gradleak.experiments.figures import accuracy_vs_noise

        written.append(accuracy_vs_noise(records, folder / "accuracy-vs-noise.png"))
    return written
