"""`gradleak bench NAME`: a shipped benchmark config (the same as `gradleak run NAME`), or one
of the built-in measurements of `BUILT_IN` (``speed``: the cost table of docs/benchmarks.md).

The benchmarks are experiment configs like every paper table: one runner, one seed rule,
one record format. ``gradleak bench labels --quick`` is ``gradleak run labels --quick``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from gradleak.cli import run as run_command
from gradleak.output_files import check_new_folder, write_atomic

#: model -> the budget of its gradient-matching rows (iterations timed for the per-iteration
#: ratio, rounds alternated, iterations of each restart run): ResNet18's iteration costs
#: about 90 ms here, LeNet's about 3 ms.
MATCHING = {
    "lenet": {"iterations": 200, "rounds": 5, "restart_iterations": 20},
    "resnet18": {"iterations": 5, "rounds": 3, "restart_iterations": 5},
}
#: ``--quick``: LeNet only (14 s), the recovery on 3 inputs per family and 1 batch.
MATCHING_QUICK = {"lenet": {"iterations": 20, "rounds": 2, "restart_iterations": 5}}


def speed(args: argparse.Namespace) -> int:
    """Recovery and gradient-matching costs as ratios to the client's own work (one process)."""
    from gradleak.experiments import matching_speed
    from gradleak.experiments import speed as speed_table

    out = None if args.out is None else check_new_folder(args.out, name="--out")
    settings = ("lenet C=100",) if args.quick else tuple(speed_table.SETTINGS)
    rows = speed_table.single_input(settings, samples=3 if args.quick else 8)
    rows += speed_table.batch(samples=1 if args.quick else 5)
    recovery = speed_table.markdown(rows)
    print(recovery)
    budgets = MATCHING_QUICK if args.quick else MATCHING
    matching = [matching_speed.measure(model, **budget) for model, budget in budgets.items()]
    matching_text = matching_speed.markdown(matching)
    print(matching_text)
    if out is not None:
        out.mkdir(parents=True)
        write_atomic(out / "speed.md", f"{recovery}\n{matching_text}")
        print(f"tables in {out / 'speed.md'}")
    return 0


#: name -> a measurement that is not an experiment config (checked before the configs).
BUILT_IN: dict[str, Callable[[argparse.Namespace], int]] = {"speed": speed}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    run_command.add_arguments(parser)
    parser.set_defaults(out=None)
    parser.description = (
        f"{parser.description or ''}; built in besides the configs: {', '.join(BUILT_IN)} "
        "(the cost of a recovery against the client step, of matching restarts against one)"
    )


def run(args: argparse.Namespace) -> int:
    built_in = BUILT_IN.get(str(args.config))
    if built_in is not None and not Path(str(args.config)).exists():
        return built_in(args)
    return run_command.run(args)
