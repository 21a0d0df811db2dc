"""CLI errors: one line and exit 2, output checks before any work, flags that say their range."""

import os
from pathlib import Path

import pytest
import torch

import gradleak
import gradleak.experiments.runner
from gradleak.cli import reconstruct, recover, train
from gradleak.cli.main import build_parser, main
from gradleak.client import save_observation


def _no_work(monkeypatch, module, name: str) -> None:
    def started(*args, **kwargs):
        raise AssertionError(f"{module.__name__}.{name} ran before the checks")

    monkeypatch.setattr(module, name, started)


def _error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- the top level --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        PermissionError("cannot write x"),
        IsADirectoryError("x is a folder"),
        NotADirectoryError("x is a file"),
        OSError("disk full"),
        FileNotFoundError("no x"),
        ValueError("first line\nsecond line"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_expected_errors_are_one_line_and_exit_2(monkeypatch, capsys, error):
    def fail(args):
        raise error

    monkeypatch.setattr(recover, "run", fail)
    assert main(["recover"]) == 2
    line = _error(capsys)
    assert line.startswith("gradleak recover: error: ")
    assert str(error).splitlines()[0] in line


def test_debug_shows_the_traceback(monkeypatch):
    def fail(args):
        raise PermissionError("cannot write x")

    monkeypatch.setattr(recover, "run", fail)
    with pytest.raises(PermissionError, match="cannot write x"):
        main(["--debug", "recover"])


def test_interrupt_is_one_line_and_exit_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run", interrupted)
    assert main(["train"]) == 130
    assert "interrupted" in _error(capsys)


# --- numeric flags ----------------------------------------------------------------------------

BAD_VALUES = [
    ("recover", "--seed", str(2**70), "[0, 2**63 - 1]"),
    ("recover", "--seed", "-1", "[0, 2**63 - 1]"),
    ("recover", "--seed", "abc", "an integer"),
    ("recover", "--image-size", "0", ">= 8"),
    ("run configs/table1.toml", "--workers", "0", ">= 1"),
    ("recover", "--index", "-1", ">= 0"),
    ("recover", "--eps", "1.5", "[0, 1]"),
    ("recover", "--lam", "-0.1", "[0, 1]"),
    ("recover", "--eps", "nan", "[0, 1]"),
    ("reconstruct", "--iterations", "0", ">= 1"),
    ("reconstruct", "--restarts", "0", ">= 1"),
    ("reconstruct", "--dlg-iterations", "-1", ">= 1"),
    ("reconstruct", "--tv", "-1", ">= 0"),
    ("reconstruct", "--feature-weight", "-0.5", ">= 0"),
    ("reconstruct", "--image-size", "7", ">= 8"),
    ("train", "--epochs", "0", ">= 1"),
    ("train", "--batch-size", "0", ">= 1"),
    ("train", "--lr", "0", "> 0"),
    ("train", "--weight-decay", "-1", ">= 0"),
    ("train", "--image-size", "0", ">= 8"),
    ("train", "--train-limit", "0", ">= 1"),
    ("train", "--seed", str(2**63), "[0, 2**63 - 1]"),
    ("bench table1", "--workers", "0", ">= 1"),
]


@pytest.mark.parametrize(("command", "flag", "value", "allowed"), BAD_VALUES)
def test_numeric_flags_refuse_values_outside_their_range(capsys, command, flag, value, allowed):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command.split(), f"{flag}={value}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and allowed in err and value in err


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--label-family", "hard", "--eps", "0.1"], "--eps"),
        (["--label-family", "smoothing", "--lam", "0.5"], "--lam"),
        (["--label-family", "hard", "--lam", "0.5"], "--lam"),
    ],
)
def test_label_parameter_of_another_family_is_refused(capsys, monkeypatch, argv, flag):
    _no_work(monkeypatch, gradleak.cli.simulation.data, "load")
    assert main(["recover", *argv]) == 2
    assert flag in _error(capsys)


# --- paths: folders, up-front checks ---------------------------------------------------------


def test_observation_that_is_a_folder(tmp_path, capsys):
    assert main(["recover", "--observation", str(tmp_path)]) == 2
    assert "is a folder" in _error(capsys)


def test_save_observation_is_checked_before_work(tmp_path, capsys, monkeypatch, read_only):
    _no_work(monkeypatch, recover, "simulate")
    assert main(["recover", "--save-observation", str(tmp_path)]) == 2
    assert "--save-observation" in _error(capsys)
    read_only(tmp_path)
    assert main(["recover", "--save-observation", str(tmp_path / "o.safetensors")]) == 2
    line = _error(capsys)
    assert "--save-observation" in line and "not writable" in line


def test_save_observation_names_the_overwrite_flag(tmp_path, capsys):
    path = tmp_path / "obs.safetensors"
    path.write_text("the user's file")
    assert main(["recover", "--save-observation", str(path)]) == 2
    line = _error(capsys)
    assert "--save-observation" in line and "--overwrite" in line
    assert path.read_text() == "the user's file"
    assert main(["recover", "--save-observation", str(path), "--overwrite"]) == 0
    assert gradleak.client.load_observation(path).num_classes == 10


