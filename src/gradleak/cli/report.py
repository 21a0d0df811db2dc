"""`gradleak report RUN_DIR`: tables (markdown, CSV) and figures (PNG) from a run's records."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from gradleak.experiments.records import RECORDS, read_run
from gradleak.experiments.suites import SUITES


@dataclass(frozen=True)
class Report:
    """What a report wrote and what it left out of the records (see `read_run`)."""

    written: tuple[Path, ...]
    records: int
    duplicates: int = 0
    torn_line: int | None = None

    def notes(self) -> list[str]:
        """One line per thing left out of the records, for the command's output."""
        notes = []
        if self.torn_line is not None:
            notes.append(f"skipped the torn last line {self.torn_line} of {RECORDS} (a crash)")
        if self.duplicates:
            notes.append(
                f"ignored {self.duplicates} duplicate records (same case, trial and "
                f"method/variant as an earlier one); the report uses {self.records} records"
            )
        return notes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="a folder written by `gradleak run`")


def in_config_order(records, manifest: dict) -> list[dict]:
    """Records sorted by their case's place in the config (then trial), not by finish order,
    so that every table lists its rows as the config does. Cases the manifest does not name
    (a manifest older than ``case_names``) follow, each kept whole, in first-seen order."""
    place = {name: index for index, name in enumerate(manifest["config"].get("case_names", []))}
    for record in records:
        place.setdefault(record.get("case"), len(place))
    return sorted(records, key=lambda r: (place[r.get("case")], r.get("trial", 0)))


def write_report(run_dir: Path) -> Report:
    """Write the suite's tables and figures into ``run_dir``, computed from the records only."""
    run = read_run(run_dir)
    suite = run.manifest["config"]["suite"]
    if suite not in SUITES:
        raise ValueError(f"{run_dir}: suite {suite!r} is unknown to this gradleak")
    if not run.records:
        raise ValueError(f"{run_dir} has no records yet")
    written = SUITES[suite].report(in_config_order(run.records, run.manifest), run_dir)
    return Report(tuple(written), len(run.records), run.duplicates, run.torn_line)


def print_report(report: Report, run_dir: Path) -> None:
    """What `gradleak report` (and `gradleak run` after its trials) prints."""
    for note in report.notes():
        print(note)
    for path in report.written:
        print(f"wrote {path}")
    table = run_dir / "table.md"
    if table.exists():
        print(table.read_text())


def run(args: argparse.Namespace) -> int:
    print_report(write_report(args.run_dir), args.run_dir)
    return 0
