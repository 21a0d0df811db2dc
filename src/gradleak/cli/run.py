"""`gradleak run CONFIG`: run an experiment config into a run folder (resumable)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from gradleak.experiments.backends import BACKENDS, default_workers
from gradleak.experiments.config import load_config
from gradleak.experiments.runner import run_experiment
from gradleak.experiments.suites import CASE_TYPES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="experiment config (.toml), see configs/")
    parser.add_argument("--quick", action="store_true", help="the config's seconds-long twin")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override seed=, name=, defaults.FIELD= or quick.FIELD= (repeatable)",
    )
    parser.add_argument("--out", type=Path, help="run folder (default runs/NAME-TIMESTAMP)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--backend", choices=BACKENDS, default="local")
    parser.add_argument(
        "--workers", type=int, help="parallel trials (default: one per CPU; 1 = this process)"
    )
    parser.add_argument("--address", help="Ray cluster address for --backend ray")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")


def run(args: argparse.Namespace) -> int:
    config = load_config(
        args.config, case_types=CASE_TYPES, quick=args.quick, overrides=args.overrides
    )
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out RUN_FOLDER")
    suffix = "-quick" if args.quick else ""
    out = args.out or Path("runs") / f"{config.name}{suffix}-{time.strftime('%Y%m%d-%H%M%S')}"
    workers = args.workers or default_workers()
    records = run_experiment(
        config,
        out,
        backend=args.backend,
        workers=workers,
        address=args.address,
        resume=args.resume,
    )
    print(f"records in {records}")
    if not args.no_report:
        from gradleak.cli.report import write_report

        for path in write_report(out):
            print(f"wrote {path}")
        table = out / "table.md"
        if table.exists():
            print(table.read_text())
    return 0
