"""Batch suite: every sample's soft label and feature from one batch gradient (docs/batch.md).

Each trial draws B test images and their classes, labels them as the client's augmentation
does (hard; one eps for the batch; batch mixup with one lam and a permutation of partners),
computes the mean-reduced gradient with `simulate_client_step` and attacks it with every batch
method. The truth scores the answers afterwards: recovered labels are matched to the true
ones by optimal assignment (`scipy.optimize.linear_sum_assignment` on the l1 distance).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import gradleak
from gradleak.experiments.case_checks import check_client_setting
from gradleak.experiments.suites import resources
from gradleak.experiments.suites.base import Record, TrialTask
from gradleak.experiments.tables import markdown, refusal_kinds
from gradleak.families.batch_trials import BATCH_DRAWS, draw_batch
from gradleak.metrics import match_labels
from gradleak.output_files import write_atomic
from gradleak.recovery.batch import BATCH_METHODS
from gradleak.recovery.last_layer import SCALE_MODES

#: A sample is recovered when its label is within this l1 of the true one it is matched to.
SUCCESS_L1 = 1e-2


@dataclass(frozen=True)
class BatchTrials:
    """Batches of ``batch_size`` images of ``dataset`` on a ``model`` with the client's
    ``label_family``; ``methods`` are keys of `BATCH_METHODS`; ``scale`` the attack's."""

    model: str
    dataset: str
    num_classes: int
    label_family: str
    batch_size: int
    samples: int = 50
    init: str = "default"
    methods: tuple[str, ...] = ("batch-search",)
    classifier_bias: bool = False
    scale: str = "unknown"
    checkpoint: str = ""
    data_root: str = ""
    image_size: int = 0
    per_model: int = 10
    title: str = ""

    def __post_init__(self) -> None:
        BATCH_DRAWS[self.label_family]  # ValueError listing the families
        unknown = [method for method in self.methods if method not in BATCH_METHODS]
        if unknown or not self.methods:
            raise ValueError(f"methods {unknown}: choose from {', '.join(BATCH_METHODS)}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")
        if self.samples < 1 or self.per_model < 1:
            raise ValueError("samples and per_model must be >= 1")
        if self.scale not in SCALE_MODES:
            raise ValueError(f"scale: choose one of {', '.join(SCALE_MODES)}")

    def validate(self) -> None:
        """Check every name against its registry and the checkpoint's card."""
        check_client_setting(self)

    @property
    def name(self) -> str:
        if self.title:
            return self.title
        bias = " with bias" if self.classifier_bias else ""
        return (
            f"{self.model} ({self.init}) {self.dataset} C={self.num_classes} "
            f"{self.label_family} B={self.batch_size}{bias}"
        )


def run_trial(task: TrialTask) -> list[Record]:
    """Simulate one batch step, attack it with every method, score each answer."""
    case: BatchTrials = task.case
    images, model = resources.client_setting(case, task.model_seed)
    rng = np.random.default_rng(task.seed)
    inputs, labels = draw_batch(case.label_family, images, case.num_classes, case.batch_size, rng)
    observation, secret = gradleak.simulate_client_step(model, inputs, labels)
    truth = secret.soft_label.double().numpy()
    true_features = secret.features.double().numpy()
    records = []
    for method in case.methods:
        started = time.perf_counter()
        estimate = gradleak.recover_batch(
            observation, case.label_family, method=method, scale=case.scale, seed=task.seed
        )
        seconds = time.perf_counter() - started
        recovered = correct = false_accepts = 0
        feature_error = float("nan")
        if estimate.soft_labels is not None:
            found = estimate.soft_labels.numpy()
            rows, cols, l1 = match_labels(found, truth, estimate.features.numpy(), true_features)
            recovered = int(found.shape[0])
            correct = int((l1 < SUCCESS_L1).sum())
            false_accepts = recovered - correct
            if correct:
                good = l1 < SUCCESS_L1
                mine = estimate.features.numpy()[rows[good]]
                real = true_features[cols[good]]
                feature_error = float(
                    np.max(np.linalg.norm(mine - real, axis=1) / np.linalg.norm(real, axis=1))
                )
        true_counts = truth.sum(axis=0)
        counts_error = (
            float(np.abs(estimate.counts.numpy() - true_counts).sum() / 2)
            if estimate.counts is not None and case.label_family == "hard"
            else float("nan")
        )
        mass_error = (
            float(np.abs(estimate.label_mass.numpy() - true_counts).sum() / case.batch_size)
            if estimate.label_mass is not None
            else float("nan")
        )
        records.append(
            asdict(
                BatchRecord(
                    case=case.name,
                    method=method,
                    trial=task.trial,
                    seed=task.seed,
                    batch_size=case.batch_size,
                    bound=estimate.bound,
                    samples_recovered=recovered,
                    samples_correct=correct,
                    samples_false=false_accepts,
                    converged=estimate.converged,
                    reason=estimate.reason,
                    feature_error=feature_error,
                    counts_error=counts_error,
                    mass_error=mass_error,
                    seconds=seconds,
                )
            )
        )
    return records


@dataclass(frozen=True)
class BatchRecord:
    """One method's answer on one batch. ``counts_error``: misplaced labels (half the l1 of the
    counts); ``mass_error``: l1 of the label mass per sample; ``feature_error``: the largest
    relative error among correctly recovered samples."""

    case: str
    method: str
    trial: int
    seed: int
    batch_size: int
    bound: int
    samples_recovered: int
    samples_correct: int
    samples_false: int
    converged: bool
    reason: str
    feature_error: float
    counts_error: float
    mass_error: float
    seconds: float


COLUMNS = (
    "case",
    "method",
    "N",
    "bound",
    "samples recovered",
    "false accepts",
    "batches fully recovered",
    "feature error (median)",
    "counts error (mean)",
    "median s",
    "p90 s",
    "refusal reasons",
)


def summary_rows(records: list[Record]) -> list[dict]:
    """One row per (case, method), in first-seen order."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        groups.setdefault((record["case"], record["method"]), []).append(record)
    rows = []
    for (case, method), group in groups.items():
        batch = group[0]["batch_size"]
        seconds = np.array([record["seconds"] for record in group])
        features = [r["feature_error"] for r in group if np.isfinite(r["feature_error"])]
        counts = [r["counts_error"] for r in group if np.isfinite(r["counts_error"])]
        per_sample = method == "batch-search"
        rows.append(
            {
                "case": case,
                "method": method,
                "N": len(group),
                "bound": group[0]["bound"],
                "samples recovered": (
                    f"{sum(r['samples_correct'] for r in group) / (batch * len(group)):.3f}"
                    if per_sample
                    else "-"
                ),
                "false accepts": sum(r["samples_false"] for r in group),
                "batches fully recovered": sum(bool(r["converged"]) for r in group),
                "feature error (median)": f"{np.median(features):.1e}" if features else "-",
                "counts error (mean)": f"{np.mean(counts):.2f}" if counts else "-",
                "median s": f"{np.median(seconds):.3f}",
                "p90 s": f"{np.quantile(seconds, 0.9):.3f}",
                "refusal reasons": refusal_kinds(group) if per_sample else "-",
            }
        )
    return rows


def report(records: list[Record], folder: Path) -> list[Path]:
    """``table.md``: one row per case and method."""
    rows = summary_rows(records)
    path = folder / "table.md"
    write_atomic(path, markdown(rows, COLUMNS))
    return [path]
