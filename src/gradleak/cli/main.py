"""The `gradleak` command: a thin shell over the library."""

from __future__ import annotations

import argparse
import logging
import sys

from gradleak import __version__
from gradleak.cli import bench, reconstruct, recover, report, run, train

COMMANDS = {
    "recover": (recover, "recover a client's soft label and feature from one gradient"),
    "reconstruct": (reconstruct, "reconstruct a client's input from its gradient; PSNR, PNG grid"),
    "train": (train, "train a model with soft labels on local data; save a safe checkpoint"),
    "bench": (bench, "run a benchmark and print its table"),
    "run": (run, "run an experiment config (a paper table or figure); resumable"),
    "report": (report, "tables and figures of a run folder, from its records"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradleak",
        description="Measure how much a federated-learning client's gradient leaks: recover its "
        "soft label (label smoothing, mixup or one-hot) and last-layer feature from the "
        "gradient of one input (Wang, Liang & He, ICLR 2024).",
    )
    parser.add_argument("--version", action="version", version=f"gradleak {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"gradleak {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
