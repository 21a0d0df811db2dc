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


def test_quick_label_benchmark_writes_tables(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "bench",
                "labels",
                "--quick",
                "--samples",
                "6",
                "--paper-samples",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = (out / "table.md").read_text()
    assert "ours-fast" in table and "ours-paper" in table and "idlg" in table
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    fast = [r for r in records if r["method"] == "ours-fast"]
    assert len(fast) == 18
    assert all(r["converged"] and r["correct"] for r in fast)
    assert main(["bench", "labels", "--quick", "--out", str(out)]) == 2  # never overwritten
