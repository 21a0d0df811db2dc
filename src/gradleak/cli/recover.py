"""`gradleak recover`: simulate a client on an embedded image (or load an observation) and
recover its label and feature, printing truth and estimate side by side; a batch
(``--batch-size`` > 1, or a saved observation of several inputs) goes to `recover_batch`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import gradleak
from gradleak.cli.arguments import add_scale_argument
from gradleak.cli.batch_report import run_batch
from gradleak.cli.call_timing import CallTiming, timed_calls
from gradleak.cli.simulation import add_client_arguments, describe_client, simulate
from gradleak.client import SavedObservation, load_saved_observation, save_observation
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
        choices=list(dict.fromkeys([*METHODS.keys(), *BATCH_METHODS.keys()])),  # llg is both
        help="recovery method (default fast-search for one input, batch-search for a batch); "
        + "; ".join(f"{key}: {text}" for key, text in METHODS.describe())
        + "; batch methods: "
        + "; ".join(f"{key}: {text}" for key, text in BATCH_METHODS.describe()),
    )
    add_scale_argument(attack)
    parser.add_argument("--json", action="store_true", help="print one JSON record instead")


#: Up to this many classes every row is shown; above, the largest entries only.
ALL_ROWS = 20
#: The largest recovered (and true) entries shown above `ALL_ROWS` classes.
TOP_ROWS = 5


def _rows(estimate: LabelEstimate, truth: torch.Tensor | None) -> list[int]:
    size = estimate.num_classes
    if size <= ALL_ROWS:
        return list(range(size))
    picked = set(estimate.soft_label.topk(TOP_ROWS).indices.tolist())
    if truth is not None:
        picked |= set(truth.topk(TOP_ROWS).indices.tolist())
    return sorted(picked)


def verdict(estimate: LabelEstimate) -> str:
    """One line: what was recovered, or that the method refused and why."""
    if not estimate.converged:
        return f"verdict: refused: {estimate.reason}"
    top = int(estimate.soft_label.argmax())
    params = ", ".join(
        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in estimate.family_params.items()
    )
    return (
        f"verdict: recovered a {estimate.family} label ({params}), top class {top} at "
        f"{float(estimate.soft_label[top]):.4f}, and the last layer's input feature"
    )


def _report(estimate: LabelEstimate, secret, timing: CallTiming) -> str:
    truth = None if secret is None else secret.soft_label[0].double()
    lines = ["class    true  recovered" if truth is not None else "class  recovered"]
    rows = _rows(estimate, truth)
    for index in rows:
        guess = float(estimate.soft_label[index])
        lines.append(
            f"{index:5d}  {float(truth[index]):6.4f}     {guess:6.4f}"
            if truth is not None
            else f"{index:5d}     {guess:6.4f}"
        )
    if len(rows) < estimate.num_classes:
        largest = "recovered and true" if truth is not None else "recovered"
        lines.append(
            f"(showing {len(rows)} of {estimate.num_classes} classes: the {TOP_ROWS} largest "
            f"{largest} entries; --json prints all)"
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
    lines += [timing.line(), verdict(estimate)]
    return "\n".join(lines)


def describe_saved(path: Path, saved: SavedObservation) -> str:
    """One line: the observation file attacked and the model and data it records."""
    inputs = saved.observation.num_samples
    if saved.architecture is None:
        what = "model and dataset not recorded (a file from an older gradleak)"
    else:
        what = f"{saved.architecture.name} on {saved.dataset or 'an unnamed dataset'}"
    return (
        f"attacking observation {path}: {what}, {inputs} input{'s' * (inputs > 1)}, "
        f"{saved.observation.num_classes} classes; the truth is unknown"
    )


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


def _save(args: argparse.Namespace, observation, images, model) -> str:
    """Write --save-observation FILE (with the model and dataset); the line that says so."""
    path = save_observation(
        observation,
        args.save_observation,
        overwrite=args.overwrite,
        architecture=model.architecture,
        dataset=images.name,
    )
    size = path.stat().st_size / 2**20
    return (
        f"saved the observation ({model.architecture.name} on {images.name}, "
        f"{len(observation.parameters)} parameter tensors, {size:.2f} MiB) to {path}; attack it "
        f"again with `gradleak recover --observation {path}`"
    )


def _say(args: argparse.Namespace, line: str) -> None:
    """A line of the human report (none with --json: stdout is the record alone)."""
    if not args.json:
        print(line)


def run(args: argparse.Namespace) -> int:
    _check_save_observation(args)
    secret = None
    if args.observation is not None:
        if args.checkpoint is not None:
            raise ValueError(
                "--checkpoint chooses the simulated client's model; with --observation FILE "
                "the file already holds what the server saw, so leave --checkpoint out"
            )
        saved = load_saved_observation(args.observation)
        observation, architecture, dataset = saved.observation, saved.architecture, saved.dataset
        _say(args, describe_saved(args.observation, saved))
    else:
        _check_method(args.method, args.batch_size)  # before the simulation
        observation, secret, images, model = simulate(args)
        architecture, dataset = model.architecture, images.name
        _say(args, describe_client(args, images, model))
        if args.save_observation is not None:
            print(_save(args, observation, images, model), file=sys.stderr if args.json else None)
    method = _check_method(args.method, observation.num_samples)
    if observation.num_samples > 1:
        return run_batch(args, observation, secret, method)
    estimate, timing = timed_calls(
        lambda: gradleak.recover_label(
            observation, args.attack_family, method=method, scale=args.scale
        )
    )
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
            "seconds": timing.warm_seconds,
            "first_call_seconds": timing.first_seconds,
            "model": None if architecture is None else architecture.name,
            "dataset": dataset or None,
        }
        if secret is not None:
            record["true_label"] = secret.soft_label[0].tolist()
            record["l1"] = label_l1(estimate.soft_label, secret.soft_label[0])
        print(json.dumps(record))
    else:
        print(_report(estimate, secret, timing))
    return 0
