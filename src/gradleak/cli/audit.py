"""`gradleak audit flower` (a real offline Flower simulation, audited) and `gradleak audit
sweep` (the privacy-utility picture of a defense).

Needs the extra ``pip install -e '.[flower]'``. The clients are gradleak's own (the
`simulation` module's ClientApp); the server wraps FedAvg in `LeakageAudit`. The report folder
gets records.jsonl (the audit's records), truth/ (what the clients trained on, for the
evaluation only), audit.csv, report.md and audit.png.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from tqdm import tqdm

import gradleak
from gradleak.cli.arguments import integer, number, torch_seed
from gradleak.cli.parameter_flags import declare
from gradleak.client.updates import CLIENT_OPTIMIZERS
from gradleak.defenses import DEFENSES
from gradleak.output_files import check_new_folder
from gradleak.training import parse_augmentation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="audit", required=True, metavar="WHAT")
    flower = kinds.add_parser(
        "flower",
        help="audit a real Flower simulation (offline, Ray backend, one CPU per client)",
        description="Run a Flower 1.42 simulation of gradleak's clients (FedAvg) behind "
        "LeakageAudit and report, per round and client, what leaked and what was refused.",
    )
    flower.add_argument("--clients", type=integer(1, 64), default=3, help="supernodes, 1..64")
    flower.add_argument("--rounds", type=integer(1, 100), default=3, help="rounds, 1..100")
    flower.add_argument("--model", default="lenet", choices=gradleak.models.names())
    flower.add_argument(
        "--dataset",
        default="fashion-mnist",
        help="client data (test split); Fashion-MNIST falls back to the embedded CIFAR-10 "
        f"images when absent; one of {', '.join(gradleak.data.names())}",
    )
    flower.add_argument(
        "--data-root",
        type=Path,
        help="local folder of --dataset (CIFAR and image folders need one; never downloaded)",
    )
    declare(flower, root="--data-root PATH")
    flower.add_argument("--batch-size", type=integer(1, 1024), default=1, help="1..1024")
    flower.add_argument("--local-steps", type=integer(1, 100), default=1, help="1..100")
    flower.add_argument(
        "--augment",
        default="smoothing:0.1",
        help="client targets: hard, smoothing:EPS (0<EPS<1), mixup:ALPHA (>0)",
    )
    flower.add_argument("--optimizer", choices=CLIENT_OPTIMIZERS.keys(), default="sgd")
    flower.add_argument("--lr", type=number(0, strict=True), default=0.1, help="> 0")
    flower.add_argument("--momentum", type=number(0, 1), default=0.0, help="SGD, [0, 1)")
    flower.add_argument("--classifier-bias", action="store_true", help="give the classifier a bias")
    flower.add_argument(
        "--max-grad-norm",
        type=number(0),
        default=0.0,
        help="DP-SGD through Opacus on every client: per-sample clipping to this norm (> 0)",
    )
    flower.add_argument(
        "--noise-multiplier",
        type=number(0),
        default=0.0,
        help="DP-SGD noise (std = this x --max-grad-norm), >= 0",
    )
    flower.add_argument("--seed", type=torch_seed(), default=0, help="[0, 2**63 - 1]")
    flower.add_argument("--out", type=Path, required=True, help="report folder (must not exist)")

    sweep = kinds.add_parser(
        "sweep",
        help="privacy-utility sweep of a defense: leakage, epsilon, test accuracy, figures",
        description="For every combination of the given defense parameters: attack N defended "
        "single-input client steps (label, class, input), train a fresh model briefly with the "
        "defense (DP-SGD through Opacus) and report its test accuracy and epsilon.",
    )
    sweep.add_argument("--defense", required=True, choices=DEFENSES.keys())
    for name in _defense_parameters():
        sweep.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_values,
            metavar="V1,V2,...",
            help=f"values of the defense parameter {name} (comma-separated)",
        )
    sweep.add_argument("--model", default="lenet", choices=gradleak.models.names())
    sweep.add_argument("--dataset", default="fashion-mnist", help="needs a train split")
    sweep.add_argument("--data-root", help="local folder of --dataset, if not its default")
    declare(sweep, root="--data-root PATH")
    sweep.add_argument("--samples", type=integer(1, 10_000), default=20, help="attacked inputs")
    sweep.add_argument("--train-size", type=integer(1), default=5000, help="training images")
    sweep.add_argument("--epochs", type=integer(1, 100), default=5, help="1..100")
    sweep.add_argument("--seed", type=torch_seed(), default=0, help="[0, 2**63 - 1]")
    sweep.add_argument("--out", type=Path, required=True, help="report folder (must not exist)")


def _defense_parameters() -> list[str]:
    """Every parameter name of the registered defenses (one flag each)."""
    names = {field.name for _key, entry in DEFENSES.items() for field in fields(entry)}
    return sorted(names)


def _values(text: str) -> list:
    """``"0,0.01,1"`` -> [0.0, 0.01, 1.0]; words stay words (``"float16,int8"``)."""
    values = []
    for token in text.split(","):
        token = token.strip()
        if not token:
            raise argparse.ArgumentTypeError(f"empty value in {text!r}")
        if token.lower() in ("true", "false"):
            values.append(token.lower() == "true")
            continue
        try:
            values.append(float(token))
        except ValueError:
            values.append(token)
    return values


def _sweep(args: argparse.Namespace) -> int:
    from gradleak.integrations import sweep_report
    from gradleak.integrations.sweep import SweepSettings, grid, sweep

    values = {
        name: getattr(args, name)
        for name in _defense_parameters()
        if getattr(args, name, None) is not None
    }
    points = grid(args.defense, values)  # parameter errors before any work
    if "train" not in gradleak.data.spec(args.dataset).splits:
        raise ValueError(f"--dataset {args.dataset} has no train split; the sweep trains a model")
    out = check_new_folder(args.out, name="--out")
    settings = SweepSettings(
        model=args.model,
        dataset=args.dataset,
        data_root=args.data_root,
        samples=args.samples,
        train_size=args.train_size,
        epochs=args.epochs,
        seed=args.seed,
    )
    print(
        f"sweep of {args.defense} over {len(points)} setting(s): {settings.samples} attacked "
        f"inputs each, {settings.epochs} epoch(s) of {settings.train_size} {settings.dataset} "
        f"images for the test accuracy"
    )
    started = time.perf_counter()
    with tqdm(total=len(points), unit="setting") as bar:
        rows = sweep(args.defense, values, settings, progress=lambda _row: bar.update())
    out.mkdir(parents=True)  # only now: a sweep that fails (no data, Ctrl-C) leaves no folder
    title = f"{args.defense} on {settings.model}, {settings.dataset} (N = {settings.samples})"
    written = sweep_report.write(rows, out, title)
    print(sweep_report.markdown(rows, title))
    print(f"took {time.perf_counter() - started:.0f} s; wrote")
    for path in written:
        print(f"  {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    return AUDITS[args.audit](args)


def _dp(recipe) -> str:
    if not recipe.max_grad_norm:
        return ""
    return f", DP-SGD (Opacus) C={recipe.max_grad_norm:g} sigma={recipe.noise_multiplier:g}"


def _flower(args: argparse.Namespace) -> int:
    try:
        from gradleak.integrations.flower import report, simulation
    except ImportError as error:
        raise ValueError(
            f"gradleak audit flower needs Flower: pip install -e '.[flower]' ({error})"
        ) from None
    out = check_new_folder(args.out, name="--out")
    parse_augmentation(args.augment)
    # Absolute: the clients read it from Ray workers, whose working folder is not ours.
    data_root = "" if args.data_root is None else str(args.data_root.resolve())
    dataset, note = simulation.resolve_dataset(args.dataset, data_root)
    simulation.images_for(dataset, data_root)  # a missing or wrong folder fails before any work
    recipe = simulation.Recipe(
        model=args.model,
        dataset=dataset,
        data_root=data_root,
        batch_size=args.batch_size,
        local_steps=args.local_steps,
        augment=args.augment,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        classifier_bias=args.classifier_bias,
        seed=args.seed,
        max_grad_norm=args.max_grad_norm,
        noise_multiplier=args.noise_multiplier,
    )
    if note:
        print(f"note: {note}")
    out.mkdir(parents=True)
    truth_dir = out / "truth"
    truth_dir.mkdir()
    print(
        f"Flower simulation: {args.clients} clients x {args.rounds} rounds, {recipe.model} on "
        f"{recipe.dataset}, batch {recipe.batch_size}, {recipe.local_steps} local step(s), "
        f"{recipe.augment}, {recipe.optimizer} lr={recipe.lr:g}{_dp(recipe)}; audited by "
        "LeakageAudit"
    )
    if not args.verbose:
        # Flower logs every message at INFO and warns about its own defaults (and that
        # run_simulation will give way to `flwr run`); the audit's own ERROR still shows.
        logging.getLogger("flwr").setLevel(logging.ERROR)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gradleak-flower-") as state:
        audit = simulation.run(
            recipe,
            clients=args.clients,
            rounds=args.rounds,
            records=out / "records.jsonl",
            truth_dir=truth_dir,
            state_dir=Path(state),
        )
    seconds = time.perf_counter() - started
    title = (
        f"gradleak audit of a Flower simulation: {recipe.model} on {recipe.dataset}, "
        f"B={recipe.batch_size}, {recipe.local_steps} step(s), {recipe.augment}, "
        f"{recipe.optimizer}{_dp(recipe)}"
    )
    scored, written = report.write_report(out, audit.records, audit.timings, truth_dir, title)
    print(report.tables(scored, audit.timings, title).split("\n| round | client |")[0])
    if audit.failed_rounds:
        print(
            f"WARNING: every client failed in round(s) {audit.failed_rounds}: Flower reported "
            "success, but nothing was trained or audited there"
        )
    if not audit.records:
        print("WARNING: no client update reached the audit")
    print(f"simulation and audit took {seconds:.0f} s; wrote {out}/records.jsonl and")
    for path in written:
        print(f"  {path}")
    return 0 if audit.records and not audit.failed_rounds else 1


AUDITS = {"flower": _flower, "sweep": _sweep}
