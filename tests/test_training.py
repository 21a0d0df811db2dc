"""Training targets, the soft-label loss, the training loop and safe checkpoints."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import gradleak
from gradleak.data import ImageSet
from gradleak.models import load, load_checkpoint, save_checkpoint
from gradleak.training import (
    Augmentation,
    TrainingConfig,
    evaluate,
    parse_augmentation,
    soft_cross_entropy,
    train_model,
)


def _quadrant_images(count: int, seed: int) -> ImageSet:
    """A 4-class toy task: class k brightens quadrant k of a noisy 1x8x8 image."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 4
    images = 0.3 * torch.rand(count, 1, 8, 8, generator=generator)
    for index, label in enumerate(labels.tolist()):
        top, left = divmod(label, 2)
        images[index, 0, 4 * top : 4 * top + 4, 4 * left : 4 * left + 4] += 0.7
    return ImageSet("quadrants", images, labels, 4, (0.5,), (0.3,))


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [("hard", "hard", 0.0), ("smoothing:0.1", "smoothing", 0.1), ("mixup:0.4", "mixup", 0.4)],
)
def test_parse_augmentation_round_trips(text, kind, value):
    augmentation = parse_augmentation(text)
    assert (augmentation.kind, augmentation.value) == (kind, value)
    assert str(augmentation) == text
    assert parse_augmentation(str(augmentation)) == augmentation


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cutmix:1", "unknown"),
        ("smoothing:1.5", "0 < eps < 1"),
        ("smoothing:0", "0 < eps < 1"),
        ("mixup:-1", "alpha > 0"),
        ("mixup:abc", "not a number"),
        ("hard:0.3", "no parameter"),
    ],
)
def test_parse_augmentation_rejects_bad_text(text, message):
    with pytest.raises(ValueError, match=message):
        parse_augmentation(text)


def test_label_families_follow_augmentation():
    assert Augmentation("hard").label_family == "hard"
    assert Augmentation("smoothing", 0.2).label_family == "smoothing"
    assert Augmentation("mixup", 1.0).label_family == "mixup"


def test_smoothing_targets_match_the_label_module():
    images = torch.rand(3, 1, 4, 4)
    classes = torch.tensor([0, 2, 4])
    _, targets = Augmentation("smoothing", 0.3).targets(
        images, classes, 5, np.random.default_rng(0)
    )
    for row, target in zip(targets, classes.tolist(), strict=True):
        expected = gradleak.labels.smoothing(target, 5, 0.3).probabilities
        torch.testing.assert_close(row, expected.to(row.dtype))


def test_mixup_mixes_inputs_and_targets_with_one_lambda():
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    classes = torch.tensor([0, 1, 2, 3])
    mixed, targets = Augmentation("mixup", 1.0).targets(
        images, classes, 4, np.random.default_rng(3)
    )
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(4))
    # Each mixed pixel value equals the target-weighted class index (image k holds value k).
    weighted = targets @ torch.arange(4, dtype=torch.float32)
    torch.testing.assert_close(mixed[:, 0, 0, 0], weighted)
    assert not torch.equal(mixed, images)


def test_soft_cross_entropy_matches_torch_label_smoothing():
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([0, 1, 2, 3, 4, 0])
    _, targets = Augmentation("smoothing", 0.2).targets(
        torch.zeros(6, 1, 1, 1), classes, 5, np.random.default_rng(0)
    )
    expected = torch.nn.functional.cross_entropy(logits, classes, label_smoothing=0.2)
    torch.testing.assert_close(soft_cross_entropy(logits, targets), expected)


@pytest.mark.parametrize("augment", ["hard", "smoothing:0.1", "mixup:1"])
def test_training_learns_a_separable_task(augment):
    train_set, test_set = _quadrant_images(256, 0), _quadrant_images(128, 1)
    model = gradleak.models.build("lenet", num_classes=4, in_channels=1, image_size=8, seed=0)
    before = evaluate(model, test_set)
    config = TrainingConfig(
        augmentation=parse_augmentation(augment), epochs=6, batch_size=32, learning_rate=1e-2
    )
    result = train_model(model, train_set, test_set, config, progress=False)
    assert before < 0.5
    assert result.test_accuracy >= 0.9
    assert [stats.epoch for stats in result.history] == list(range(1, 7))
    assert not model.training


