"""`gradleak reconstruct`: simulate a client (or load an observation), recover its label,
reconstruct its input with each variant, print PSNR/SSIM and write a PNG grid and a JSON record.
A batch (``--batch-size`` > 1) is reconstructed jointly from `recover_batch`'s labels and
scored after optimal assignment of reconstructions to true inputs.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

from torch import Tensor

import gradleak
from gradleak.cli.arguments import add_scale_argument, integer, number
from gradleak.cli.observed_model import observed_model
from gradleak.cli.reconstruct_budget import (
    FULL_BUDGET,
    budget_line,
    estimate_seconds,
    quick_help,
    resolve_budget,
)
from gradleak.cli.simulation import add_client_arguments, describe_client, simulate
from gradleak.client import ClientSecret, GradientObservation
from gradleak.data import ImageSet
from gradleak.experiments.figures import save_grid, scores_text
from gradleak.experiments.variants import (
    CNN_VARIANTS,
    FCN_VARIANTS,
    FEATURE_WEIGHT,
    VARIANTS,
    describe_budget,
    run_variant,
)
from gradleak.metrics import score_batch_images, to_unit_range
from gradleak.output_files import check_new_folder, write_atomic
from gradleak.reconstruction import MatchingSettings, Reconstruction
from gradleak.recovery import ATTACK_FAMILIES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_client_arguments(parser)
    attack = parser.add_argument_group("attack")
    attack.add_argument(
        "--observation",
        type=Path,
        metavar="FILE",
        help="attack a saved observation (full, not classifier-only); weights come from the "
        "file, which names its model and dataset (an older file needs --model and --dataset), "
        "and no truth is known, so no PSNR is printed",
    )
    attack.add_argument(
        "--attack-family",
        default="auto",
        choices=ATTACK_FAMILIES,
        help="label family the attacker assumes (default auto)",
    )
    add_scale_argument(attack)
    attack.add_argument(
        "--variants",
        help=f"comma-separated, from {', '.join(VARIANTS)} "
        f"(default: {','.join(FCN_VARIANTS)} for fcn4, {','.join(CNN_VARIANTS)} otherwise)",
    )
    attack.add_argument(
        "--iterations",
        type=integer(1),
        help=f"Adam steps per restart (>= 1; default {FULL_BUDGET.iterations})",
    )
    attack.add_argument(
        "--restarts",
        type=integer(1),
        help=f"random restarts (>= 1; default {FULL_BUDGET.restarts})",
    )
    attack.add_argument(
        "--dlg-iterations",
        type=integer(1),
        help=f"L-BFGS steps of dlg (>= 1; default {FULL_BUDGET.dlg_iterations})",
    )
    attack.add_argument("--quick", action="store_true", help=quick_help())
    attack.add_argument(
        "--tv-weight",
        type=number(0),
        default=MatchingSettings().tv_weight,
        help="total variation weight (>= 0)",
    )
    attack.add_argument(
        "--feature-weight",
        type=number(0),
        default=FEATURE_WEIGHT,
        help="weight of the recovered-feature term of ours-feature (>= 0)",
    )
    parser.add_argument("--out", type=Path, help="output folder (must not exist)")


def _variants(args: argparse.Namespace, has_secret: bool, model: str) -> list[str]:
    """--variants (else ``model``'s defaults), less those that need the truth without it."""
    default = FCN_VARIANTS if model.startswith("fcn") else CNN_VARIANTS
    chosen = args.variants.split(",") if args.variants else list(default)
    unknown = [name for name in chosen if name not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants {unknown} unknown; choose from {', '.join(VARIANTS)}")
    if not has_secret:
        chosen = [name for name in chosen if not VARIANTS[name].needs_secret]
    return chosen


def _observed(args: argparse.Namespace):
    """The observation, its truth (None from a file), images, model, and a header line."""
    if args.observation is None:
        observation, secret, images, model = simulate(args)
        return observation, secret, images, model, describe_client(args, images, model)
    observation, images, model, header = observed_model(args)
    return observation, None, images, model, header


def _recover(args: argparse.Namespace, observation: GradientObservation):
    """The label recovery the attack builds on: one input's, or a batch's (every sample)."""
    if observation.num_samples == 1:
        estimate = gradleak.recover_label(observation, args.attack_family, scale=args.scale)
        status = "converged" if estimate.converged else f"NOT converged ({estimate.reason})"
        print(f"label: {status}, family {estimate.family} {dict(estimate.family_params)}")
        return estimate
    estimate = gradleak.recover_batch(observation, args.attack_family, scale=args.scale)
    batch = observation.num_samples
    status = (
        f"converged, all {batch} samples"
        if estimate.converged
        else f"NOT converged ({estimate.reason}): the label-based variants refuse"
    )
    print(f"labels of the batch of {batch}: {status}, family {estimate.family}")
    return estimate


def _entry(
    result: Reconstruction, seconds: float, secret: ClientSecret | None, images: ImageSet
) -> tuple[dict, Tensor]:
    """One variant's line of record.json (PSNR and SSIM only where the truth is known, after
    assignment for a batch) and its images in [0, 1] (matched to the truth's order)."""
    entry = {
        "converged": result.converged,
        "reason": result.reason,
        "objective": result.objective,
        "iterations": result.iterations,
        "seconds": seconds,
    }
    if secret is None:
        return entry, to_unit_range(result.inputs, images.mean, images.std)
    scores = score_batch_images(result.inputs, secret.inputs, mean=images.mean, std=images.std)
    entry |= {"psnr": scores.mean("psnr"), "ssim": scores.mean("ssim")}
    if len(scores.scores) > 1:
        entry["per_sample"] = [asdict(score) for score in scores.scores]
        entry["assignment"] = list(scores.assignment)
    matched = result.inputs[list(scores.assignment)]
    return entry, to_unit_range(matched, images.mean, images.std)


def run(args: argparse.Namespace) -> int:
    out = args.out or Path("runs") / f"reconstruct-{time.strftime('%Y%m%d-%H%M%S')}"
    check_new_folder(out, name="--out")
    _variants(args, True, args.model or "")  # unknown names fail now, not after the simulation
    plan = resolve_budget(args)
    observation, secret, images, model, header = _observed(args)
    print(header)
    # The model attacked (--model's, --checkpoint's or the file's) and its images.
    model_name, dataset = model.architecture.name, images.name
    estimate = _recover(args, observation)
    variants = _variants(args, secret is not None, model_name)
    settings = MatchingSettings(
        iterations=plan.iterations,
        restarts=plan.restarts,
        tv_weight=args.tv_weight,
        feature_weight=args.feature_weight,
        progress=True,
    )

    def attack(variant: str, matching: MatchingSettings, dlg_iterations: int) -> Reconstruction:
        return run_variant(
            variant,
            observation,
            model,
            estimate=estimate,
            secret=secret,
            settings=matching,
            dlg_iterations=dlg_iterations,
            image_mean=images.mean,
            image_std=images.std,
        )

    timing = estimate_seconds(variants, settings, plan.dlg_iterations, attack)
    print(budget_line(variants, settings, plan.dlg_iterations, quick=args.quick, estimate=timing))
    record = {
        "num_samples": observation.num_samples,
        "label_converged": estimate.converged,
        "family": estimate.family,
        "model": model_name,
        "dataset": dataset,
        "budget": asdict(plan) | {"quick": args.quick},
        "variants": {},
    }
    truth = None if secret is None else to_unit_range(secret.inputs, images.mean, images.std)
    panels = [] if truth is None else [("truth", truth)]
    after = " (mean after assignment)" if observation.num_samples > 1 else ""
    budgets = []
    started = time.perf_counter()
    for name in variants:
        start = time.perf_counter()
        result = attack(name, settings, plan.dlg_iterations)
        entry, unit = _entry(result, time.perf_counter() - start, secret, images)
        line = f"{name:>13}: objective {result.objective:.4g}, {entry['seconds']:.1f} s"
        budget = describe_budget(name, settings, dlg_iterations=plan.dlg_iterations)
        if budget not in budgets:
            budgets.append(budget)
        title = f"{name}\n{budget}"
        if truth is not None:
            line += f", PSNR {entry['psnr']:.2f} dB, SSIM {entry['ssim']:.4f}{after}"
            title += f"\n{scores_text(entry['psnr'], entry['ssim'])}"
        panels.append((title, unit))
        if not result.converged:
            line += f"  (not converged: {result.reason})"
        print(line, flush=True)
        record["variants"][name] = entry
    out.mkdir(parents=True)
    write_atomic(out / "record.json", json.dumps(record, indent=2) + "\n")
    # The client's family as asked (a batch's secret does not name one); a file has no truth.
    family = (
        estimate.family if secret is None else f"{args.label_family}, attacked as {estimate.family}"
    )
    title = f"{model_name}, {dataset}, label family {family}\nbudget {'; '.join(budgets)}"
    if observation.num_samples > 1 and truth is not None:
        title += "\nscores: mean over the batch after assignment"
    save_grid(panels, out / "grid.png", title=title, row_label=model_name)
    print(f"attacks took {time.perf_counter() - started:.1f} s; record.json and grid.png in {out}")
    return 0
