"""`gradleak bench labels|reconstruction`: the benchmarks, printed and saved as tables."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gradleak.cli.arguments import integer, number
from gradleak.experiments import matching_speed, reconstruction_bench, reconstruction_tables
from gradleak.experiments.label_bench import run_benchmark
from gradleak.experiments.label_cases import quick_cases, standard_cases, trained_cases
from gradleak.experiments.reconstruction_variants import MatchingBudget
from gradleak.experiments.tables import csv, markdown, summarise
from gradleak.output_files import check_new_folder, write_atomic

#: Trials per setting when --samples is not given (C<=100 settings for the label suite).
DEFAULT_SAMPLES = {"labels": 1000, "reconstruction": 8}
#: The root seed: trials use seed + trial index as model seeds, so it stays well below 2**63.
SEED_LIMIT = 2**32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=tuple(SUITES), help="which benchmark to run")
    parser.add_argument(
        "--samples",
        type=integer(1),
        help=f"trials per setting, >= 1 (default: {DEFAULT_SAMPLES})",
    )
    parser.add_argument(
        "--paper-samples",
        type=integer(1),
        default=1000,
        help="trials per setting for search=paper (slower), >= 1",
    )
    parser.add_argument(
        "--large-samples",
        type=integer(1),
        default=50,
        help="trials per ResNet50 / C=1000 setting at 224x224, >= 1",
    )
    parser.add_argument("--quick", action="store_true", help="seconds-long twin (what CI runs)")
    parser.add_argument(
        "--trained",
        type=Path,
        nargs="+",
        default=[],
        metavar="CHECKPOINT",
        help="also attack these trained models (from `gradleak train`) on their test split, "
        "with the label family each was trained with; --samples trials each (both suites)",
    )
    parser.add_argument(
        "--data-root", type=Path, help="dataset folder for --trained, if not the default"
    )
    parser.add_argument(
        "--trained-only", action="store_true", help="skip the untrained-model settings"
    )
    parser.add_argument(
        "--seed",
        type=integer(0, SEED_LIMIT, limit_text="2**32"),
        default=0,
        help="root seed, [0, 2**32 - 1]",
    )
    matching = parser.add_argument_group(
        "reconstruction suite (defaults: the paper's budget, hours on a CPU)"
    )
    budget = MatchingBudget()
    matching.add_argument(
        "--iterations", type=integer(1), default=budget.iterations, help="Adam steps, >= 1"
    )
    matching.add_argument("--restarts", type=integer(1), default=budget.restarts, help=">= 1")
    matching.add_argument(
        "--dlg-iterations",
        type=integer(1),
        default=budget.dlg_iterations,
        help="DLG's L-BFGS steps, >= 1",
    )
    matching.add_argument(
        "--fcn-dlg-iterations", type=integer(1), default=20, help="DLG's L-BFGS steps on FCN-4"
    )
    matching.add_argument(
        "--feature-weight", type=number(0), default=budget.feature_weight, help=">= 0"
    )
    parser.add_argument("--out", type=Path, help="run folder (must not exist); default runs/")


def run(args: argparse.Namespace) -> int:
    if args.samples is None:
        args.samples = DEFAULT_SAMPLES[args.suite]
    return SUITES[args.suite](args)


def _out(args: argparse.Namespace) -> Path:
    out = args.out or Path("runs") / f"bench-{args.suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    return check_new_folder(out, name="--out")


def run_reconstruction(args: argparse.Namespace) -> int:
    out = _out(args)
    if args.quick:
        cases = reconstruction_bench.quick_cases(args.samples)
    else:
        cases = reconstruction_bench.standard_cases(
            args.samples,
            trained=args.trained,
            data_root=args.data_root,
            fcn_dlg_iterations=args.fcn_dlg_iterations,
        )
    budget = MatchingBudget(
        iterations=args.iterations,
        restarts=args.restarts,
        dlg_iterations=args.dlg_iterations,
        feature_weight=args.feature_weight,
    )
    records = reconstruction_bench.run_benchmark(cases, out, budget=budget, seed=args.seed)
    table = reconstruction_tables.markdown(reconstruction_tables.summarise_reconstruction(records))
    speed = (
        matching_speed.measure(iterations=20, rounds=2) if args.quick else matching_speed.measure()
    )
    table += "\n" + matching_speed.markdown(speed)
    write_atomic(out / "table.md", table)
    print(table)
    print(f"records and table.md in {out}")
    return 0


def run_labels(args: argparse.Namespace) -> int:
    if args.trained_only and not args.trained:
        raise ValueError("--trained-only needs --trained CHECKPOINT [...]")
    out = _out(args)
    cases = []
    if not args.trained_only:
        cases += (
            quick_cases(args.samples)
            if args.quick
            else standard_cases(args.samples, args.large_samples)
        )
    cases += trained_cases(args.trained, args.samples, data_root=args.data_root)
    records = run_benchmark(cases, out, paper_samples=args.paper_samples, seed=args.seed)
    rows = summarise(records)
    table = markdown(rows)
    write_atomic(out / "table.md", table)
    write_atomic(out / "table.csv", csv(rows))
    print(table)
    print(f"records, table.md and table.csv in {out}")
    return 0


SUITES = {"labels": run_labels, "reconstruction": run_reconstruction}
