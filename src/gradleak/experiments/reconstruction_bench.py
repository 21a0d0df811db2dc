"""Run the reconstruction benchmark: every variant on the same simulated gradients.

The paper's Table 3 (LeNet, CIFAR-10 images, untrained and trained, smoothing and mixup):
oracle soft label, oracle hard label, DLG, ours, ours + feature; plus FCN-4 analytic
inversion against DLG on the same gradient. One flat record per (trial, variant), written as
soon as it is measured; tables come from the records alone.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import gradleak
from gradleak import data
from gradleak.experiments.label_cases import draw_trial, setting_name, trained_setting
from gradleak.experiments.reconstruction_tables import save_grid
from gradleak.experiments.reconstruction_variants import (
    CNN_VARIANTS,
    FCN_VARIANTS,
    MatchingBudget,
    run_variant,
)
from gradleak.metrics import label_l1, mse, psnr, ssim, to_unit_range


@dataclass(frozen=True)
class ReconstructionCase:
    """One setting: model, data, label family, variants and the TV weight it uses.

    With ``checkpoint`` set, that trained model is attacked on the test split of ``dataset``.
    """

    model: str
    init: str
    dataset: str
    num_classes: int
    family: str
    samples: int
    variants: tuple[str, ...]
    tv_weight: float
    image_size: int | None = None
    checkpoint: str | None = None
    data_root: str | None = None
    dlg_iterations: int | None = None

    @property
    def name(self) -> str:
        return setting_name(self)


def standard_cases(
    samples: int,
    *,
    trained: list[Path],
    data_root: Path | None = None,
    fcn_dlg_iterations: int | None = None,
) -> list[ReconstructionCase]:
    """Untrained LeNet on embedded CIFAR-10, each trained checkpoint, FCN-4 at 64x64.

    ``fcn_dlg_iterations`` caps DLG's L-BFGS steps on FCN-4 (50M weights: each step costs
    seconds on a CPU)."""
    cases = [
        ReconstructionCase(
            "lenet", "uniform", "embedded-cifar10", 10, family, samples, CNN_VARIANTS, 1e-2
        )
        for family in ("smoothing", "mixup")
    ]
    root = None if data_root is None else str(data_root)
    cases += [
        ReconstructionCase(
            **trained_setting(path),
            samples=samples,
            variants=CNN_VARIANTS,
            tv_weight=1e-3,
            data_root=root,
        )
        for path in trained
    ]
    cases += [
        ReconstructionCase(
            "fcn4",
            "default",
            "embedded-imagenet",
            1000,
            family,
            samples,
            FCN_VARIANTS,
            0.0,
            64,
            dlg_iterations=fcn_dlg_iterations,
        )
        for family in ("smoothing", "mixup")
    ]
    return cases


def quick_cases(samples: int) -> list[ReconstructionCase]:
    """A seconds-long twin: untrained LeNet smoothing (every variant), FCN-4 mixup analytic."""
    return [
        ReconstructionCase(
            "lenet", "uniform", "embedded-cifar10", 10, "smoothing", samples, CNN_VARIANTS, 1e-2
        ),
        ReconstructionCase(
            "fcn4", "default", "embedded-imagenet", 1000, "mixup", samples, ("analytic-fc",), 0, 64
        ),
    ]


def _model_and_images(case: ReconstructionCase, seed: int):
    images = data.load(case.dataset, case.data_root, split="test", image_size=case.image_size)
    if case.checkpoint:
        return gradleak.models.load(case.checkpoint), images
    model = gradleak.models.build(
        case.model,
        num_classes=case.num_classes,
        init=case.init,
        seed=seed,
        in_channels=images.images.shape[1],
        image_size=images.images.shape[-1],
    )
    return model, images


def score_images(inputs, truth, images) -> dict[str, float]:
    """PSNR (float and 8-bit), SSIM and MSE of one normalised image against the truth, both
    de-normalised with the dataset's statistics and clamped to [0, 1]."""
    unit = to_unit_range(inputs, images.mean, images.std)
    true_unit = to_unit_range(truth, images.mean, images.std)
    eight_bit = to_unit_range(inputs, images.mean, images.std, quantise=True)
    true_eight_bit = to_unit_range(truth, images.mean, images.std, quantise=True)
    return {
        "psnr": psnr(unit, true_unit),
        "psnr_8bit": psnr(eight_bit, true_eight_bit),
        "ssim": ssim(unit, true_unit),
        "mse": mse(unit, true_unit),
    }


def run_case(
    case: ReconstructionCase, records: Path, *, budget: MatchingBudget, seed: int = 0
) -> list[dict[str, Any]]:
    """Simulate ``case.samples`` clients, recover each label, run every variant, score it."""
    model, images = _model_and_images(case, seed)
    budget = replace(
        budget,
        tv_weight=case.tv_weight,
        image_mean=images.mean,
        image_std=images.std,
        dlg_iterations=case.dlg_iterations or budget.dlg_iterations,
    )
    rng = np.random.default_rng([seed, zlib.crc32(case.name.encode())])
    results = []
    panels: list[tuple[str, Any]] = []
    with records.open("a") as sink:
        for trial in tqdm(range(case.samples), desc=case.name, leave=False):
            inputs, label = draw_trial(case, images, rng)
            observation, secret = gradleak.simulate_client_step(model, inputs, label)
            estimate = gradleak.recover_label(observation, family=case.family)
            if trial == 0:
                panels.append(("truth", to_unit_range(secret.inputs[0], images.mean, images.std)))
            for variant in case.variants:
                start = time.perf_counter()
                reconstruction = run_variant(
                    variant, observation, model, estimate, secret, replace(budget, seed=trial)
                )
                seconds = time.perf_counter() - start
                record = {
                    "case": case.name,
                    "variant": variant,
                    "trial": trial,
                    "family": case.family,
                    "label_converged": bool(estimate.converged),
                    "label_l1": label_l1(estimate.soft_label, secret.soft_label[0]),
                    "converged": reconstruction.converged,
                    "reason": reconstruction.reason,
                    "objective": reconstruction.objective,
                    "iterations": reconstruction.iterations,
                    "seconds": seconds,
                    **score_images(reconstruction.inputs[0], secret.inputs[0], images),
                }
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                results.append(record)
                if trial == 0:
                    unit = to_unit_range(reconstruction.inputs[0], images.mean, images.std)
                    panels.append((f"{variant}\n{record['psnr']:.1f} dB", unit))
    slug = "".join(c if c.isalnum() else "-" for c in case.name).strip("-")
    save_grid(panels, records.parent / f"grid-{slug}.png", title=f"{case.name}, trial 0")
    return results


def run_benchmark(
    cases: list[ReconstructionCase], out: Path, *, budget: MatchingBudget, seed: int = 0
) -> list[dict[str, Any]]:
    """Run every case into ``out/records.jsonl`` (``out`` must not exist) with a manifest."""
    out.mkdir(parents=True, exist_ok=False)
    manifest = {
        "suite": "reconstruction",
        "cases": [asdict(case) | {"name": case.name} for case in cases],
        "budget": asdict(budget),
        "seed": seed,
        "versions": {"gradleak": gradleak.__version__},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    start = time.time()
    results = []
    for case in tqdm(cases, desc="reconstruction benchmark"):
        results += run_case(case, out / "records.jsonl", budget=budget, seed=seed)
    manifest["wall_seconds"] = time.time() - start
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return results
