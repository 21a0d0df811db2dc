"""Run an experiment config into a run folder: records first, crash-safe and resumable.

``RUN/manifest.json`` holds the resolved config, the seed rule, versions, the command line
and timings; ``RUN/records.jsonl`` gets each trial's records in one write as soon as the
trial finishes. A run folder is never overwritten: an existing folder can only be resumed,
with the same resolved config, and resuming runs exactly the trials that have no records.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import gradleak
from gradleak.experiments.backends import BACKENDS, run_local, run_ray
from gradleak.experiments.config import ExperimentConfig
from gradleak.experiments.seeds import trial_seed
from gradleak.experiments.suites.base import TrialTask

MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
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
    only some of a trial's records: those lines are removed, so the trial runs again whole."""
    if not records.exists():
        return set()
    text = records.read_text()
    groups: dict[tuple[str, int], list[str]] = {}
    for line in text.split("\n"):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        groups.setdefault((record["case"], record["trial"]), []).append(line)
    complete = {
        key: lines
        for key, lines in groups.items()
        if len(lines) == json.loads(lines[0]).get("trial_records", len(lines))
    }
    intact = "".join(line + "\n" for lines in complete.values() for line in lines)
    if intact != text:
        records.write_text(intact)
    return set(complete)


def _manifest(config: ExperimentConfig, backend: str, workers: int, argv: Sequence[str]) -> dict:
    return {
        "config": config.as_dict(),
        "seed_rule": SEED_RULE,
        "backend": backend,
        "workers": workers,
        "command": list(argv),
        "versions": {
            "gradleak": gradleak.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": platform.platform(),
        "runs": [],
    }


def _open_run(out: Path, config: ExperimentConfig, resume: bool, fresh: dict) -> dict[str, Any]:
    manifest_path = out / MANIFEST
    if out.exists() and not resume:
        raise FileExistsError(
            f"--out {out} exists; pass --resume to continue that run, or choose a new folder "
            "(runs are never overwritten)"
        )
    if resume and out.exists():
        if not manifest_path.exists():
            raise FileNotFoundError(f"{out} has no {MANIFEST}: it is not a gradleak run folder")
        manifest = json.loads(manifest_path.read_text())
        if manifest["config"] != json.loads(json.dumps(config.as_dict())):
            raise ValueError(
                f"{out} was run with a different config; resume it with the same config, "
                "--quick and --set options, or start a new --out folder"
            )
        return manifest
    out.mkdir(parents=True)
    return fresh


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
    """Run every trial of ``config`` not yet recorded in ``out``; returns the records path."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    fresh = _manifest(config, backend, workers, sys.argv if argv is None else argv)
    manifest = _open_run(out, config, resume, fresh)
    records = out / RECORDS
    done = completed_trials(records)
    tasks = [task for task in plan(config) if (task.case.name, task.trial) not in done]
    started = time.time()
    manifest["runs"].append({"started": started, "trials": len(tasks), "resumed": bool(done)})
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if backend == "ray":
        results = run_ray(tasks, workers=workers, address=address)
    else:
        results = run_local(tasks, workers=workers)
    with (
        records.open("a") as sink,
        tqdm(total=len(tasks), desc=config.name, disable=not progress, unit="trial") as bar,
    ):
        for _, trial_records in results:
            count = {"trial_records": len(trial_records)}
            sink.write("".join(json.dumps(record | count) + "\n" for record in trial_records))
            sink.flush()
            bar.update(1)
    manifest["runs"][-1]["wall_seconds"] = time.time() - started
    manifest["complete"] = True
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return records


def read_records(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The manifest and every record of a run folder."""
    manifest_path, records = out / MANIFEST, out / RECORDS
    if not manifest_path.exists():
        raise FileNotFoundError(f"{out} has no {MANIFEST}: not a gradleak run folder")
    lines = records.read_text().splitlines() if records.exists() else []
    return json.loads(manifest_path.read_text()), [json.loads(line) for line in lines if line]
