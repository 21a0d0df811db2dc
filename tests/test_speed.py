"""The speed table (`gradleak bench speed`): rows and ratios as measured, never asserted times."""

from __future__ import annotations

import pytest

from gradleak.cli.main import main
from gradleak.experiments import speed


def test_markdown_reports_both_ratios_per_row():
    rows = [
        speed.SpeedRow("lenet C=100", "smoothing", path, 4, 0.5, ms, 4)
        for path, ms in zip(speed.PATHS, (1.0, 2.0, 3.0), strict=True)
    ]
    table = speed.markdown(rows)
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(rows)
    # x client step = recovery / client; x known-scale named = recovery / the first path's.
    # auto / named = the auto row over the unknown-scale named row.
    assert "| 1.000 | 2.00 | 1.00 | - | 4/4 |" in lines[2]
    assert "| 3.000 | 6.00 | 3.00 | 1.50 | 4/4 |" in lines[4]


def test_single_input_times_every_path_and_counts_verdicts():
    rows = speed.single_input(["lenet C=100"], samples=1, repeats=1, progress=False)
    assert {(row.family, row.path) for row in rows} == {
        (family, path) for family in speed.LABELS for path in speed.PATHS
    }
    for row in rows:
        assert row.client_ms > 0 and row.recovery_ms > 0
        # Untrained LeNet, C = 100: every path recovers these labels (docs/benchmarks.md).
        assert row.converged == 1


def test_bench_speed_checks_its_output_folder_before_work(tmp_path, capsys):
    existing = tmp_path / "taken"
    existing.mkdir()
    assert main(["bench", "speed", "--out", str(existing)]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["speed"])
def test_built_in_benchmarks_are_named_in_the_help(name, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert name in capsys.readouterr().out