def test_reconstruct_checks_out_before_work(tmp_path, capsys, monkeypatch, read_only):
    _no_work(monkeypatch, reconstruct, "simulate")
    read_only(tmp_path)
    assert main(["reconstruct", "--out", str(tmp_path / "run")]) == 2
    line = _error(capsys)
    assert "--out" in line and "not writable" in line


def test_bench_checks_out_before_work(tmp_path, capsys, monkeypatch, read_only):
    _no_work(monkeypatch, gradleak.experiments.runner, "plan")
    read_only(tmp_path)
    assert main(["bench", "table1", "--quick", "--out", str(tmp_path / "run")]) == 2
    line = _error(capsys)
    assert "--out" in line and "not writable" in line


@pytest.mark.parametrize(
    ("name", "expected"),
    [("m.pt", ".safetensors"), ("folder.safetensors", "is a folder"), ("m.safetensors", "m.json")],
)
def test_train_checks_out_before_work(tmp_path, capsys, monkeypatch, name, expected):
    _no_work(monkeypatch, train.data, "load")
    (tmp_path / "folder.safetensors").mkdir()
    (tmp_path / "m.json").write_text("an old card")
    assert main(["train", "--out", str(tmp_path / name)]) == 2
    line = _error(capsys)
    assert "--out" in line and expected in line
    if name == "m.safetensors":
        assert "--overwrite" in line


def test_train_into_read_only_folder_fails_before_work(tmp_path, capsys, monkeypatch, read_only):
    _no_work(monkeypatch, train.data, "load")
    read_only(tmp_path)
    assert main(["train", "--out", str(tmp_path / "m.safetensors")]) == 2
    line = _error(capsys)
    assert "--out" in line and "not writable" in line


# --- atomic outputs -----------------------------------------------------------------------------


