"""Run the label-recovery benchmark: every method on the same simulated gradients.

Each trial writes one flat record (a JSON line) as soon as it is measured; tables are computed
from the records alone (`gradleak.experiments.tables`). The attack sees only the observation;
the secret is used afterwards to score it.
"""

from __future__ import annotations

import json
import platform
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

import gradleak
from gradleak import data
from gradleak.experiments.label_cases import LabelCase, draw_trial
from gradleak.metrics.labels import label_l1, relative_feature_error

#: Label success as in the paper: l1 distance to the true label below this.
SUCCESS_L1 = 1e-2
#: Observations simulated before they are attacked, so every method is timed on a warm loop
#: and not right after the model's own forward/backward pass.
CHUNK = 20


def methods_for(family: str) -> dict[str, dict[str, Any]]:
    """Recovery methods compared on one family: our fast and paper searches (+ iDLG for hard)."""
    methods = {
        "ours-fast": {"method": "scalar-search", "family": family, "search": "fast"},
        "ours-paper": {"method": "scalar-search", "family": family, "search": "paper"},
    }
    if family == "hard":
        methods["idlg"] = {"method": "idlg", "family": "hard"}
    return methods


def _trials(case: LabelCase, seed: int) -> Iterator[tuple[int, Any, Any]]:
    images = data.load(case.dataset, case.data_root, split="test")
    # Stable per-case stream: (root seed, hash of the case name); trials draw in order.
    rng = np.random.default_rng([seed, zlib.crc32(case.name.encode())])
    model = gradleak.models.load(case.checkpoint) if case.checkpoint else None
    for index in range(case.samples):
        if case.checkpoint is None and index % case.per_model == 0:
            model = gradleak.models.build(
                case.model,
                num_classes=case.num_classes,
                init=case.init,
                seed=seed + index,
                in_channels=images.images.shape[1],
                image_size=images.images.shape[-1],
            )
        inputs, label = draw_trial(case, images, rng)
        observation, secret = gradleak.simulate_client_step(model, inputs, label)
        yield index, observation, secret


def _score(case: LabelCase, method: str, index: int, estimate, secret, seconds: float) -> dict:
    truth = secret.soft_label[0]
    l1 = label_l1(estimate.soft_label, truth)
    return {
        "case": case.name,
        "model": case.model,
        "init": case.init,
        "num_classes": case.num_classes,
        "family": case.family,
        "method": method,
        "trial": index,
        "l1": l1,
        "correct": l1 < SUCCESS_L1,
        "converged": bool(estimate.converged),
        "residual": estimate.residual,
        "scale": estimate.scale,
        "reason": estimate.reason,
        "feature_error": relative_feature_error(estimate.features, secret.features[0]),
        "seconds": seconds,
    }


def run_case(
    case: LabelCase, records: Path, *, paper_samples: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Attack every trial of ``case`` with every method; append records to ``records``."""
    results: list[dict[str, Any]] = []
    methods = methods_for(case.family)
    chunk: list[tuple[int, Any, Any]] = []
    with records.open("a") as sink, tqdm(total=case.samples, desc=case.name, leave=False) as bar:
        for trial in _trials(case, seed):
            chunk.append(trial)
            if len(chunk) < CHUNK and trial[0] < case.samples - 1:
                continue
            for method, params in methods.items():
                for index, observation, secret in chunk:
                    if method == "ours-paper" and index >= paper_samples:
                        continue
                    start = time.perf_counter()
                    estimate = gradleak.recover_label(observation, **params)
                    seconds = time.perf_counter() - start
                    record = _score(case, method, index, estimate, secret, seconds)
                    sink.write(json.dumps(record) + "\n")
                    results.append(record)
            sink.flush()
            bar.update(len(chunk))
            chunk = []
    return results


def _manifest(cases: list[LabelCase], paper_samples: int, seed: int) -> dict[str, Any]:
    return {
        "suite": "labels",
        "cases": [case.__dict__ | {"name": case.name} for case in cases],
        "paper_samples": paper_samples,
        "seed": seed,
        "command": sys.argv,
        "versions": {
            "gradleak": gradleak.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
    }


def run_benchmark(
    cases: list[LabelCase], out: Path, *, paper_samples: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Run every case into ``out/records.jsonl`` (``out`` must not exist yet), with a
    ``manifest.json`` holding the configuration, seed, versions, command line and wall time."""
    out.mkdir(parents=True, exist_ok=False)
    manifest = _manifest(cases, paper_samples, seed)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    start = time.time()
    records = out / "records.jsonl"
    results = []
    for case in tqdm(cases, desc="label benchmark"):
        results += run_case(
            case, records, paper_samples=min(paper_samples, case.samples), seed=seed
        )
    manifest["wall_seconds"] = time.time() - start
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return results
