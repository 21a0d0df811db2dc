"""`gradleak reconstruct` and `gradleak bench table3`, at tiny budgets."""

import json
from dataclasses import replace

import torch

import gradleak
from gradleak.cli import reconstruct as reconstruct_cli
from gradleak.cli.main import main
from gradleak.client import load_saved_observation
from gradleak.models import save_checkpoint

TINY = ["--iterations", "3", "--restarts", "1", "--dlg-iterations", "2"]


def test_reconstruct_prints_metrics_and_writes_grid_and_record(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["reconstruct", *TINY, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for variant in ("oracle-soft", "oracle-hard", "dlg", "ours", "ours-feature"):
        assert f"{variant}: objective" in text
    assert "PSNR" in text and "SSIM" in text
    record = json.loads((out / "record.json").read_text())
    assert record["label_converged"] is True
    assert set(record["variants"]) == {"oracle-soft", "oracle-hard", "dlg", "ours", "ours-feature"}
    assert all(0 < entry["psnr"] < 100 for entry in record["variants"].values())
    assert (out / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reconstruct_fcn4_analytic_is_exact(tmp_path, capsys):
    out = tmp_path / "fcn"
    argv = ["reconstruct", "--model", "fcn4", "--label-family", "mixup",
            "--variants", "analytic-fc", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "record.json").read_text())
    assert record["variants"]["analytic-fc"]["converged"] is True
    assert record["variants"]["analytic-fc"]["psnr"] >= 45


def test_reconstruct_refuses_existing_folder_and_unknown_variant(tmp_path, capsys):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert main(["reconstruct", *TINY, "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert (out / "mine.txt").read_text() == "keep"
    assert main(["reconstruct", "--variants", "ours,magic", "--out", str(tmp_path / "n")]) == 2
    assert "magic" in capsys.readouterr().err


def test_reconstruct_a_saved_observation_without_truth(tmp_path, capsys):
    saved = tmp_path / "obs.safetensors"
    assert main(["recover", "--save-observation", str(saved)]) == 0
    capsys.readouterr()
    out = tmp_path / "attack"
    argv = ["reconstruct", "--observation", str(saved), *TINY, "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "oracle" not in text and "PSNR" not in text
    record = json.loads((out / "record.json").read_text())
    assert set(record["variants"]) == {"dlg", "ours", "ours-feature"}
    assert (out / "grid.png").exists()


def test_bench_table3_quick(tmp_path, capsys):
    """`gradleak bench table3` is the Table 3 config's run: every variant, FCN-4 exact."""
    out = tmp_path / "bench"
    assert main(["bench", "table3", "--quick", "--workers", "1", "--out", str(out)]) == 0
    table = (out / "table.md").read_text()
    assert "analytic-fc" in table and "| ours-feature |" in table and "ours+feature" not in table
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 12
    fcn = next(r for r in records if r["variant"] == "analytic-fc")
    assert fcn["converged"] and fcn["psnr_8bit"] == float("inf")
    assert (out / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reconstruct_budget_flags_reach_the_attack(tmp_path, capsys, monkeypatch):
    seen = {}

    def spy(name, observation, model, **budget):
        seen[name] = budget
        return real(name, observation, model, **budget)

    real = reconstruct_cli.run_variant
    monkeypatch.setattr(reconstruct_cli, "run_variant", spy)
    argv = ["reconstruct", *TINY, "--tv-weight", "0.003", "--feature-weight", "0.25",
            "--attack-family", "smoothing", "--variants", "ours,dlg",
            "--out", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 0
    assert "family smoothing" in capsys.readouterr().out
    settings = seen["ours"]["settings"]
    assert (settings.iterations, settings.restarts, settings.tv_weight) == (3, 1, 0.003)
    assert settings.feature_weight == 0.25 and settings.seed == 0
    assert seen["dlg"]["dlg_iterations"] == 2
    assert seen["ours"]["image_mean"] is not None


def test_reconstruct_quick_runs_its_budget_and_says_so(tmp_path, capsys, monkeypatch):
    seen = {}

    def spy(name, observation, model, **budget):
        if budget["settings"].progress:  # the attack itself, not the timing for the estimate
            seen[name] = budget
            # Two steps stand in for the budget: the test checks what is asked, not its speed.
            budget = budget | {
                "settings": replace(budget["settings"], iterations=2),
                "dlg_iterations": 2,
            }
        return real(name, observation, model, **budget)

    real = reconstruct_cli.run_variant
    monkeypatch.setattr(reconstruct_cli, "run_variant", spy)
    out = tmp_path / "quick"
    assert main(["reconstruct", "--quick", "--variants", "ours,dlg", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("attacking lenet (fresh, uniform init, seed 0) on embedded-cifar10")
    budget = next(line for line in lines if line.startswith("budget"))
    assert budget.startswith(
        "budget (--quick): 200 Adam steps x 1 restart (ours), 20 L-BFGS steps (dlg); estimated "
    )
    assert "per Adam iteration" in budget and "per L-BFGS step" in budget
    assert seen["ours"]["settings"].iterations == 200 and seen["dlg"]["dlg_iterations"] == 20
    record = json.loads((out / "record.json").read_text())
    assert record["budget"] == {
        "iterations": 200,
        "restarts": 1,
        "dlg_iterations": 20,
        "quick": True,
    }
    assert "--iterations 200" in reconstruct_cli.quick_help()


def test_reconstruct_quick_yields_to_explicit_budget_flags(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["reconstruct", "--quick", "--iterations", "3", "--dlg-iterations", "2",
            "--variants", "ours,dlg", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "budget (--quick): 3 Adam steps x 1 restart (ours), 2 L-BFGS steps (dlg)" in (
        capsys.readouterr().out
    )
    assert json.loads((out / "record.json").read_text())["budget"]["iterations"] == 3


def test_checkpoint_round_trip_through_recover_and_reconstruct(tmp_path, capsys):
    """A model saved as `gradleak train` saves it is the client's model in recover (its
    weights are what the observation holds), and the observation file names it, so
    reconstruct needs no --model."""
    trained = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=7)
    checkpoint = save_checkpoint(
        trained, tmp_path / "lenet.safetensors", training={"dataset": "embedded-cifar10"}
    )
    saved = tmp_path / "obs.safetensors"
    argv = ["recover", "--checkpoint", str(checkpoint), "--save-observation", str(saved)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"attacking lenet (trained, --checkpoint {checkpoint}) on embedded")
    assert "verdict: recovered" in text
    observation = load_saved_observation(saved).observation
    for name, value in trained.named_parameters():
        assert torch.equal(observation.parameters[name], value.detach())
    out = tmp_path / "attack"
    argv = ["reconstruct", "--observation", str(saved), *TINY, "--variants", "ours",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert f"attacking observation {saved}: lenet (recorded in the file)" in (
        capsys.readouterr().out
    )
    assert json.loads((out / "record.json").read_text())["model"] == "lenet"
    out = tmp_path / "direct"
    argv = ["reconstruct", "--checkpoint", str(checkpoint), *TINY, "--variants", "ours",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "PSNR" in capsys.readouterr().out
