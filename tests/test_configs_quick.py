"""Every shipped config's --quick twin runs end to end and reports (what CI runs)."""

import json
import tomllib
from pathlib import Path

import pytest

from gradleak.cli.main import main
from gradleak.experiments.config import load_config
from gradleak.experiments.suites import CASE_TYPES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: Datasets that only exist where a user keeps them (never downloaded).
LOCAL_ONLY = {"cifar10", "cifar100", "image-folder"}


def _checkpoints(path: Path) -> list[str]:
    """The checkpoints a config names (read before loading: a missing one fails the load)."""
    raw = tomllib.loads(path.read_text())
    tables = [raw.get("defaults", {}), *raw["cases"]]
    return [table["checkpoint"] for table in tables if table.get("checkpoint")]


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_quick_twin_runs_and_reports(tmp_path, monkeypatch, capsys, name):
    missing = [path for path in _checkpoints(CONFIGS / name) if not (Path.cwd() / path).exists()]
    if missing:
        pytest.skip(f"needs trained checkpoints {missing}: run scripts/train-benchmark-models.sh")
    config = load_config(CONFIGS / name, case_types=CASE_TYPES, quick=True)
    local = [
        c.dataset
        for c in config.cases
        if getattr(c, "dataset", "") in LOCAL_ONLY and not c.data_root
    ]
    if local:
        pytest.skip(f"needs local {sorted(set(local))} folders: --set defaults.data_root=PATH")
    out = tmp_path / "run"
    assert main(["run", str(CONFIGS / name), "--quick", "--workers", "1", "--out", str(out)]) == 0
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    trials = {(r["case"], r["trial"]) for r in records}
    assert len(trials) == sum(case.samples for case in config.cases)
    assert (out / "table.md").read_text().count("\n") >= 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["config"]["quick"]
