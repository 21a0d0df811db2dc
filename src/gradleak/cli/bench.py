"""`gradleak bench labels|reconstruction`: the benchmarks, printed and saved as tables."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gradleak.experiments import matching_speed, reconstruction_bench, reconstruction_tables
from gradleak.experiments.label_bench import run_benchmark
from gradleak.experiments.label_cases import quick_cases, standard_cases, trained_cases
from gradleak.experiments.reconstruction_variants import MatchingBudget
from gradleak.experiments.tables import csv, markdown, summarise

#: Trials per setting when --samples is not given (C<=100 settings for the label suite).
DEFAULT_SAMPLES = {"labels": 1000, "reconstruction": 8}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=tuple(SUITES), help="which benchmark to run")
    parser.add_argument(
        "--samples",
        type=int,
        help=f"trials per setting (default: {DEFAULT_SAMPLES})",
    )
    parser.add_argument(
        "--paper-samples",
        type=int,
        default=1000,
        help="trials per setting for search=paper (slower)",
    )
    parser.add_argument(
        "--large-samples",
        type=int,
        default=50,
        help="trials per ResNet50 / C=1000 setting at 224x224",
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
    parser.add_argument("--seed", type=int, default=0)
    matching = parser.add_argument_group(
        "reconstruction suite (defaults: the paper's budget, hours on a CPU)"
    )
    budget = MatchingBudget()
    matching.add_argument("--iterations", type=int, default=budget.iterations)
    matching.add_argument("--restarts", type=int, default=budget.restarts)
    matching.add_argument("--dlg-iterations", type=int, default=budget.dlg_iterations)
    matching.add_argument(
        "--fcn-dlg-iterations", type=int, default=20, help="DLG's L-BFGS steps on FCN-4"
    )
    matching.add_argument("--feature-weight", type=float, default=budget.feature_weight)
    parser.add_argument("--out", type=Path, help="run folder (must not exist); default runs/")


def run(args: argparse.Namespace) -> int:
    if args.samples is None:
        args.samples = DEFAULT_SAMPLES[args.suite]
    return SUITES[args.suite](args)


def _out(args: argparse.Namespace) -> Path:
    out = args.out or Path("runs") / f"bench-{args.suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists():
        raise FileExistsError(
            f"--out {out} exists; choose a new folder (runs are never overwritten)"
        )
    return out


def run_reconstruction(args: argparse.Namespace) -> int:
    for name in ("samples", "iterations", "restarts", "dlg_iterations", "fcn_dlg_iterations"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
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
    (out / "table.md").write_text(table)
    print(table)
    print(f"records and table.md in {out}")
    return 0


def run_labels(args: argparse.Namespace) -> int:
    for name in ("samples", "paper_samples", "large_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    out = _out(args)
    if args.trained_only and not args.trained:
        raise ValueError("--trained-only needs --trained CHECKPOINT [...]")
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
    (out / "table.md").write_text(table)
    (out / "table.csv").write_text(csv(rows))
    print(table)
    print(f"records, table.md and table.csv in {out}")
    return 0


SUITES = {"labels": run_labels, "reconstruction": run_reconstruction}
