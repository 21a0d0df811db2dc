"""`gradleak reconstruct`'s budget: its defaults, ``--quick``, and the time estimate printed
before the attack starts (a few steps of each kind of optimisation, timed on this machine)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from gradleak.cli.call_timing import duration
from gradleak.experiments.variants import VARIANTS, describe_budget
from gradleak.reconstruction import MatchingSettings


@dataclass(frozen=True)
class Budget:
    """Adam steps per restart, restarts, and DLG's L-BFGS steps of one reconstruct run."""

    iterations: int
    restarts: int
    dlg_iterations: int


#: Without --quick, and with it (seconds, not quality: a smoke test of the whole pipeline).
FULL_BUDGET = Budget(iterations=1000, restarts=1, dlg_iterations=100)
QUICK_BUDGET = Budget(iterations=200, restarts=1, dlg_iterations=20)
#: Flag of each budget field.
BUDGET_FLAGS = {
    "iterations": "--iterations",
    "restarts": "--restarts",
    "dlg_iterations": "--dlg-iterations",
}
#: Steps timed for the estimate, after one step of warm-up.
TIMED_STEPS = 3


def quick_help() -> str:
    """--quick's help: what it sets."""
    flags = ", ".join(
        f"{flag} {getattr(QUICK_BUDGET, name)}" for name, flag in BUDGET_FLAGS.items()
    )
    return (
        f"a smoke-test budget, seconds for lenet on a 2-core CPU: {flags} (instead of "
        + ", ".join(f"{getattr(FULL_BUDGET, name)}" for name in BUDGET_FLAGS)
        + "); a budget flag given explicitly wins"
    )


def resolve_budget(args: argparse.Namespace) -> Budget:
    """The run's budget: the flags given, else --quick's or the full defaults."""
    base = QUICK_BUDGET if args.quick else FULL_BUDGET
    given = {name: getattr(args, name) for name in BUDGET_FLAGS if getattr(args, name) is not None}
    return replace(base, **given)


#: Runs variant NAME with (matching settings, DLG steps); its result is not used.
VariantRun = Callable[[str, MatchingSettings, int], object]


def estimate_seconds(
    variants: list[str], settings: MatchingSettings, dlg_iterations: int, run: VariantRun
) -> tuple[float, dict[str, float]]:
    """Seconds the variants should take, and the seconds per step of each budget kind.

    Each kind of optimisation ("matching", "dlg") among ``variants`` is run once for one step
    (warm-up) and once for `TIMED_STEPS`; analytic variants count as free.
    """
    per_step: dict[str, float] = {}
    for name in variants:
        kind = VARIANTS[name].budget
        if kind in per_step or kind == "exact":
            continue
        short = replace(settings, iterations=1, progress=False)
        run(name, short, 1)
        start = time.perf_counter()
        run(name, replace(short, iterations=TIMED_STEPS), TIMED_STEPS)
        per_step[kind] = (time.perf_counter() - start) / TIMED_STEPS
    steps = {"matching": settings.iterations, "dlg": dlg_iterations, "exact": 0}
    kinds = [VARIANTS[name].budget for name in variants]
    total = sum(per_step.get(kind, 0.0) * steps[kind] for kind in kinds)
    return total, per_step


def budget_line(
    variants: list[str],
    settings: MatchingSettings,
    dlg_iterations: int,
    *,
    quick: bool,
    estimate: tuple[float, dict[str, float]],
) -> str:
    """``budget (--quick): 200 Adam steps x 1 restart (ours, ours-feature), 20 L-BFGS steps
    (dlg); estimated 4.96 s here (...)``."""
    groups: dict[str, list[str]] = {}
    for name in variants:
        words = describe_budget(name, settings, dlg_iterations=dlg_iterations)
        groups.setdefault(words, []).append(name)
    parts = ", ".join(f"{words} ({', '.join(names)})" for words, names in groups.items())
    total, per_step = estimate
    unit = {"matching": "Adam iteration (all restarts)", "dlg": "L-BFGS step"}
    measured = ", ".join(
        f"{duration(seconds)} per {unit[kind]}" for kind, seconds in per_step.items()
    )
    return (
        f"budget{' (--quick)' if quick else ''}: {parts}; estimated {duration(total)} here"
        f"{f' ({measured}, timed now)' if measured else ''}; progress bars on stderr"
    )
