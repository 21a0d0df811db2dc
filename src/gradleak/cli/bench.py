"""`gradleak bench labels`: the label-recovery benchmark, printed and saved as tables."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gradleak.experiments.label_bench import run_benchmark
from gradleak.experiments.label_cases import quick_cases, standard_cases, trained_cases
from gradleak.experiments.tables import csv, markdown, summarise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", choices=("labels",), help="which benchmark to run")
    parser.add_argument("--samples", type=int, default=1000, help="trials per C<=100 setting")
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
    parser.add_argument("--quick", action="store_true", help="seconds-long LeNet-only twin")
    parser.add_argument(
        "--trained",
        type=Path,
        nargs="+",
        default=[],
        metavar="CHECKPOINT",
        help="also attack these trained models (from `gradleak train`) on their test split, "
        "with the label family each was trained with; --samples trials each",
    )
    parser.add_argument(
        "--data-root", type=Path, help="dataset folder for --trained, if not the default"
    )
    parser.add_argument(
        "--trained-only", action="store_true", help="skip the untrained-model settings"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="run folder (must not exist); default runs/")


def run(args: argparse.Namespace) -> int:
    for name in ("samples", "paper_samples", "large_samples"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    out = args.out or Path("runs") / f"bench-labels-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists():
        raise FileExistsError(
            f"--out {out} exists; choose a new folder (runs are never overwritten)"
        )
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
