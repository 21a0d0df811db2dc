"""`gradleak report RUN_DIR`: tables (markdown, CSV) and figures (PNG) from a run's records."""

from __future__ import annotations

import argparse
from pathlib import Path

from gradleak.experiments.runner import read_records
from gradleak.experiments.suites import SUITES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a folder written by `gradleak run`")


def write_report(run_dir: Path) -> list[Path]:
    """Write the suite's tables and figures into ``run_dir``, computed from the records only."""
    manifest, records = read_records(run_dir)
    suite = manifest["config"]["suite"]
    if suite not in SUITES:
        raise ValueError(f"{run_dir}: suite {suite!r} is unknown to this gradleak")
    if not records:
        raise ValueError(f"{run_dir} has no records yet")
    return SUITES[suite].report(records, run_dir)


def run(args: argparse.Namespace) -> int:
    for path in write_report(args.run_dir):
        print(f"wrote {path}")
    table = args.run_dir / "table.md"
    if table.exists():
        print(table.read_text())
    return 0
