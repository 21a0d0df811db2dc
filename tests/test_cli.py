"""The command line: help, the recover demo, saved observations, the quick benchmark."""

import json

import pytest

from gradleak.cli.main import build_parser, main


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
