"""Identifiability suite: false accepts at the smallest class counts, on random last layers.

Each trial draws a random classifier W (C x m), a feature x (mixed-sign or post-ReLU), a
logit scale from flat to saturated softmax, and a label of the client's family with random
parameters, then computes the client's gradient dL/dW = (p - y) x^T in ``dtype`` (float32
as a real client, or exact float64) and attacks it with the attacker's family. A false
accept is a converged answer whose label is more than ``SUCCESS_L1`` from the truth; the
count of equations against unknowns (`recovery.identifiability`) says which settings must be
refused. Paper: Wang, Liang & He, ICLR 2024, Theorem 1.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import gradleak
from gradleak.experiments.suites.base import Record, TrialTask
from gradleak.experiments.tables import markdown
from gradleak.families import FAMILIES
from gradleak.metrics.labels import label_l1
from gradleak.output_files import write_atomic
from gradleak.recovery import ATTACK_FAMILIES
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.identifiability import identifiability
from gradleak.recovery.last_layer import SCALE_MODES

SUCCESS_L1 = 1e-2
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class IdentifiabilityTrials:
    """Random last-layer problems: C classes, the client's and the attacker's families."""

    num_classes: int
    label_family: str
    attack_family: str
    samples: int = 2000
    feature_dim: int = 64
    bias: bool = False
    dtype: str = "float32"
    scale: str = "known"
    title: str = ""

    def __post_init__(self) -> None:
        if self.samples < 1 or self.feature_dim < 1 or self.num_classes < 2:
            raise ValueError("samples and feature_dim must be >= 1 and num_classes >= 2")
        if self.label_family not in FAMILIES:
            raise ValueError(
                f"label_family={self.label_family!r}: choose one of {', '.join(FAMILIES)}"
            )
        if self.attack_family not in ATTACK_FAMILIES:
            raise ValueError(
                f"attack_family={self.attack_family!r}: choose one of {', '.join(ATTACK_FAMILIES)}"
            )
        if self.scale not in SCALE_MODES:
            raise ValueError(f"scale={self.scale!r}: choose one of {', '.join(SCALE_MODES)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r}: choose one of {sorted(DTYPES)}")

    @property
    def name(self) -> str:
        if self.title:
            return self.title
        bias = " bias" if self.bias else ""
        scale = "" if self.scale == "known" else " unknown scale"
        return (
            f"C={self.num_classes} {self.label_family} as {self.attack_family}{bias}{scale} "
            f"{self.dtype}"
        )


@dataclass(frozen=True)
class IdentifiabilityRecord:
    """One random client's answer: accepted or refused (and the reason's first words)."""

    case: str
    trial: int
    seed: int
    num_classes: int
    label_family: str
    attack_family: str
    bias: bool
    dtype: str
    scale: str
    converged: bool
    l1: float | None
    correct: bool
    found_family: str
    reason: str


def draw_problem(case: IdentifiabilityTrials, rng: np.random.Generator):
    """(weight, weight_grad, bias, bias_grad, true label) of one random client, in its dtype.

    Shapes: (C, m), (C, m), (C,) or None, (C,) or None, (C,).
    """
    dtype = DTYPES[case.dtype]
    size, classes = case.feature_dim, case.num_classes
    scale = float(np.exp(rng.uniform(np.log(0.1), np.log(30.0))))
    weight = torch.from_numpy(rng.normal(size=(classes, size)) * scale / np.sqrt(size)).to(dtype)
    features = torch.from_numpy(rng.normal(size=size)).to(dtype)
    if rng.random() < 0.5:
        features = features.abs()
    bias = torch.from_numpy(rng.normal(size=classes)).to(dtype) if case.bias else None
    truth = FAMILIES[case.label_family].random(classes, rng).probabilities.to(dtype)
    logits = weight @ features + (0 if bias is None else bias)
    logit_grad = torch.softmax(logits, dim=-1) - truth
    return weight, torch.outer(logit_grad, features), bias, logit_grad if case.bias else None, truth


def run_trial(task: TrialTask) -> list[Record]:
    """One random client attacked with the case's attacker family; scored against the truth."""
    case: IdentifiabilityTrials = task.case
    weight, weight_grad, bias, bias_grad, truth = draw_problem(
        case, np.random.default_rng(task.seed)
    )
    try:
        estimate = gradleak.recover_from_last_layer(
            weight, weight_grad, bias, bias_grad, family=case.attack_family, scale=case.scale
        )
    except ValueError as error:  # an all-zero (underflowed) gradient: refused before search
        estimate = LabelEstimate.refusal(
            case.num_classes, reason=f"refused: {error}", method="-", family="none"
        )
    l1 = label_l1(estimate.soft_label, truth) if estimate.converged else None
    record = IdentifiabilityRecord(
        case=case.name,
        trial=task.trial,
        seed=task.seed,
        num_classes=case.num_classes,
        label_family=case.label_family,
        attack_family=case.attack_family,
        bias=case.bias,
        dtype=case.dtype,
        scale=case.scale,
        converged=bool(estimate.converged),
        l1=l1,
        correct=l1 is not None and l1 < SUCCESS_L1,
        found_family=estimate.family,
        reason=re.split(r"[:(,]", estimate.reason)[0].strip(),
    )
    return [asdict(record)]


def summarise(records: list[Record]) -> list[dict]:
    """One row per case: accepted, correct, false accepts, refusals by reason, identifiable."""
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        groups[record["case"]].append(record)
    rows = []
    for name, trials in groups.items():
        first = trials[0]
        count = identifiability(first["num_classes"], first["attack_family"], bias=first["bias"])
        refusals: dict[str, int] = defaultdict(int)
        for trial in trials:
            if not trial["converged"]:
                refusals[trial["reason"]] += 1
        rows.append(
            {
                "setting": name,
                "identifiable": "yes" if count.identifiable else f"no (C >= {count.min_classes})",
                "N": len(trials),
                "recovered": sum(t["converged"] and t["correct"] for t in trials),
                "false accepts": sum(t["converged"] and not t["correct"] for t in trials),
                "refused": ", ".join(f"{n} {why}" for why, n in sorted(refusals.items())) or "0",
            }
        )
    return rows


COLUMNS = ("setting", "identifiable", "N", "recovered", "false accepts", "refused")


def by_class_count(records: list[Record]) -> str:
    """One row per C, one column per (client family, attacker family): "recovered / false
    accepts" of N, the compact form of `summarise`."""
    cells: dict[tuple[int, str], list[Record]] = defaultdict(list)
    for record in records:
        scale = "" if record.get("scale", "known") == "known" else ", unknown scale"
        column = f"{record['label_family']} as {record['attack_family']}{scale}"
        cells[(record["num_classes"], column)].append(record)
    columns = list(dict.fromkeys(column for _, column in cells))
    lines = [
        "| C | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for count in sorted({c for c, _ in cells}):
        row = []
        for column in columns:
            trials = cells.get((count, column), [])
            recovered = sum(t["converged"] and t["correct"] for t in trials)
            wrong = sum(t["converged"] and not t["correct"] for t in trials)
            row.append(f"{recovered} / {wrong} of {len(trials)}" if trials else "-")
        lines.append(f"| {count} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def report(records: list[Record], folder: Path) -> list[Path]:
    """table.md: per setting, recovered, false accepts (must be 0) and refusals by reason;
    by-class-count.md: recovered / false accepts per class count and family pair."""
    path, compact = folder / "table.md", folder / "by-class-count.md"
    write_atomic(path, markdown(summarise(records), COLUMNS))
    write_atomic(compact, by_class_count(records))
    return [path, compact]
