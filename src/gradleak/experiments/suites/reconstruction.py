"""Reconstruction suite: the paper's Table 3, the FCN-4 figure and batch reconstruction.

Each trial simulates one client, recovers its label, and runs every variant (oracle labels,
DLG, ours, ours-feature, analytic FCN inversion) on the same gradient; the records hold
PSNR/SSIM on de-normalised images, so tables and figures need no images. With
``batch_size`` B > 1 the client steps on a batch (the labels of `draw_batch`), the labels
come from `recover_batch`, B dummies are matched jointly, and every score is the mean over
the batch after optimal assignment of reconstructions to true inputs (`score_batch_images`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import gradleak
from gradleak.experiments.case_checks import check_choice, check_client_setting
from gradleak.experiments.figures import encode_png, image_grid
from gradleak.experiments.reconstruction_tables import csv, markdown, summarise_reconstruction
from gradleak.experiments.suites import resources
from gradleak.experiments.suites.base import Record, TrialTask
from gradleak.experiments.variants import (
    DLG_ITERATIONS,
    FEATURE_WEIGHT,
    VARIANTS,
    describe_budget,
    run_variant,
)
from gradleak.families import draw_trial
from gradleak.families.batch_trials import draw_batch
from gradleak.metrics import label_l1, match_labels, score_batch_images, to_unit_range
from gradleak.output_files import write_atomic
from gradleak.reconstruction import MatchingSettings
from gradleak.recovery.last_layer import SCALE_MODES

_PAPER = MatchingSettings()


@dataclass(frozen=True)
class ReconstructionTrials:
    """One setting of Table 3 (or the FCN comparison) with its optimisation budget.

    ``iterations``, ``restarts``, ``tv_weight`` and ``feature_weight`` are the
    `MatchingSettings` of the gradient-matching variants (`settings`); ``dlg_iterations``
    counts DLG's own L-BFGS steps. ``save_images``: the first that many trials keep truth and
    reconstructions (8-bit PNG inside the record) so the report can draw the image grid from
    the records alone. ``scale`` is the gradient-scale assumption of the label recovery
    ("known", the paper's Table 3 setting, or "unknown"). ``batch_size``: inputs per client
    step (1: the paper's protocol).
    """

    model: str
    dataset: str
    num_classes: int
    label_family: str
    variants: tuple[str, ...]
    samples: int = 8
    init: str = "default"
    tv_weight: float = _PAPER.tv_weight
    feature_weight: float = FEATURE_WEIGHT
    iterations: int = _PAPER.iterations
    restarts: int = _PAPER.restarts
    dlg_iterations: int = DLG_ITERATIONS
    per_model: int = 100
    checkpoint: str = ""
    data_root: str = ""
    image_size: int = 0
    save_images: int = 0
    scale: str = "known"
    batch_size: int = 1
    title: str = ""

    def __post_init__(self) -> None:
        if not self.variants:
            raise ValueError(f"variants must list at least one of {', '.join(VARIANTS)}")
        unknown = [name for name in self.variants if name not in VARIANTS]
        if unknown:
            raise ValueError(f"variants {unknown} unknown; choose from {', '.join(VARIANTS)}")
        if self.samples < 1 or self.per_model < 1:
            raise ValueError("samples and per_model must be >= 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        single = [name for name in self.variants if VARIANTS[name].budget == "exact"]
        if self.batch_size > 1 and single:
            raise ValueError(
                f"variants {single} invert one input's gradient; batch_size > 1 takes "
                "the gradient-matching variants only"
            )
        if self.dlg_iterations < 1 or self.save_images < 0:
            raise ValueError("dlg_iterations must be >= 1 and save_images >= 0")
        self.settings(seed=0)  # iterations, restarts and the weights, named if out of range

    def settings(self, *, seed: int) -> MatchingSettings:
        """The matching budget of one trial (seeded by the trial)."""
        return MatchingSettings(
            iterations=self.iterations,
            restarts=self.restarts,
            tv_weight=self.tv_weight,
            feature_weight=self.feature_weight,
            seed=seed,
        )

    def validate(self) -> None:
        """Check the model, data, family, class count and checkpoint against what exists."""
        check_client_setting(self)
        check_choice("scale", self.scale, SCALE_MODES)

    @property
    def name(self) -> str:
        if self.title:
            return self.title
        batch = f" B={self.batch_size}" if self.batch_size > 1 else ""
        return (
            f"{self.model} ({self.init}) {self.dataset} C={self.num_classes} "
            f"{self.label_family}{batch}"
        )


@dataclass(frozen=True)
class ReconstructionRecord:
    """One variant's reconstruction on one trial, scored against the truth afterwards.

    For a batch the scores are means over its samples after assignment and ``label_l1`` the
    largest over the matched labels (NaN when the batch recovery refused).
    ``truth_png``/``image_png`` (8-bit PNG, base64) only for the first ``save_images`` trials
    (a batch keeps its first true input and the reconstruction matched to it).
    ``model``, ``dataset`` and ``budget`` (the variant's, in words) name the figure's rows.
    """

    case: str
    variant: str
    trial: int
    seed: int
    label_family: str
    label_converged: bool
    label_l1: float
    converged: bool
    reason: str
    objective: float
    iterations: int
    seconds: float
    psnr: float
    psnr_8bit: float
    ssim: float
    mse: float
    truth_png: str | None = None
    image_png: str | None = None
    batch_size: int = 1
    model: str = ""
    dataset: str = ""
    budget: str = ""


def _client(case: ReconstructionTrials, images, model, task: TrialTask):
    """The client's step, what the server recovers from it, and that label's error."""
    rng = np.random.default_rng(task.seed)
    if case.batch_size == 1:
        inputs, label = draw_trial(case.label_family, images, case.num_classes, rng)
        observation, secret = gradleak.simulate_client_step(model, inputs, label)
        estimate = gradleak.recover_label(observation, family=case.label_family, scale=case.scale)
        return observation, secret, estimate, label_l1(estimate.soft_label, secret.soft_label[0])
    batch = draw_batch(case.label_family, images, case.num_classes, case.batch_size, rng)
    observation, secret = gradleak.simulate_client_step(model, *batch)
    estimate = gradleak.recover_batch(
        observation, case.label_family, scale=case.scale, seed=task.seed
    )
    if not estimate.converged:
        return observation, secret, estimate, float("nan")
    *_, l1 = match_labels(
        estimate.soft_labels.numpy(),
        secret.soft_label.double().numpy(),
        estimate.features.numpy(),
        secret.features.double().numpy(),
    )
    return observation, secret, estimate, float(l1.max())


def run_trial(task: TrialTask) -> list[Record]:
    """One client, its recovered label, every variant scored against the truth."""
    case: ReconstructionTrials = task.case
    images, model = resources.client_setting(case, task.model_seed)
    observation, secret, estimate, l1 = _client(case, images, model, task)
    keep_images = task.trial < case.save_images
    truth_png = None
    if keep_images:
        truth_png = encode_png(to_unit_range(secret.inputs[0], images.mean, images.std))
    records = []
    for variant in case.variants:
        start = time.perf_counter()
        result = run_variant(
            variant,
            observation,
            model,
            estimate=estimate,
            secret=secret,
            settings=case.settings(seed=task.seed),
            dlg_iterations=case.dlg_iterations,
            image_mean=images.mean,
            image_std=images.std,
        )
        seconds = time.perf_counter() - start
        scores = score_batch_images(result.inputs, secret.inputs, mean=images.mean, std=images.std)
        means = {name: scores.mean(name) for name in ("psnr", "psnr_8bit", "ssim", "mse")}
        record = ReconstructionRecord(
            case=case.name,
            variant=variant,
            trial=task.trial,
            seed=task.seed,
            label_family=case.label_family,
            label_converged=bool(estimate.converged),
            label_l1=l1,
            converged=result.converged,
            reason=result.reason,
            objective=result.objective,
            iterations=result.iterations,
            seconds=seconds,
            **means,
            truth_png=truth_png,
            image_png=(
                encode_png(
                    to_unit_range(result.inputs[scores.assignment[0]], images.mean, images.std)
                )
                if keep_images
                else None
            ),
            batch_size=case.batch_size,
            model=case.model,
            dataset=case.dataset,
            budget=describe_budget(
                variant, case.settings(seed=task.seed), dlg_iterations=case.dlg_iterations
            ),
        )
        records.append(asdict(record))
    return records


def report(records: list[Record], folder: Path) -> list[Path]:
    """table.md (PSNR over its finite values with the exact (inf) ones counted apart, SSIM,
    exact 8-bit count, failures, times), table.csv and, when trials kept their images
    (``save_images``), grid.png."""
    rows = summarise_reconstruction(records)
    written = [
        write_atomic(folder / "table.md", markdown(rows)),
        write_atomic(folder / "table.csv", csv(rows)),
    ]
    grid = image_grid(records, folder / "grid.png")
    return [*written, grid] if grid else written
