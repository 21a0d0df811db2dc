"""The reconstruction suite's case, typed records and report; the grid figures it draws."""

import dataclasses
from pathlib import Path

import matplotlib.figure
import pytest
import torch

from gradleak.experiments.figures import save_grid
from gradleak.experiments.suites.base import TrialTask
from gradleak.experiments.suites.reconstruction import (
    ReconstructionRecord,
    ReconstructionTrials,
    report,
    run_trial,
)
from gradleak.reconstruction import MatchingSettings

PNG = b"\x89PNG\r\n\x1a\n"
CASE = {
    "model": "lenet",
    "init": "uniform",
    "dataset": "embedded-cifar10",
    "num_classes": 10,
    "label_family": "smoothing",
    "variants": ("oracle-soft", "dlg", "ours", "ours-feature"),
    "iterations": 2,
    "restarts": 1,
    "dlg_iterations": 1,
    "tv_weight": 1e-3,
    "feature_weight": 0.2,
}


def test_case_settings_hold_its_budget_and_the_trial_seed():
    case = ReconstructionTrials(**CASE)
    assert case.settings(seed=9) == MatchingSettings(
        iterations=2, restarts=1, tv_weight=1e-3, feature_weight=0.2, seed=9
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"iterations": 0}, "iterations must be >= 1"),
        ({"restarts": 0}, "restarts must be >= 1"),
        ({"tv_weight": -1.0}, "tv_weight must be >= 0"),
        ({"variants": ("ours+feature",)}, r"variants \['ours\+feature'\] unknown"),
        ({"variants": ()}, "at least one"),
        ({"dlg_iterations": 0}, "dlg_iterations"),
    ],
)
def test_case_refuses_a_bad_field_by_name(change, message):
    with pytest.raises(ValueError, match=message):
        ReconstructionTrials(**(CASE | change))


def test_trial_writes_one_typed_record_per_variant_and_a_report(tmp_path):
    case = ReconstructionTrials(**CASE, save_images=1)
    task = TrialTask("reconstruction", case, trial=0, seed=11, model_seed=0)
    records = run_trial(task)
    assert [r["variant"] for r in records] == list(case.variants)
    assert all(
        set(r) == {f.name for f in dataclasses.fields(ReconstructionRecord)} for r in records
    )
    assert all(r["label_family"] == "smoothing" and r["seed"] == 11 for r in records)
    assert [r["iterations"] for r in records] == [2, 1, 2, 2]
    assert len({r["truth_png"] for r in records}) == 1 and all(r["image_png"] for r in records)
    assert records[2]["objective"] != records[3]["objective"]  # the feature term is on
    written = report(records, tmp_path)
    assert [path.name for path in written] == ["table.md", "table.csv", "grid.png"]
    assert "ours-feature" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "table.csv").read_text().splitlines()[0].startswith("setting,variant,N,")
    assert (tmp_path / "grid.png").read_bytes()[:8] == PNG
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no partial files


def test_save_grid_writes_a_png_atomically(tmp_path, monkeypatch):
    path = tmp_path / "grid.png"
    panels = [("truth", torch.rand(3, 8, 8)), ("gray", torch.rand(1, 8, 8))]
    assert save_grid(panels, path, title="t") == path
    first = path.read_bytes()
    assert first[:8] == PNG

    def torn(self, target, **kwargs):
        Path(target).write_bytes(PNG[:4])
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", torn)
    with pytest.raises(OSError, match="disk full"):
        save_grid(panels, path)
    assert path.read_bytes() == first  # a failed write leaves the old file whole
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]
