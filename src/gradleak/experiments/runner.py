"""Run an experiment config into a run folder: records first, crash-safe and resumable.

``RUN/manifest.json`` holds the resolved config, the seed rule, versions, the torch thread
count, the command line and timings; ``RUN/records.jsonl`` gets each trial's records in one
write (flushed and fsynced) as soon as the trial finishes. A run folder is never overwritten:
an existing folder can only be resumed, with the same resolved config, and resuming runs
exactly the trials that have no records. Rewrites (the manifest, a repaired records file) are
atomic, and one run at a time holds the folder (``RUN/.lock``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gradleak.experiments.backends import BACKENDS, TRIAL_THREADS, run_local, run_ray
from gradleak.experiments.config import ExperimentConfig
from gradleak.experiments.records import (
    MANIFEST,
    RECORDS,
    complete_trials,
    parse_records,
    read_manifest,
)
from gradleak.experiments.run_lock import hold_run_lock
from gradleak.experiments.seeds import trial_seed
from gradleak.experiments.suites.base import TrialTask
from gradleak.output_files import atomic_target, check_new_folder, write_atomic
from gradleak.parameter_hints import Hint, OutputExistsError
from gradleak.version import __version__

SEED_RULE = (
    "trial seed = SeedSequence([root seed, crc32(experiment), crc32(case), trial]); model seed "
    "= the same with experiment + '/model' and trial // per_model"
)


def plan(config: ExperimentConfig) -> list[TrialTask]:
    """Every trial of every case, with its seeds, in config order."""
    tasks = []
    for case in config.cases:
        per_model = getattr(case, "per_model", case.samples)
        for trial in range(case.samples):
            tasks.append(
                TrialTask(
                    suite=config.suite,
                    case=case,
                    trial=trial,
                    seed=trial_seed(config.seed, config.name, case.name, trial),
                    model_seed=trial_seed(
                        config.seed, f"{config.name}/model", case.name, trial // per_model
                    ),
                )
            )
    return tasks


def completed_trials(records: Path) -> set[tuple[str, int]]:
    """(case, trial) pairs whose records are all on disk. A crash can leave a torn last line or
    only some of a trial's records: those lines are removed (by an atomic rewrite), so the
    trial runs again whole. Damage elsewhere is a ValueError and the file is left as it is."""
    parsed = parse_records(records)
    complete = complete_trials(parsed)
    if not parsed.exact or len(complete.lines) != len(parsed.lines):
        with atomic_target(records) as partial, partial.open("w", encoding="utf-8") as sink:
            sink.writelines(line.text + "\n" for line in complete.lines)
    return set(complete.keys)


def _manifest(config: ExperimentConfig, backend: str, workers: int, argv: Sequence[str]) -> dict:
    return {
        "config": config.as_dict(),
        "seed_rule": SEED_RULE,
        "backend": backend,
        "workers": workers,
        "command": list(argv),
        "versions": {
            "gradleak": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": platform.platform(),
        "torch_threads": TRIAL_THREADS,
        "runs": [],
    }


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=2))


def _resumed_manifest(out: Path, config: ExperimentConfig) -> dict[str, Any]:
    manifest = read_manifest(out)
    if manifest["config"] != json.loads(json.dumps(config.as_dict())):
        raise ValueError(
            f"{out} was run with a different config; resume it with the same config, "
            "--quick and --set options, or start a new --out folder"
        )
    manifest.setdefault("runs", [])
    return manifest


def _nothing_recorded(out: Path) -> bool:
    records = out / RECORDS
    return not records.is_file() or records.stat().st_size == 0


def run_experiment(
    config: ExperimentConfig,
    out: Path,
    *,
    backend: str = "local",
    workers: int = 1,
    address: str | None = None,
    resume: bool = False,
    progress: bool = True,
    argv: Sequence[str] | None = None,
) -> Path:
    """Run every trial of ``config`` not yet recorded in ``out``; returns the records path.

    The folder is locked for the whole run (`hold_run_lock`). A folder this call created (and
    any parent it created for it) is removed again if the run ends, by any error or Ctrl-C,
    before its first record.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a run folder; choose a new folder")
    if out.exists() and not resume:
        raise OutputExistsError(
            f"--out {out} exists; pass ",
            Hint("resume", "resume=True"),
            " to continue that run, or choose a new folder (runs are never overwritten)",
        )
    created = [] if out.exists() else _missing_folders(out)
    if created:
        check_new_folder(out, name="--out")
    tasks = plan(config)
    fresh = _manifest(config, backend, workers, sys.argv if argv is None else argv)
    if created:
        out.mkdir(parents=True)
    with hold_run_lock(out):
        try:
            manifest = fresh if created else _resumed_manifest(out, config)
            _run_locked(config, out, tasks, manifest, backend, workers, address, progress)
        except BaseException:
            if created and _nothing_recorded(out):
                _remove_new_folders(created)
            raise
    return out / RECORDS


def _missing_folders(out: Path) -> list[Path]:
    """``out`` and its ancestors that do not exist yet (what ``mkdir -p`` creates), deepest
    first."""
    return [folder for folder in (out, *out.parents) if not folder.exists()]


def _remove_new_folders(created: list[Path]) -> None:
    """Remove the run folder and the ancestors this run created, as long as they are empty
    (another process may have put something beside the run meanwhile)."""
    shutil.rmtree(created[0], ignore_errors=True)
    for folder in created[1:]:
        try:
            folder.rmdir()
        except OSError:
            return


def _run_locked(
    config: ExperimentConfig,
    out: Path,
    tasks: list[TrialTask],
    manifest: dict[str, Any],
    backend: str,
    workers: int,
    address: str | None,
    progress: bool,
) -> None:
    records = out / RECORDS
    done = completed_trials(records)
    tasks = [task for task in tasks if (task.case.name, task.trial) not in done]
    started = time.time()
    manifest["runs"].append(
        {
            "started": started,
            "trials": len(tasks),
            "resumed": bool(done),
            "torch_threads": TRIAL_THREADS,
        }
    )
    _write_manifest(out, manifest)
    if backend == "ray":
        results = run_ray(tasks, workers=workers, address=address)
    else:
        results = run_local(tasks, workers=workers)
    with (
        records.open("a", encoding="utf-8") as sink,
        tqdm(total=len(tasks), desc=config.name, disable=not progress, unit="trial") as bar,
    ):
        for _, trial_records in results:
            count = {"trial_records": len(trial_records)}
            sink.write("".join(json.dumps(record | count) + "\n" for record in trial_records))
            sink.flush()
            os.fsync(sink.fileno())  # a trial on disk is a trial a crash cannot take back
            bar.update(1)
    manifest["runs"][-1]["wall_seconds"] = time.time() - started
    manifest["complete"] = True
    _write_manifest(out, manifest)
