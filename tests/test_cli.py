"""The command line: help, the recover demo, saved observations, the quick benchmark."""

import json
import re
import time

import pytest
import torch

import gradleak
from gradleak.cli.call_timing import timed_calls
from gradleak.cli.main import build_parser, main
from gradleak.client import load_saved_observation, save_observation
from gradleak.models import Architecture


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("recover", "reconstruct", "train", "bench"):
        assert command in text


def test_every_subcommand_has_help():
    parser = build_parser()
    for command in ("recover", "reconstruct", "train", "bench"):
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0


def test_recover_demo_prints_truth_and_estimate(capsys):
    assert main(["recover"]) == 0
    text = capsys.readouterr().out
    assert "true" in text and "recovered" in text
    assert "converged" in text and "NOT converged" not in text
    assert "feature relative error" in text


@pytest.mark.parametrize("label", ["hard", "smoothing", "mixup"])
def test_recover_json_matches_the_truth(capsys, label):
    assert main(["recover", "--label", label, "--json", "--index", "4"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["converged"] is True
    assert record["l1"] < 1e-3
    assert record["family"] == label


def test_saved_observation_round_trip(tmp_path, capsys):
    path = tmp_path / "obs.safetensors"
    assert main(["recover", "--label", "mixup", "--save-observation", str(path), "--json"]) == 0
    simulated = json.loads(capsys.readouterr().out)
    assert main(["recover", "--observation", str(path), "--json"]) == 0
    loaded = json.loads(capsys.readouterr().out)
    assert "true_label" not in loaded  # a saved observation carries no truth
    assert loaded["soft_label"] == pytest.approx(simulated["soft_label"], abs=1e-9)


def test_save_observation_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "obs.safetensors"
    path.write_text("the user's file")
    assert main(["recover", "--save-observation", str(path)]) == 2
    assert "exists" in capsys.readouterr().err
    assert path.read_text() == "the user's file"


def test_missing_observation_file_is_a_clear_error(tmp_path, capsys):
    assert main(["recover", "--observation", str(tmp_path / "none.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bench_is_the_runner_on_a_shipped_config(tmp_path, capsys):
    """`gradleak bench NAME` is `gradleak run NAME`: the same records for the same config."""
    bench, run = tmp_path / "bench", tmp_path / "run"
    common = ["--quick", "--workers", "1", "--set", "quick.samples=1"]
    assert main(["bench", "table1", *common, "--out", str(bench)]) == 0
    assert main(["run", "table1", *common, "--out", str(run)]) == 0

    def stable(folder):
        lines = (folder / "records.jsonl").read_text().splitlines()
        return sorted(
            json.dumps({k: v for k, v in json.loads(line).items() if k != "seconds"})
            for line in lines
        )

    assert stable(bench) == stable(run)
    table = (bench / "table.md").read_text()
    assert "fast-search" in table and "idlg" in table and "median / fast-search" in table
    assert main(["bench", "table1", "--quick", "--out", str(bench)]) == 2  # never overwritten


# --- what recover says: header, verdict, rows shown, the saved file, warm and first timing ---


def test_recover_names_its_target_and_ends_with_a_verdict(capsys):
    assert main(["recover", "--index", "2", "--label-family", "smoothing", "--eps", "0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("attacking lenet (fresh, uniform init, seed 0) on embedded-cifar10")
    assert "test image 2 (class " in lines[0] and "client label smoothing eps=0.1" in lines[0]
    assert lines[-1].startswith("verdict: recovered a smoothing label (")
    assert "eps 0.1" in lines[-1]


def test_recover_verdict_names_a_refusal_and_why(capsys):
    assert main(["recover", "--label-family", "mixup", "--attack-family", "hard"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("verdict: refused: no scalar fits the hard family")


def test_recover_says_how_many_classes_it_shows(capsys):
    assert main(["recover", "--dataset", "embedded-cifar100"]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line[:5].strip().isdigit()]
    assert f"(showing {len(rows)} of 100 classes: the 5 largest recovered and true" in text
    assert main(["recover"]) == 0
    assert "showing" not in capsys.readouterr().out  # ten classes: every row


def test_recover_reports_warm_and_first_call_times(capsys):
    assert main(["recover"]) == 0
    timing = next(line for line in capsys.readouterr().out.splitlines() if "recovery time" in line)
    assert re.fullmatch(
        r"recovery time [\d.]+ (ms|s) warm \(median of [1-5] calls\); first call [\d.]+ (ms|s) "
        r"\(includes one-time warm-up\)",
        timing,
    )
    assert main(["recover", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["seconds"] > 0 and record["first_call_seconds"] > 0
    assert (record["model"], record["dataset"]) == ("lenet", "embedded-cifar10")


def test_timed_calls_separate_the_first_call_from_warm_ones():
    calls = []

    def recovery():
        time.sleep(0.05 if not calls else 0.0)
        calls.append(1)
        return len(calls)

    result, timing = timed_calls(recovery, warm_calls=3)
    assert result == 1 and len(calls) == 4 and timing.warm_calls == 3
    assert timing.first_seconds >= 0.05 > timing.warm_seconds
    slow = timed_calls(lambda: time.sleep(0.03), warm_calls=5, budget_seconds=0.01)[1]
    assert slow.warm_calls == 1  # at least one warm call, then the budget stops them


def test_save_observation_says_what_it_wrote(tmp_path, capsys):
    path = tmp_path / "obs.safetensors"
    assert main(["recover", "--model", "fcn4", "--save-observation", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("saved the observation (fcn4 on embedded-imagenet, ")
    assert f"MiB) to {path}" in lines[1] and f"--observation {path}" in lines[1]
    saved = load_saved_observation(path)
    assert saved.architecture == Architecture("fcn4", 1000, 3, 64)
    assert saved.dataset == "embedded-imagenet"
    assert main(["recover", "--observation", str(path)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == (
        f"attacking observation {path}: fcn4 on embedded-imagenet, 1 input, 1000 classes; "
        "the truth is unknown"
    )
    again = tmp_path / "again.safetensors"
    assert main(["recover", "--save-observation", str(again), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["converged"] and f"to {again}" in err  # stdout stays one record


def test_an_observation_file_without_model_still_loads(tmp_path, capsys):
    model = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=0)
    label = gradleak.labels.smoothing(1, 10, 0.2)
    observation, _ = gradleak.simulate_client_step(model, torch.rand(3, 32, 32), label)
    path = save_observation(observation, tmp_path / "old.safetensors")  # no architecture
    saved = load_saved_observation(path)
    assert (saved.architecture, saved.dataset) == (None, "")
    assert main(["recover", "--observation", str(path)]) == 0
    text = capsys.readouterr().out
    assert "model and dataset not recorded" in text.splitlines()[0]
    assert "verdict: recovered" in text


def test_recover_lists_each_method_once(capsys):
    with pytest.raises(SystemExit):
        main(["recover", "--help"])
    usage = capsys.readouterr().out
    choices = usage.split("--method {", 1)[1].split("}", 1)[0].split(",")
    assert len(choices) == len(set(choices)) and "llg" in choices