def test_training_is_reproducible_from_its_seed():
    train_set, test_set = _quadrant_images(64, 0), _quadrant_images(32, 1)
    config = TrainingConfig(augmentation=Augmentation("mixup", 1.0), epochs=1, batch_size=16)
    weights = []
    for _ in range(2):
        model = gradleak.models.build("lenet", num_classes=4, in_channels=1, image_size=8, seed=0)
        train_model(model, train_set, test_set, config, progress=False)
        weights.append(model.classifier.weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_each_epoch_is_reported_as_it_ends_not_after_the_last():
    """`gradleak train` prints an epoch's accuracy from ``on_epoch``: it must run between
    epochs, while the model still changes afterwards."""
    train_set, test_set = _quadrant_images(64, 0), _quadrant_images(32, 1)
    model = gradleak.models.build("lenet", num_classes=4, in_channels=1, image_size=8, seed=0)
    seen = []
    config = TrainingConfig(epochs=3, batch_size=16, learning_rate=1e-2)

    def on_epoch(stats):
        seen.append((stats.epoch, model.classifier.weight.detach().clone()))

    train_model(model, train_set, test_set, config, progress=False, on_epoch=on_epoch)
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    final = model.classifier.weight.detach()
    assert not torch.equal(seen[0][1], final) and not torch.equal(seen[1][1], final)
    assert torch.equal(seen[2][1], final)


def test_training_rejects_labels_beyond_the_model():
    images = _quadrant_images(8, 0)
    model = gradleak.models.build("lenet", num_classes=3, in_channels=1, image_size=8, seed=0)
    with pytest.raises(ValueError, match="num_classes=3"):
        train_model(model, images, images, TrainingConfig(epochs=1), progress=False)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("epochs", 0, "epochs"), ("learning_rate", 0.0, "learning_rate"), ("optimizer", "x", "opt")],
)
def test_training_config_validates(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainingConfig(**{field: value})


@pytest.mark.parametrize("name", ["lenet", "resnet18"])
def test_checkpoint_round_trip_restores_outputs_and_buffers(tmp_path, name):
    model = gradleak.models.build(name, num_classes=4, in_channels=1, image_size=16, seed=2)
    model.train()
    model(torch.randn(4, 1, 16, 16))  # moves BatchNorm running statistics away from init
    model.eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", training={"dataset": "toy"})
    checkpoint = load_checkpoint(path)
    inputs = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(checkpoint.model(inputs), model(inputs), rtol=0, atol=0)
    assert not checkpoint.model.training
    assert checkpoint.card["architecture"]["name"] == name
    assert checkpoint.card["training"] == {"dataset": "toy"}
    sidecar = json.loads((tmp_path / "m.json").read_text())
    assert sidecar["architecture"] == {
        "name": name,
        "num_classes": 4,
        "in_channels": 1,
        "image_size": 16,
        "classifier_bias": False,
    }
    assert sidecar["versions"]["torch"] == torch.__version__


def test_checkpoint_refuses_to_overwrite_unless_asked(tmp_path):
    first = gradleak.models.build("lenet", num_classes=3, seed=0)
    second = gradleak.models.build("lenet", num_classes=3, seed=1)
    path = save_checkpoint(first, tmp_path / "m.safetensors")
    with pytest.raises(FileExistsError, match="overwrite"):
        save_checkpoint(second, path)
    torch.testing.assert_close(load(path).classifier.weight, first.classifier.weight)
    save_checkpoint(second, path, overwrite=True)
    torch.testing.assert_close(load(path).classifier.weight, second.classifier.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_checkpoint_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="gradleak train"):
        load(tmp_path / "missing.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not a gradleak checkpoint"):
        load(foreign)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load(garbage)
    with pytest.raises(ValueError, match=r"\.safetensors"):
        save_checkpoint(gradleak.models.build("lenet", num_classes=3), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="architecture"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "bare.safetensors")


@pytest.mark.slow
def test_lenet_reaches_85_percent_on_real_fashion_mnist():
    """The issue's target: LeNet on Fashion-MNIST >= 85% test accuracy (about 1 min here)."""
    from dataset_fixtures import REAL_FASHION_MNIST
    from gradleak import data

    if not (REAL_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"Debian's dataset-fashion-mnist is not installed at {REAL_FASHION_MNIST}")
    train_set = data.load("fashion-mnist", split="train")
    test_set = data.load("fashion-mnist", split="test")
    model = gradleak.models.build("lenet", num_classes=10, in_channels=1, image_size=28, seed=0)
    config = TrainingConfig(augmentation=Augmentation("smoothing", 0.1), epochs=8)
    result = train_model(model, train_set, test_set, config, progress=False)
    assert result.test_accuracy >= 0.85


def test_training_facts_are_read_back_checked():
    from gradleak.training import TrainingFacts

    good = {
        "dataset": "fashion-mnist",
        "augmentation": "hard",
        "label_family": "hard",
        "test_accuracy": 0.9,
        "epochs": 1,
        "batch_size": 8,
        "learning_rate": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 0,
        "crop_flip": False,
        "seed": 0,
    }
    assert TrainingFacts.from_card(good, where="card").weight_decay == 0
    with pytest.raises(ValueError, match=r"card: unknown training facts \['colour'\]"):
        TrainingFacts.from_card(good | {"colour": 1}, where="card")
    with pytest.raises(ValueError, match=r"lacks training facts \['seed'\]"):
        TrainingFacts.from_card({k: v for k, v in good.items() if k != "seed"}, where="card")
    with pytest.raises(ValueError, match=r"training.epochs = True must be of type int"):
        TrainingFacts.from_card(good | {"epochs": True}, where="card")
