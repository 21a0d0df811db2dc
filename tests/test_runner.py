"""Experiment configs, per-trial seeds, the runner (resume, backends) and reports."""

import json
import tomllib
from pathlib import Path

import pytest

from gradleak.cli.main import main
from gradleak.experiments.config import CONFIG_FOLDER, load_config
from gradleak.experiments.runner import plan, run_experiment
from gradleak.experiments.seeds import trial_seed
from gradleak.experiments.suites import CASE_TYPES

CONFIGS = CONFIG_FOLDER

SMALL = """
name = "small"
suite = "labels"
seed = 4

[defaults]
model = "lenet"
init = "uniform"
dataset = "embedded-cifar10"
num_classes = 10
samples = 3
methods = ["fast-search"]

[quick]
samples = 2

[[cases]]
label_family = "smoothing"

[[cases]]
label_family = "hard"
methods = ["fast-search", "idlg"]
"""


def _write(tmp_path, text=SMALL, name="small.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _stable(records):
    """Records without wall times, which are the only field allowed to differ between runs."""
    return sorted(
        json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True) for r in records
    )


def _records(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_config_applies_defaults_quick_and_overrides(tmp_path):
    path = _write(tmp_path)
    config = load_config(path, case_types=CASE_TYPES)
    assert [case.samples for case in config.cases] == [3, 3]
    assert config.cases[1].methods == ("fast-search", "idlg")
    quick = load_config(path, case_types=CASE_TYPES, quick=True, overrides=["seed=9"])
    assert [case.samples for case in quick.cases] == [2, 2] and quick.seed == 9
    changed = load_config(
        path, case_types=CASE_TYPES, overrides=['defaults.methods=["paper-search"]']
    )
    assert changed.cases[0].methods == ("paper-search",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('suite = "labels"', 'suite = "nope"'), "suite"),
        (("seed = 4", "seed = 4\ncolour = 1"), "unknown keys"),
        (("samples = 3", "samples = 3\nsampels = 2"), "sampels"),
        (("samples = 3", 'samples = "three"'), "samples"),
        (
            (
                'label_family = "hard"\nmethods = ["fast-search", "idlg"]',
                'label_family = "smoothing"',
            ),
            "share the name",
        ),
        (('name = "small"\n', ""), "missing required key 'name'"),
        (('methods = ["fast-search"]', 'methods = ["magic"]'), "magic"),
    ],
)
def test_config_errors_name_the_key(tmp_path, change, message):
    path = _write(tmp_path, SMALL.replace(*change))
    with pytest.raises(ValueError, match=message):
        load_config(path, case_types=CASE_TYPES)


def test_bad_overrides_and_missing_files_are_errors(tmp_path):
    path = _write(tmp_path)
    with pytest.raises(ValueError, match="key=value"):
        load_config(path, case_types=CASE_TYPES, overrides=["seed"])
    with pytest.raises(ValueError, match="unknown key"):
        load_config(path, case_types=CASE_TYPES, overrides=["colour=1"])
    with pytest.raises(FileNotFoundError, match=r"shipped: .*table1"):
        load_config(tmp_path / "none.toml", case_types=CASE_TYPES)


def test_trial_seeds_are_stable_and_distinct():
    seed = trial_seed(0, "table2", "lenet", 5)
    assert seed == trial_seed(0, "table2", "lenet", 5)
    others = {
        trial_seed(1, "table2", "lenet", 5),
        trial_seed(0, "table3", "lenet", 5),
        trial_seed(0, "table2", "resnet", 5),
        trial_seed(0, "table2", "lenet", 6),
    }
    assert seed not in others and len(others) == 4


def test_plan_shares_model_seeds_within_a_group(tmp_path):
    config = load_config(_write(tmp_path), case_types=CASE_TYPES)
    tasks = plan(config)
    assert len(tasks) == 6
    assert len({task.seed for task in tasks}) == 6
    assert len({(task.case.name, task.model_seed) for task in tasks}) == 2


def test_interrupted_run_resumes_without_repeating_or_losing_trials(tmp_path):
    config = load_config(_write(tmp_path), case_types=CASE_TYPES)
    full = tmp_path / "full"
    run_experiment(config, full, workers=1, progress=False)
    reference = _records(full)
    assert len(reference) == 9
    with pytest.raises(FileExistsError, match="pass resume=True"):
        run_experiment(config, full, workers=1, progress=False)

    cut = tmp_path / "cut"
    run_experiment(config, cut, workers=1, progress=False)
    lines = (cut / "records.jsonl").read_text().splitlines(keepends=True)
    # A crash after hard trial 0 (lines 3-4) in the middle of hard trial 1: one of its two
    # records is on disk, the next one is torn.
    (cut / "records.jsonl").write_text("".join(lines[:6]) + lines[6][:20])
    run_experiment(config, cut, workers=1, resume=True, progress=False)
    resumed = _records(cut)
    assert _stable(resumed) == _stable(reference)
    manifest = json.loads((cut / "manifest.json").read_text())
    assert [run["trials"] for run in manifest["runs"]] == [6, 2]
    assert manifest["complete"] is True


def test_resume_refuses_a_different_config(tmp_path):
    config = load_config(_write(tmp_path), case_types=CASE_TYPES)
    out = tmp_path / "run"
    run_experiment(config, out, workers=1, progress=False)
    other = load_config(_write(tmp_path), case_types=CASE_TYPES, overrides=["seed=5"])
    with pytest.raises(ValueError, match="different config"):
        run_experiment(other, out, workers=1, resume=True, progress=False)


def test_worker_processes_give_the_same_records(tmp_path):
    config = load_config(_write(tmp_path), case_types=CASE_TYPES, quick=True)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    run_experiment(config, serial, workers=1, progress=False)
    run_experiment(config, parallel, workers=2, progress=False)
    assert _stable(_records(parallel)) == _stable(_records(serial))


def test_ray_backend_gives_the_same_records(tmp_path):
    pytest.importorskip("ray")
    config = load_config(_write(tmp_path), case_types=CASE_TYPES, quick=True)
    serial, distributed = tmp_path / "serial", tmp_path / "ray"
    run_experiment(config, serial, workers=1, progress=False)
    run_experiment(config, distributed, backend="ray", workers=2, progress=False)
    assert _stable(_records(distributed)) == _stable(_records(serial))


def test_cli_run_then_report(tmp_path, capsys):
    path = _write(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(path), "--quick", "--workers", "1", "--out", str(out)]) == 0
    assert "fast-search" in capsys.readouterr().out
    (out / "table.md").unlink()
    assert main(["report", str(out)]) == 0
    table = (out / "table.md").read_text()
    assert "idlg" in table and "l1 mean ± std" in table
    assert (out / "table.csv").exists()
    assert main(["report", str(tmp_path)]) == 2


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_every_shipped_config_validates(config):
    raw = tomllib.loads((CONFIGS / config).read_text())
    named = [table.get("checkpoint") for table in (raw.get("defaults", {}), *raw["cases"])]
    missing = [path for path in named if path and not Path(path).is_file()]
    if missing:
        pytest.skip(f"needs trained checkpoints {missing} (scripts/train-benchmark-models.sh)")
    loaded = load_config(CONFIGS / config, case_types=CASE_TYPES, quick=True)
    assert loaded.cases and all(case.samples >= 1 for case in loaded.cases)
