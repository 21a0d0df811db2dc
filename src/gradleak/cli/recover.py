"""`gradleak recover`: simulate a client on an embedded image (or load an observation) and
recover its label and feature, printing truth and estimate side by side; a batch
(``--batch-size`` > 1, or a saved observation of several inputs) goes to `recover_batch`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import gradleak
from gradleak.cli.arguments import add_scale_argument
from gradleak.cli.batch_report import run_batch
from gradleak.cli.simulation import add_client_arguments, simulate
from gradleak.client import load_observation, save_observation
from gradleak.metrics import label_l1, relative_feature_error
from gradleak.output_files import check_new_file
from gradleak.recovery import ATTACK_FAMILIES, METHODS, LabelEstimate
from gradleak.recovery.batch import BATCH_METHODS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    client = add_client_arguments(parser)
    client.add_argument(
        "--save-observation",
        type=Path,
        metavar="FILE",
        help="also write what the server saw to FILE (.safetensors)",
    )
    client.add_argument(
        "--overwrite", action="store_true", help="replace an existing --save-observation FILE"
    )
    attack = parser.add_argument_group("attack")
    attack.add_argument(
        "--observation",
        type=Path,
        metavar="FILE",
        help="attack a saved observation instead of simulating one",
    )
    attack.add_argument(
        "--attack-family",
        default="auto",
        choices=ATTACK_FAMILIES,
        help="label family the attacker assumes (auto: the widest family, named by its label)",
    )
    attack.add_argument(
        "--method",
        choices=[*METHODS.keys(), *BATCH_METHODS.keys()],
        help="recovery method (default fast-search for one input, batch-search for a batch); "
        + "; ".join(f"{key}: {text}" for key, text in METHODS.describe())
        + "; batch methods: "
        + "; ".join(f"{key}: {text}" for key, text in BATCH_METHODS.describe()),
    )
    add_scale_argument(attack)
    parser.add_argument("--json", action="store_true", help="print one JSON record instead")


def _rows(estimate: LabelEstimate, truth: torch.Tensor | None) -> list[int]:
    size = estimate.num_classes
    if size <= 20:
        return list(range(size))
    picked = set(estimate.soft_label.topk(5).indices.tolist())
    if truth is not None:
        picked |= set(truth.topk(5).indices.tolist())
    return sorted(picked)


def _report(estimate: LabelEstimate, secret, seconds: float) -> str:
    truth = None if secret is None else secret.soft_label[0].double()
    lines = ["class    true  recovered" if truth is not None else "class  recovered"]
    for index in _rows(estimate, truth):
        guess = float(estimate.soft_label[index])
        lines.append(
            f"{index:5d}  {float(truth[index]):6.4f}     {guess:6.4f}"
            if truth is not None
            else f"{index:5d}     {guess:6.4f}"
        )
    status = "converged" if estimate.converged else f"NOT converged: {estimate.reason}"
    lines += [
        f"method {estimate.method}, family {estimate.family} {dict(estimate.family_params)}",
        f"{status}; scale mu = {estimate.scale:.6g}, residual = {estimate.residual:.2e}, "
        f"gradient scale k = {estimate.gradient_scale:.6g}",
    ]
    if secret is not None:
        lines.append(
            f"label l1 error {label_l1(estimate.soft_label, truth):.2e} "
            f"(true family {secret.family} {dict(secret.family_params)})"
        )
        error = relative_feature_error(estimate.features, secret.features[0])
        if error is not None:
            lines.append(f"feature relative error {error:.2e}")
    lines.append(f"recovery time {1e3 * seconds:.2f} ms")
    return "\n".join(lines)


def _check_save_observation(args: argparse.Namespace) -> None:
    """Refuse, before any work, a --save-observation FILE that cannot be written."""
    if args.save_observation is None:
        if args.overwrite:
            raise ValueError("--overwrite applies to --save-observation FILE only")
        return
    if args.observation is not None:
        raise ValueError(
            "--save-observation writes a simulated observation; it cannot be combined with "
            "--observation FILE (which is already saved)"
        )
    check_new_file(
        args.save_observation,
        name="--save-observation",
        overwrite=args.overwrite,
        overwrite_flag="--overwrite",
    )


def _check_method(method: str | None, num_samples: int) -> str:
    """The --method for an observation of ``num_samples`` inputs (its default if None)."""
    single = num_samples == 1
    methods = METHODS if single else BATCH_METHODS
    if method is None:
        return "fast-search" if single else "batch-search"
    if method not in methods:
        what = "one input" if single else f"a batch of {num_samples} inputs"
        raise ValueError(
            f"--method {method} does not apply to {what}; choose from {', '.join(methods)}"
        )
    return method


def run(args: argparse.Namespace) -> int:
    _check_save_observation(args)
    secret = None
    if args.observation is not None:
        observation = load_observation(args.observation)
    else:
        _check_method(args.method, args.batch_size)  # before the simulation
        observation, secret, _, _ = simulate(args)
        if args.save_observation is not None:
            save_observation(observation, args.save_observation, overwrite=args.overwrite)
    method = _check_method(args.method, observation.num_samples)
    if observation.num_samples > 1:
        return run_batch(args, observation, secret, method)
    start = time.perf_counter()
    estimate = gradleak.recover_label(
        observation, args.attack_family, method=method, scale=args.scale
    )
    seconds = time.perf_counter() - start
    if args.json:
        record = {
            "converged": estimate.converged,
            "reason": estimate.reason,
            "family": estimate.family,
            "family_params": dict(estimate.family_params),
            "scale": estimate.scale,
            "residual": estimate.residual,
            "gradient_scale": estimate.gradient_scale,
            "soft_label": estimate.soft_label.tolist(),
            "seconds": seconds,
        }
        if secret is not None:
            record["true_label"] = secret.soft_label[0].tolist()
            record["l1"] = label_l1(estimate.soft_label, secret.soft_label[0])
        print(json.dumps(record))
    else:
        print(_report(estimate, secret, seconds))
    return 0
