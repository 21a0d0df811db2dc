"""Configs are checked against what they run: every name, class count and checkpoint card is
validated when the config loads, before a run folder exists (issue item 11)."""

import math
import tomllib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

import gradleak
from dataset_fixtures import image_folder
from gradleak.data import ImageSet
from gradleak.experiments.config import CONFIG_FOLDER, load_config, resolve
from gradleak.experiments.suites import CASE_TYPES, resources
from gradleak.experiments.suites.base import TrialTask
from gradleak.experiments.suites.labels import LabelTrials, run_trial
from gradleak.families import draw_trial
from gradleak.training import TrainingFacts

CONFIGS = CONFIG_FOLDER

LABELS = {
    "model": "lenet",
    "init": "uniform",
    "dataset": "embedded-cifar10",
    "num_classes": 10,
    "label_family": "smoothing",
    "samples": 1,
}
RECONSTRUCTION = LABELS | {"variants": ["ours"]}
LANDSCAPE = dict(LABELS)
TRAINED = {
    "model": "lenet",
    "init": "trained smoothing:0.1",
    "dataset": "fashion-mnist",
    "num_classes": 10,
    "label_family": "smoothing",
    "samples": 1,
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    """Tiny LeNet checkpoints: a good Fashion-MNIST one, one with 5 classes, a fake file."""
    folder = tmp_path_factory.mktemp("checkpoints")
    training = asdict(
        TrainingFacts(
            dataset="fashion-mnist",
            augmentation="smoothing:0.1",
            label_family="smoothing",
            test_accuracy=0.1,
            epochs=1,
            batch_size=8,
            learning_rate=1e-3,
            optimizer="adamw",
            weight_decay=0.0,
            crop_flip=False,
            seed=0,
        )
    )
    paths = {}
    for key, classes in (("good", 10), ("five", 5)):
        model = gradleak.models.build(
            "lenet", num_classes=classes, in_channels=1, image_size=28, seed=0
        )
        path = folder / f"{key}.safetensors"
        gradleak.models.save_checkpoint(model, path, training=training)
        paths[key] = str(path)
    fake = folder / "fake.safetensors"
    fake.write_text("not a checkpoint")
    paths["fake"] = str(fake)
    paths["missing"] = str(folder / "absent.safetensors")
    return paths


def _raw(suite: str, case: dict) -> dict:
    return {"name": "bad", "suite": suite, "cases": [case]}


#: (suite, base case, changes, text the error must contain: the key and what is allowed)
BAD = [
    ("labels", LABELS, {"label_family": "onehot"}, "label_family = 'onehot'"),
    ("labels", LABELS, {"label_family": "auto"}, "label_family = 'auto'"),
    ("labels", LABELS, {"attack_family": "onehot"}, "attack_family = 'onehot'"),
    ("labels", LABELS, {"model": "resnet1"}, "model = 'resnet1'"),
    ("labels", LABELS, {"dataset": "cifar-10"}, "dataset = 'cifar-10'"),
    ("labels", LABELS, {"init": "kaiming"}, "init = 'kaiming'"),
    ("labels", LABELS, {"num_classes": 5}, "num_classes = 5"),
    ("labels", LABELS, {"dataset": "embedded-cifar100"}, "num_classes = 10"),
    ("labels", LABELS, {"dataset": "fashion-mnist", "num_classes": 100}, "num_classes = 100"),
    ("labels", LABELS, {"dataset": "cifar100"}, "num_classes = 10"),
    ("labels", LABELS, {"dataset": "image-folder", "num_classes": 1}, "num_classes = 1"),
    ("labels", LABELS, {"methods": ["idlg"]}, "methods"),
    ("labels", LABELS, {"methods": ["llg"], "attack_family": "mixup"}, "'llg'"),
    ("labels", LABELS, {"methods": ["fast-search", "gradinversion"]}, "'gradinversion'"),
    ("labels", LABELS, {"methods": []}, "methods"),
    ("labels", LABELS, {"methods": ["magic"]}, "methods"),
    ("labels", LABELS, {"defense": "gauss", "defense_params": {"noise_scale": 0.1}}, "'gauss'"),
    (
        "labels",
        LABELS,
        {"defense": "gaussian-noise", "defense_params": {"noise_scale": -1.0}},
        "noise_scale",
    ),
    (
        "labels",
        LABELS,
        {"defense": "laplace-noise", "defense_params": {"noise_scale": math.inf}},
        "noise_scale",
    ),
    ("labels", LABELS, {"defense": "laplace-noise", "defense_params": {"sigma": 1.0}}, "sigma"),
    ("labels", LABELS, {"defense_params": {"noise_scale": 0.1}}, "needs a defense"),
    ("labels", LABELS, {"samples_per_method": {"idlg": 3}}, "samples_per_method.idlg"),
    ("labels", LABELS, {"samples": 0}, "samples"),
    ("labels", LABELS, {"image_size": 4}, "image_size = 4"),
    ("labels", LABELS, {"data_root": "/no/such/folder"}, "data_root = '/no/such/folder'"),
    ("labels", TRAINED, {"checkpoint": "@missing"}, "train-benchmark-models.sh"),
    ("labels", TRAINED, {"checkpoint": "@fake"}, "checkpoint"),
    ("labels", TRAINED, {"checkpoint": "@good", "model": "resnet18"}, "model = 'resnet18'"),
    ("labels", TRAINED, {"checkpoint": "@five"}, "num_classes = 10"),
    (
        "labels",
        TRAINED,
        {"checkpoint": "@good", "dataset": "embedded-cifar10"},
        "dataset = 'embedded-cifar10'",
    ),
    ("labels", TRAINED, {"checkpoint": "@good", "init": "uniform"}, "init = 'uniform'"),
    ("labels", TRAINED, {"checkpoint": "@good", "image_size": 32}, "image_size = 32"),
    ("reconstruction", RECONSTRUCTION, {"variants": ["ourz"]}, "variants"),
    ("reconstruction", RECONSTRUCTION, {"label_family": "onehot"}, "label_family = 'onehot'"),
    ("reconstruction", RECONSTRUCTION, {"num_classes": 5}, "num_classes = 5"),
    ("reconstruction", RECONSTRUCTION, {"tv_weight": -1.0}, "tv_weight"),
    ("reconstruction", RECONSTRUCTION, {"model": "resnet1"}, "model = 'resnet1'"),
    ("landscape", LANDSCAPE, {"label_family": "auto"}, "label_family = 'auto'"),
    ("landscape", LANDSCAPE, {"num_classes": 5}, "num_classes = 5"),
    ("landscape", LANDSCAPE, {"grid_points": 5}, "grid_points"),
    ("landscape", LANDSCAPE | {"init": "trained"}, {"checkpoint": "@missing"}, "gradleak train"),
]


@pytest.mark.parametrize(("suite", "base", "changes", "message"), BAD)
def test_bad_config_is_refused_at_load_naming_the_key(checkpoints, suite, base, changes, message):
    case = base | changes
    if str(case.get("checkpoint", "")).startswith("@"):
        case["checkpoint"] = checkpoints[case["checkpoint"][1:]]
    with pytest.raises((ValueError, FileNotFoundError)) as caught:
        resolve(_raw(suite, case), case_types=CASE_TYPES)
    assert message in str(caught.value)
    assert "cases[0]" in str(caught.value)


def test_good_trained_checkpoint_and_nonnegative_with_any_family_load(checkpoints):
    trained = TRAINED | {"checkpoint": checkpoints["good"]}
    smoothing = LABELS | {"methods": ["fast-search", "nonnegative"]}
    config = resolve(
        {"name": "good", "suite": "labels", "cases": [trained, smoothing]},
        case_types=CASE_TYPES,
    )
    assert config.cases[0].checkpoint == checkpoints["good"]


def test_error_names_the_config_file_case_and_allowed_values(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text(
        'name = "typo"\nsuite = "labels"\n[[cases]]\nmodel = "lenet"\n'
        'dataset = "embedded-cifar10"\nnum_classes = 10\nlabel_family = "smoothing"\n'
        '[[cases]]\nmodel = "lenet"\ndataset = "embedded-cifar10"\nnum_classes = 10\n'
        'label_family = "onehot"\n'
    )
    with pytest.raises(ValueError) as caught:
        load_config(path, case_types=CASE_TYPES)
    message = str(caught.value)
    assert str(path) in message and "cases[1]" in message and "lenet" in message
    assert all(family in message for family in ("hard", "smoothing", "mixup"))


def _checkpoints_of(path: Path) -> list[str]:
    raw = tomllib.loads(path.read_text())
    tables = [raw.get("defaults", {}), *raw["cases"]]
    return [table["checkpoint"] for table in tables if table.get("checkpoint")]


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.toml")))
def test_every_shipped_config_loads_or_names_its_missing_checkpoint(name, quick):
    path = CONFIGS / name
    missing = [p for p in _checkpoints_of(path) if not (Path.cwd() / p).exists()]
    if missing:
        with pytest.raises(FileNotFoundError, match=r"train-benchmark-models\.sh"):
            load_config(path, case_types=CASE_TYPES, quick=quick)
        return
    config = load_config(path, case_types=CASE_TYPES, quick=quick)
    assert config.cases and all(case.samples >= 1 for case in config.cases)


def _images(labels: list[int]) -> ImageSet:
    return ImageSet(
        name="toy",
        images=torch.rand(len(labels), 1, 8, 8),
        labels=torch.tensor(labels),
        num_classes=10,
        mean=(0.5,),
        std=(0.25,),
    )


def _case(**changes) -> LabelTrials:
    return LabelTrials(**(LABELS | changes))


def test_draw_trial_refuses_an_unknown_family():
    with pytest.raises(ValueError, match="onehot"):
        draw_trial("onehot", _images([0, 1, 2]), 10, np.random.default_rng(0))


def test_draw_trial_refuses_labels_beyond_num_classes_instead_of_wrapping():
    with pytest.raises(ValueError, match=r"label 7.*num_classes = 5"):
        draw_trial("smoothing", _images([0, 7, 2]), 5, np.random.default_rng(0))


def test_draw_trial_mixup_needs_two_classes_present():
    with pytest.raises(ValueError, match="mixup"):
        draw_trial("mixup", _images([3, 3, 3]), 10, np.random.default_rng(0))


def test_draw_trial_keeps_its_draws_for_valid_cases():
    images = _images([0, 1, 2, 3])
    inputs, label = draw_trial("mixup", images, 10, np.random.default_rng(0))
    assert inputs.shape[-2:] == (8, 8)
    assert torch.count_nonzero(torch.as_tensor(label.probabilities)) == 2


def test_image_folder_class_count_is_checked_at_first_load(tmp_path):
    root = image_folder(
        tmp_path / "flowers", {"a": [(255, 0, 0), (0, 255, 0)], "b": [(0, 0, 255), (90, 30, 200)]}
    )
    case = _case(dataset="image-folder", data_root=str(root), image_size=32)
    with pytest.raises(ValueError, match=r"2 classes.*num_classes = 10"):
        resources.client_setting(case, 0)


def test_nonnegative_runs_beside_a_soft_label_family():
    case = _case(methods=("fast-search", "nonnegative"))
    records = run_trial(TrialTask("labels", case, 0, seed=1, model_seed=2))
    assert [record["method"] for record in records] == ["fast-search", "nonnegative"]
