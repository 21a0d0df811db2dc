"""The `gradleak` command: a thin shell over the library.

Expected failures (ValueError for bad input, OSError and its subclasses for files) end as one
line ``gradleak COMMAND: error: MESSAGE`` on stderr and exit code 2; Ctrl-C as one line and
exit code 130. ``--debug`` shows the traceback instead. A remedy that names a library parameter
(``root=PATH``) is shown as the command's own flag (`parameter_flags`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping

from gradleak.cli import audit, bench, reconstruct, recover, report, run, train
from gradleak.cli.parameter_flags import flags_of
from gradleak.parameter_hints import spelled
from gradleak.version import __version__

COMMANDS = {
    "recover": (recover, "recover a client's soft label and feature from one gradient"),
    "reconstruct": (reconstruct, "reconstruct a client's input from its gradient; PSNR, PNG grid"),
    "train": (train, "train a model with soft labels on local data; save a safe checkpoint"),
    "bench": (bench, "run a shipped benchmark config (the same as run NAME)"),
    "run": (run, "run an experiment config (a paper table or figure); resumable"),
    "report": (report, "tables and figures of a run folder, from its records"),
    "audit": (audit, "audit real federated training (a Flower simulation) for what it leaks"),
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
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error instead of one line"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def one_line(error: BaseException, flags: Mapping[str, str] | None = None) -> str:
    """The error's message on one line (its lines joined), or its type if it has none; a
    parameter it names as a remedy is spelled as the command's flag (``flags``)."""
    lines = [line.strip() for line in spelled(error, flags or {}).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.handler(args)
    except (ValueError, OSError) as error:
        if args.debug:
            raise
        print(f"gradleak {args.command}: error: {one_line(error, flags_of(args))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"gradleak {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
