"""Reconstruction suite: the paper's Table 3 and the FCN-4 figure.

Each trial simulates one client, recovers its label, and runs every variant (oracle labels,
DLG, ours, ours + feature, analytic FCN inversion) on the same gradient; the records hold
PSNR/SSIM on de-normalised images, so tables and figures need no images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import gradleak
from gradleak.experiments.case_checks import check_client_setting
from gradleak.experiments.figures import encode_png, image_grid
from gradleak.experiments.label_cases import draw_trial
from gradleak.experiments.reconstruction_bench import score_images
from gradleak.experiments.reconstruction_tables import markdown, summarise_reconstruction
from gradleak.experiments.reconstruction_variants import VARIANTS, MatchingBudget, run_variant
from gradleak.experiments.suites import resources
from gradleak.experiments.suites.base import Record, TrialTask
from gradleak.metrics import label_l1, to_unit_range


@dataclass(frozen=True)
class ReconstructionTrials:
    """One setting of Table 3 (or the FCN comparison) with its optimisation budget.

    ``save_images``: the first that many trials keep truth and reconstructions (8-bit PNG
    inside the record) so the report can draw the image grid from the records alone.
    """

    model: str
    dataset: str
    num_classes: int
    family: str
    variants: tuple[str, ...]
    samples: int = 8
    init: str = "default"
    tv_weight: float = 1e-2
    feature_weight: float = 1e-1
    iterations: int = 4800
    restarts: int = 10
    dlg_iterations: int = 300
    per_model: int = 100
    checkpoint: str = ""
    data_root: str = ""
    image_size: int = 0
    save_images: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        unknown = [name for name in self.variants if name not in VARIANTS]
        if self.samples < 1 or self.per_model < 1 or self.iterations < 1 or self.restarts < 1:
            raise ValueError("samples, per_model, iterations and restarts must be >= 1")
        if not self.variants:
            raise ValueError(f"variants must list at least one of {', '.join(VARIANTS)}")
        if unknown:
            raise ValueError(f"variants {unknown} unknown; choose from {', '.join(VARIANTS)}")
        if self.dlg_iterations < 1 or self.save_images < 0:
            raise ValueError("dlg_iterations must be >= 1 and save_images >= 0")
        if self.tv_weight < 0 or self.feature_weight < 0:
            raise ValueError(
                f"tv_weight = {self.tv_weight:g} and feature_weight = {self.feature_weight:g} "
                "must be >= 0"
            )

    def validate(self) -> None:
        """Check the model, data, family, class count and checkpoint against what exists."""
        check_client_setting(self)

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        return f"{self.model} ({self.init}) {self.dataset} C={self.num_classes} {self.family}"


def run_trial(task: TrialTask) -> list[Record]:
    """One client, its recovered label, every variant scored against the truth."""
    case: ReconstructionTrials = task.case
    images, model = resources.client_setting(case, task.model_seed)
    inputs, label = draw_trial(case, images, np.random.default_rng(task.seed))
    observation, secret = gradleak.simulate_client_step(model, inputs, label)
    estimate = gradleak.recover_label(observation, family=case.family)
    budget = MatchingBudget(
        iterations=case.iterations,
        restarts=case.restarts,
        tv_weight=case.tv_weight,
        feature_weight=case.feature_weight,
        dlg_iterations=case.dlg_iterations,
        seed=task.seed,
        image_mean=images.mean,
        image_std=images.std,
    )
    records = []
    keep_images = task.trial < case.save_images
    for variant in case.variants:
        start = time.perf_counter()
        result = run_variant(variant, observation, model, estimate, secret, budget)
        records.append(
            {
                "case": case.name,
                "variant": variant,
                "trial": task.trial,
                "seed": task.seed,
                "family": case.family,
                "label_converged": bool(estimate.converged),
                "label_l1": label_l1(estimate.soft_label, secret.soft_label[0]),
                "converged": result.converged,
                "reason": result.reason,
                "objective": result.objective,
                "iterations": result.iterations,
                "seconds": time.perf_counter() - start,
                **score_images(result.inputs[0], secret.inputs[0], images),
            }
        )
        if keep_images:
            records[-1]["truth_png"] = encode_png(
                to_unit_range(secret.inputs[0], images.mean, images.std)
            )
            records[-1]["image_png"] = encode_png(
                to_unit_range(result.inputs[0], images.mean, images.std)
            )
    return records


def report(records: list[Record], folder: Path) -> list[Path]:
    """table.md (PSNR/SSIM mean +- std, exact 8-bit count, failures, times), table.csv and,
    when trials kept their images (``save_images``), grid.png."""
    rows = summarise_reconstruction(records)
    (folder / "table.md").write_text(markdown(rows))
    columns = list(rows[0]) if rows else []
    lines = [",".join(columns)] + [",".join(str(row[c]) for c in columns) for row in rows]
    (folder / "table.csv").write_text("\n".join(lines) + "\n")
    written = [folder / "table.md", folder / "table.csv"]
    grid = image_grid(records, folder / "grid.png")
    return [*written, grid] if grid else written
