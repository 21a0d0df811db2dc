"""What a suite is: a case type, a trial function and a report, all pure and picklable.

A trial function receives one `TrialTask` and returns its records; it must not depend on
anything but the task (so trials can run in any order, in any process, on any machine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

#: A record as it is stored: the JSON object of a suite's record dataclass (`asdict`).
Record = dict[str, Any]


class SuiteCase(Protocol):
    """What the runner needs of every suite's case type (a frozen dataclass)."""

    @property
    def name(self) -> str: ...

    samples: int


@dataclass(frozen=True)
class TrialTask:
    """One unit of work: a case, the trial's index and its seeds.

    ``seed`` is the trial's own seed; ``model_seed`` is shared by the trials that attack the
    same freshly initialised model (every ``per_model`` trials of a case).
    """

    suite: str
    case: SuiteCase
    trial: int
    seed: int
    model_seed: int


@dataclass(frozen=True)
class Suite:
    """A registered suite: ``run_trial(task) -> records`` and ``report(records, folder)``."""

    key: str
    case_type: type
    run_trial: Callable[[TrialTask], list[Record]]
    report: Callable[[list[Record], Path], list[Path]]
    summary: str
