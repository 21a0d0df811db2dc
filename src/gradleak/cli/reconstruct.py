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

from torch import Tensor, nn

import gradleak
from gradleak.cli.arguments import add_scale_argument, integer, number
from gradleak.cli.simulation import add_client_arguments, load_images, simulate
from gradleak.client import ClientSecret, GradientObservation, load_observation
from gradleak.data import ImageSet
from gradleak.experiments.figures import save_grid
from gradleak.experiments.variants import (
    CNN_VARIANTS,
    FCN_VARIANTS,
    FEATURE_WEIGHT,
    VARIANTS,
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
        help="attack a saved observation (full, not classifier-only) of --model on --dataset "
        "images; weights come from the file, and no truth is known, so no PSNR is printed",
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
        "--iterations", type=integer(1), default=1000, help="Adam steps per restart (>= 1)"
    )
    attack.add_argument("--restarts", type=integer(1), default=1, help="random restarts (>= 1)")
    attack.add_argument(
        "--dlg-iterations", type=integer(1), default=100, help="L-BFGS steps of dlg (>= 1)"
    )
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


def _variants(args: argparse.Namespace, has_secret: bool) -> list[str]:
    default = FCN_VARIANTS if args.model.startswith("fcn") else CNN_VARIANTS
    chosen = args.variants.split(",") if args.variants else list(default)
    unknown = [name for name in chosen if name not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants {unknown} unknown; choose from {', '.join(VARIANTS)}")
    if not has_secret:
        chosen = [name for name in chosen if not VARIANTS[name].needs_secret]
    return chosen


def _check_fit(observation: GradientObservation, model: nn.Module, model_name: str) -> None:
    """Refuse an observation whose parameters (names, shapes) are not those of ``model``."""
    expected = {name: tuple(p.shape) for name, p in model.named_parameters() if p.requires_grad}
    observed = {name: tuple(value.shape) for name, value in observation.parameters.items()}
    head = f"{observation.classifier}."
    if all(name.startswith(head) for name in observed) and len(observed) < len(expected):
        raise ValueError(
            f"this observation holds only the classifier's parameters (saved with "
            f"classifier_only=True); --model {model_name} needs all {len(expected)} of them, so "
            "save the observation in full"
        )
    missing = [name for name in expected if name not in observed]
    unexpected = [name for name in observed if name not in expected]
    reshaped = [
        f"{name!r} is {observed[name]} in the observation, {expected[name]} in the model"
        for name in expected
        if name in observed and expected[name] != observed[name]
    ]
    problems = []
    if missing:
        problems.append(f"the model has {_few(missing)} that the observation lacks")
    if unexpected:
        problems.append(f"the observation has {_few(unexpected)} that the model has not")
    problems += reshaped[:3]
    if problems:
        raise ValueError(
            f"this observation's parameters do not fit --model {model_name}: " + "; ".join(problems)
        )


def _few(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(name) for name in names[:shown]) + more


def _observed(args: argparse.Namespace):
    if args.observation is None:
        return simulate(args)
    observation = load_observation(args.observation)
    images = load_images(args)  # the data's shape and statistics; the truth stays unknown
    model = gradleak.models.build(
        args.model,
        num_classes=observation.num_classes,
        seed=0,
        in_channels=images.images.shape[1],
        image_size=images.images.shape[-1],
    )
    _check_fit(observation, model, args.model)
    return observation, None, images, model


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
    _variants(args, has_secret=True)  # unknown names fail now, not after the simulation
    observation, secret, images, model = _observed(args)
    estimate = _recover(args, observation)
    settings = MatchingSettings(
        iterations=args.iterations,
        restarts=args.restarts,
        tv_weight=args.tv_weight,
        feature_weight=args.feature_weight,
        progress=True,
    )
    record = {
        "num_samples": observation.num_samples,
        "label_converged": estimate.converged,
        "family": estimate.family,
        "variants": {},
    }
    truth = None if secret is None else to_unit_range(secret.inputs, images.mean, images.std)
    panels = [] if truth is None else [("truth", truth)]
    after = " (mean after assignment)" if observation.num_samples > 1 else ""
    for name in _variants(args, secret is not None):
        start = time.perf_counter()
        result = run_variant(
            name,
            observation,
            model,
            estimate=estimate,
            secret=secret,
            settings=settings,
            dlg_iterations=args.dlg_iterations,
            image_mean=images.mean,
            image_std=images.std,
        )
        entry, unit = _entry(result, time.perf_counter() - start, secret, images)
        line = f"{name:>13}: objective {result.objective:.4g}, {entry['seconds']:.1f} s"
        title = name
        if truth is not None:
            line += f", PSNR {entry['psnr']:.2f} dB, SSIM {entry['ssim']:.4f}{after}"
            title += f"\n{entry['psnr']:.1f} dB"
        panels.append((title, unit))
        if not result.converged:
            line += f"  (not converged: {result.reason})"
        print(line)
        record["variants"][name] = entry
    out.mkdir(parents=True)
    write_atomic(out / "record.json", json.dumps(record, indent=2) + "\n")
    save_grid(panels, out / "grid.png", title=f"{args.model}, {estimate.family} label")
    print(f"record.json and grid.png in {out}")
    return 0