def _replaced(monkeypatch) -> list[Path]:
    """Every destination of os.replace, i.e. every file written atomically."""
    targets: list[Path] = []
    real = os.replace

    def spy(source, destination, *args, **kwargs):
        targets.append(Path(destination))
        return real(source, destination, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    return targets


def test_reconstruct_writes_its_record_atomically(tmp_path, capsys, monkeypatch):
    targets = _replaced(monkeypatch)
    out = tmp_path / "run"
    argv = ["reconstruct", "--model", "fcn4", "--label-family", "mixup",
            "--variants", "analytic-fc", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert out / "record.json" in targets


def test_bench_writes_its_tables_atomically(tmp_path, capsys, monkeypatch):
    targets = _replaced(monkeypatch)
    out = tmp_path / "run"
    argv = ["bench", "table1", "--quick", "--workers", "1", "--set", "quick.samples=1",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert {out / "table.md", out / "table.csv", out / "manifest.json"} <= set(targets)


# --- an observation that does not fit --model ---------------------------------------------------


def _lenet_observation():
    """A fresh lenet and its gradient on one random 32x32 image labelled smoothing 0.2."""
    model = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=0)
    label = gradleak.labels.smoothing(1, 10, 0.2)
    observation, _ = gradleak.simulate_client_step(model, torch.rand(3, 32, 32), label)
    return model, observation


@pytest.fixture(scope="module")
def lenet_observation_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("observations")
    _, observation = _lenet_observation()
    full = save_observation(observation, folder / "full.safetensors")
    head = save_observation(observation, folder / "head.safetensors", classifier_only=True)
    return full, head


def test_observation_of_another_model_names_the_mismatch(
    lenet_observation_file, tmp_path, capsys, monkeypatch
):
    _no_work(monkeypatch, gradleak.cli.reconstruct, "run_variant")
    full, _ = lenet_observation_file
    argv = ["reconstruct", "--observation", str(full), "--model", "resnet18",
            "--variants", "ours", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    line = _error(capsys)
    assert "do not fit --model resnet18" in line
    assert "classifier_only" not in line
    assert "'stem.0.weight'" in line and "'features.0.weight'" in line


def test_classifier_only_observation_says_so(lenet_observation_file, tmp_path, capsys, monkeypatch):
    _no_work(monkeypatch, gradleak.cli.reconstruct, "run_variant")
    _, head = lenet_observation_file
    argv = ["reconstruct", "--observation", str(head), "--variants", "ours",
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2  # a file without the model's name needs --model
    line = _error(capsys)
    assert "does not record its model" in line and "pass --model" in line
    assert main([*argv, "--model", "lenet"]) == 2
    line = _error(capsys)
    assert "--model lenet" in line and "classifier_only" in line


def test_flags_that_would_be_ignored_are_refused(lenet_observation_file, tmp_path, capsys):
    full, _ = lenet_observation_file
    argv = ["recover", "--observation", str(full), "--save-observation", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "--save-observation" in _error(capsys)
    assert main(["recover", "--observation", str(full), "--overwrite"]) == 2
    assert "--overwrite applies to --save-observation" in _error(capsys)
    assert not (tmp_path / "x").exists()


# --- observation files that name their model; --checkpoint against the other flags -----------


@pytest.fixture(scope="module")
def recorded_observation_file(tmp_path_factory):
    """A lenet observation on embedded CIFAR-10, with its model and dataset in the header."""
    folder = tmp_path_factory.mktemp("recorded")
    model, observation = _lenet_observation()
    return save_observation(
        observation,
        folder / "recorded.safetensors",
        architecture=model.architecture,
        dataset="embedded-cifar10",
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--model", "resnet18"],
            "this observation is of a lenet; --model resnet18 does not match",
        ),
        (
            ["--dataset", "embedded-cifar100"],
            "this observation is of embedded-cifar10 images; --dataset embedded-cifar100 does "
            "not match",
        ),
    ],
)
def test_recorded_observation_names_the_flag_that_contradicts_it(
    recorded_observation_file, tmp_path, capsys, monkeypatch, flags, expected
):
    _no_work(monkeypatch, gradleak.cli.reconstruct, "run_variant")
    argv = ["reconstruct", "--observation", str(recorded_observation_file), *flags,
            "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    line = _error(capsys)
    assert expected in line and "classifier_only" not in line


@pytest.fixture(scope="module")
def lenet_checkpoint(tmp_path_factory):
    from gradleak.models import save_checkpoint

    model = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=3)
    path = tmp_path_factory.mktemp("checkpoints") / "lenet.safetensors"
    return save_checkpoint(model, path, training={"dataset": "embedded-cifar10"})


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--model", "resnet18"], "--model resnet18 does not match --checkpoint"),
        (["--dataset", "embedded-cifar100"], "--dataset embedded-cifar100 has 100 classes"),
        (["--init", "uniform"], "--init applies to a fresh model"),
        (["--image-size", "64"], "--image-size 64 does not match --checkpoint"),
        (["--classifier-bias"], "--classifier-bias does not match --checkpoint"),
    ],
)
def test_checkpoint_refuses_flags_that_contradict_it(
    lenet_checkpoint, capsys, monkeypatch, flags, expected
):
    _no_work(monkeypatch, gradleak, "simulate_client_step")
    assert main(["recover", "--checkpoint", str(lenet_checkpoint), *flags]) == 2
    line = _error(capsys)
    assert expected in line and str(lenet_checkpoint) in line


def test_checkpoint_file_errors_name_the_flag(tmp_path, capsys):
    assert main(["recover", "--checkpoint", str(tmp_path / "none.safetensors")]) == 2
    line = _error(capsys)
    assert line.startswith("gradleak recover: error: --checkpoint: ") and "does not exist" in line
    (tmp_path / "bad.safetensors").write_text("not a checkpoint")
    assert main(["recover", "--checkpoint", str(tmp_path / "bad.safetensors")]) == 2
    assert "--checkpoint: " in _error(capsys)


def test_checkpoint_against_an_observation(
    lenet_checkpoint, recorded_observation_file, tmp_path, capsys, monkeypatch
):
    argv = ["recover", "--observation", str(recorded_observation_file),
            "--checkpoint", str(lenet_checkpoint)]  # fmt: skip
    assert main(argv) == 2
    assert "leave --checkpoint out" in _error(capsys)
    _no_work(monkeypatch, gradleak.cli.reconstruct, "run_variant")
    from gradleak.models import save_checkpoint

    small = gradleak.models.build("lenet", num_classes=10, in_channels=1, image_size=28, seed=0)
    other = save_checkpoint(small, tmp_path / "gray.safetensors", training={"dataset": "x"})
    argv = ["reconstruct", "--observation", str(recorded_observation_file),
            "--checkpoint", str(other), "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 2
    line = _error(capsys)
    assert "this observation is of a lenet (10 classes, 3x32x32 inputs)" in line
    assert f"--checkpoint {other} holds a lenet (10 classes, 1x28x28 inputs)" in line


@pytest.mark.parametrize(
    ("architecture", "expected"),
    [
        ("{not json", "metadata architecture is not JSON"),
        ('{"name": "lenet"}', "lacks"),
        (
            '{"name": "lenet", "num_classes": 100, "in_channels": 3, "image_size": 32}',
            "metadata architecture has 100 classes, the classifier's gradient 10",
        ),
    ],
)
def test_observation_with_a_broken_architecture_names_the_file(
    recorded_observation_file, tmp_path, capsys, architecture, expected
):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(recorded_observation_file), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    broken = tmp_path / "broken.safetensors"
    save_file(tensors, str(broken), metadata=metadata | {"architecture": architecture})
    assert main(["recover", "--observation", str(broken)]) == 2
    line = _error(capsys)
    assert str(broken) in line and expected in line
