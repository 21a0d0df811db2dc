"""Loss-landscape suite: the family residual against the scalar mu, true mu marked.

For one client the residual of the family constraint is evaluated on a grid of mu (both
signs, |mu| from 1 to 1e4, plus a fine grid around the true mu); the record stores the curve,
so the figure needs nothing else. Spurious local minima (trained networks) show up as dips
away from the true mu (Wang, Liang & He, ICLR 2024, Sec. 4.2 and Fig. 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import gradleak
from gradleak.experiments.case_checks import check_client_setting
from gradleak.experiments.suites import resources
from gradleak.experiments.suites.base import Record, TrialTask
from gradleak.families import FAMILIES, draw_trial
from gradleak.output_files import write_atomic
from gradleak.recovery.last_layer import prepare
from gradleak.recovery.residual import residual_at


@dataclass(frozen=True)
class LandscapeTrials:
    """Clients whose residual curve is drawn: model (fresh or ``checkpoint``), data, family."""

    model: str
    dataset: str
    num_classes: int
    label_family: str
    samples: int = 3
    init: str = "default"
    grid_points: int = 4000
    per_model: int = 100
    checkpoint: str = ""
    data_root: str = ""
    image_size: int = 0
    title: str = ""

    def __post_init__(self) -> None:
        if self.samples < 1 or self.per_model < 1:
            raise ValueError("samples and per_model must be >= 1")
        if self.grid_points < 10:
            raise ValueError(f"grid_points must be >= 10, got {self.grid_points}")

    def validate(self) -> None:
        """Check the model, data, family, class count and checkpoint against what exists."""
        check_client_setting(self)

    @property
    def name(self) -> str:
        if self.title:
            return self.title
        return f"{self.model} ({self.init}) {self.dataset} C={self.num_classes} {self.label_family}"


@dataclass(frozen=True)
class LandscapeRecord:
    """One client's residual curve against mu, its true and found mu, and its local minima."""

    case: str
    trial: int
    seed: int
    label_family: str
    true_scale: float
    found_scale: float
    converged: bool
    scales: list[float]
    residuals: list[float]
    zoom_scales: list[float]
    zoom_residuals: list[float]
    local_minima: list[dict[str, float]]


def residual_curve(problem, family: str, scales: np.ndarray) -> np.ndarray:
    """The family's relative residual at each mu. Shapes: (S,) -> (S,)."""
    return residual_at(problem, FAMILIES[family], 1.0 / scales)


def local_minima(values: np.ndarray, *, window: int = 20, depth: float = 0.5) -> np.ndarray:
    """Indices of interior local minima that are real dips: at most ``depth`` times the
    largest value within ``window`` points on either side (rounding ripples on flat stretches
    are not minima worth marking). Shapes: (S,) -> (K,)."""
    inner = np.flatnonzero((values[1:-1] < values[:-2]) & (values[1:-1] < values[2:])) + 1
    keep = [
        index
        for index in inner
        if values[index] <= depth * values[max(0, index - window) : index + window + 1].max()
    ]
    return np.asarray(keep, dtype=int)


def run_trial(task: TrialTask) -> list[Record]:
    """One client: its true mu, the recovered mu and the residual curve."""
    case: LandscapeTrials = task.case
    images, model = resources.client_setting(case, task.model_seed)
    rng = np.random.default_rng(task.seed)
    inputs, label = draw_trial(case.label_family, images, case.num_classes, rng)
    observation, secret = gradleak.simulate_client_step(model, inputs, label)
    problem = prepare(observation.weight, observation.weight_grad)
    row = observation.weight_grad[problem.row].double()
    true_scale = float(secret.features[0].double() @ row / (row @ row))
    # The paper's landscape: the residual against mu at the exact (known) gradient scale.
    estimate = gradleak.recover_label(observation, family=case.label_family, scale="known")
    half = case.grid_points // 2
    magnitudes = np.logspace(0, 4, half)
    scales = np.concatenate([-magnitudes[::-1], magnitudes])
    zoom = true_scale * (1 + np.linspace(-0.05, 0.05, 201))
    curve = residual_curve(problem, case.label_family, scales)
    minima = local_minima(curve)
    return [
        asdict(
            LandscapeRecord(
                case=case.name,
                trial=task.trial,
                seed=task.seed,
                label_family=case.label_family,
                true_scale=true_scale,
                found_scale=estimate.scale,
                converged=bool(estimate.converged),
                scales=scales.tolist(),
                residuals=curve.tolist(),
                zoom_scales=zoom.tolist(),
                zoom_residuals=residual_curve(problem, case.label_family, zoom).tolist(),
                local_minima=[
                    {"scale": float(scales[i]), "residual": float(curve[i])} for i in minima
                ],
            )
        )
    ]


def report(records: list[Record], folder: Path) -> list[Path]:
    """landscape.png (one row per case: full curve, zoom on the true mu) and table.md (the
    local minima of each curve, spurious ones included)."""
    from gradleak.experiments.figures import landscape_figure

    lines = [
        "| setting | trial | true mu | found mu | local minima (mu: residual) |",
        "|---|---|---|---|---|",
    ]
    for record in records:
        minima = ", ".join(
            f"{m['scale']:.4g}: {m['residual']:.2g}" for m in record["local_minima"][:6]
        )
        lines.append(
            f"| {record['case']} | {record['trial']} | {record['true_scale']:.6g} | "
            f"{record['found_scale']:.6g} | {minima} |"
        )
    write_atomic(folder / "table.md", "\n".join(lines) + "\n")
    figure = landscape_figure(records, folder / "landscape.png")
    return [folder / "table.md", figure]
