"""`gradleak run CONFIG`: run an experiment config into a run folder (resumable)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from gradleak.cli.arguments import integer
from gradleak.cli.parameter_flags import declare
from gradleak.experiments.backends import BACKENDS, default_workers
from gradleak.experiments.config import ExperimentConfig, load_config, shipped_configs
from gradleak.experiments.records import RECORDS, complete_trials, parse_records
from gradleak.experiments.runner import plan, run_experiment
from gradleak.experiments.suites import CASE_TYPES

#: Exit status after Ctrl-C, as a shell reports a SIGINT.
INTERRUPTED = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        help="a config file (.toml) or the name of a shipped config: "
        + ", ".join(shipped_configs()),
    )
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
        "--workers",
        type=integer(1),
        help="parallel trials (default: one per CPU; 1 = this process)",
    )
    parser.add_argument("--address", help="Ray cluster address for --backend ray")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    declare(parser, root="--set defaults.data_root=PATH", resume="--resume")


def resume_command(args: argparse.Namespace, out: Path, *, resume: bool = True) -> str:
    """The command line that continues this run in ``out`` (``resume=False``: starts it
    there afresh), with every option of ``args`` that shapes the run."""
    words = ["gradleak", _command(args), str(args.config)]
    if args.quick:
        words.append("--quick")
    for override in args.overrides:
        words += ["--set", override]
    words += ["--out", str(out)] + (["--resume"] if resume else [])
    if args.backend != "local":
        words += ["--backend", args.backend]
    if args.workers:
        words += ["--workers", str(args.workers)]
    if args.address:
        words += ["--address", args.address]
    if args.no_report:
        words.append("--no-report")
    return shlex.join(words)


def _command(args: argparse.Namespace) -> str:
    """``run`` or ``bench``: the command the user typed (both run a config the same way)."""
    return getattr(args, "command", None) or "run"


def _interrupted(args: argparse.Namespace, config: ExperimentConfig, out: Path) -> str:
    """One line: how many trials are saved in ``out`` and the command that continues."""
    total = len(plan(config))
    if not out.is_dir():  # removed again: no trial had finished
        return (
            f"gradleak {_command(args)}: interrupted before the first of {total} trials "
            f"finished; nothing saved, no folder left; start again with: "
            f"{resume_command(args, out, resume=False)}"
        )
    try:
        saved = len(complete_trials(parse_records(out / RECORDS)).keys)
    except (OSError, ValueError):
        saved = 0
    return (
        f"gradleak {_command(args)}: interrupted; {saved} of {total} trials saved in {out}; "
        f"continue with: {resume_command(args, out)}"
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(
        args.config, case_types=CASE_TYPES, quick=args.quick, overrides=args.overrides
    )
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out RUN_FOLDER")
    suffix = "-quick" if args.quick else ""
    out = args.out or Path("runs") / f"{config.name}{suffix}-{time.strftime('%Y%m%d-%H%M%S')}"
    workers = default_workers() if args.workers is None else args.workers
    try:
        records = run_experiment(
            config,
            out,
            backend=args.backend,
            workers=workers,
            address=args.address,
            resume=args.resume,
        )
    except KeyboardInterrupt:
        print(_interrupted(args, config, out), file=sys.stderr)
        return INTERRUPTED
    print(f"records in {records}")
    if not args.no_report:
        from gradleak.cli.report import print_report, write_report

        try:
            print_report(write_report(out), out)
        except KeyboardInterrupt:
            print(
                f"gradleak {_command(args)}: interrupted in the report; every trial is saved in "
                f"{out}; write the report with: {shlex.join(['gradleak', 'report', str(out)])}",
                file=sys.stderr,
            )
            return INTERRUPTED
    return 0
