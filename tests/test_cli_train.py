"""`gradleak train` and trained rows of `gradleak bench labels`, on a fixture Fashion-MNIST."""

import json

import pytest

from dataset_fixtures import fashion_folder
from gradleak.cli.main import main
from gradleak.models import load_checkpoint


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion-mnist")
    fashion_folder(root, counts=(96, 40))
    return root


def _train(root, out, *extra):
    return main(
        ["train", "--model", "lenet", "--dataset", "fashion-mnist", "--data-root", str(root),
         "--epochs", "1", "--batch-size", "32", "--out", str(out), *extra]
    )  # fmt: skip


@pytest.mark.parametrize("augment", ["smoothing:0.2", "mixup:0.5", "none"])
def test_train_writes_a_checkpoint_with_its_card(tmp_path, fashion_root, capsys, augment):
    out = tmp_path / "model.safetensors"
    assert _train(fashion_root, out, "--augment", augment) == 0
    assert "test accuracy" in capsys.readouterr().out
    checkpoint = load_checkpoint(out)
    card = json.loads((tmp_path / "model.json").read_text())
    assert card == checkpoint.card
    assert card["architecture"]["in_channels"] == 1
    assert card["architecture"]["image_size"] == 28
    assert card["training"]["augmentation"] == augment
    assert card["training"]["dataset"] == "fashion-mnist"
    assert card["training"]["train_images"] == 96
    assert 0.0 <= card["training"]["test_accuracy"] <= 1.0


def test_train_refuses_to_overwrite_without_flag(tmp_path, fashion_root, capsys):
    out = tmp_path / "model.safetensors"
    assert _train(fashion_root, out) == 0
    before = out.read_bytes()
    assert _train(fashion_root, out, "--seed", "3") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert _train(fashion_root, out, "--seed", "3", "--overwrite") == 0
    assert out.read_bytes() != before


def test_train_says_where_missing_data_belongs(tmp_path, capsys):
    assert _train(tmp_path / "nowhere", tmp_path / "m.safetensors") == 2
    error = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in error and "--data-root" in error
    assert not (tmp_path / "m.safetensors").exists()


def test_bench_attacks_trained_checkpoints(tmp_path, fashion_root, capsys):
    checkpoints = []
    for augment in ("smoothing:0.1", "mixup:1"):
        out = tmp_path / f"{augment.replace(':', '-')}.safetensors"
        assert _train(fashion_root, out, "--augment", augment) == 0
        checkpoints.append(str(out))
    run = tmp_path / "run"
    argv = ["bench", "labels", "--trained", *checkpoints, "--trained-only", "--samples", "6",
            "--paper-samples", "2", "--data-root", str(fashion_root),
            "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    cases = {record["case"] for record in records}
    assert cases == {
        "lenet (trained smoothing:0.1, fashion-mnist) C=10 smoothing",
        "lenet (trained mixup:1, fashion-mnist) C=10 mixup",
    }
    fast = [record for record in records if record["method"] == "ours-fast"]
    assert len(fast) == 12
    assert all(record["converged"] and record["correct"] for record in fast)
    assert "trained smoothing:0.1" in (run / "table.md").read_text()


def test_bench_trained_only_needs_checkpoints(tmp_path, capsys):
    assert main(["bench", "labels", "--trained-only", "--out", str(tmp_path / "r")]) == 2
    assert "--trained" in capsys.readouterr().err
