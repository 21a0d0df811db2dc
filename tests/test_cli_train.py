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


@pytest.mark.parametrize("augment", ["smoothing:0.2", "mixup:0.5", "hard"])
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


TRAINED_CONFIG = """
name = "trained"
suite = "labels"
[defaults]
samples = 6
samples_per_method = {{paper-search = 2}}
methods = ["fast-search", "paper-search"]
dataset = "fashion-mnist"
num_classes = 10
data_root = "{root}"
[[cases]]
model = "lenet"
init = "trained smoothing:0.1"
label_family = "smoothing"
checkpoint = "{smoothing}"
[[cases]]
model = "lenet"
init = "trained mixup:1"
label_family = "mixup"
checkpoint = "{mixup}"
"""


def test_a_config_attacks_trained_checkpoints(tmp_path, fashion_root, capsys):
    """Trained models are attacked through a config naming their checkpoints (what
    table2-trained.toml does for the models of scripts/train-benchmark-models.sh)."""
    paths = {}
    for family, augment in (("smoothing", "smoothing:0.1"), ("mixup", "mixup:1")):
        paths[family] = tmp_path / f"{augment.replace(':', '-')}.safetensors"
        assert _train(fashion_root, paths[family], "--augment", augment) == 0
    config = tmp_path / "trained.toml"
    config.write_text(TRAINED_CONFIG.format(root=fashion_root, **paths))
    run = tmp_path / "run"
    assert main(["run", str(config), "--workers", "1", "--out", str(run)]) == 0
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    cases = {record["case"] for record in records}
    assert cases == {
        "lenet (trained smoothing:0.1) fashion-mnist C=10 smoothing",
        "lenet (trained mixup:1) fashion-mnist C=10 mixup",
    }
    fast = [record for record in records if record["method"] == "fast-search"]
    assert len(fast) == 12
    assert sum(record["method"] == "paper-search" for record in records) == 4
    assert all(record["converged"] and record["correct"] for record in fast)
    assert "trained smoothing:0.1" in (run / "table.md").read_text()
