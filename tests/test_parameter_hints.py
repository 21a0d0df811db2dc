"""Issue 16.10: the library names Python keywords, each command its own flags; help shows no
Python reprs."""

import argparse
import pickle
import re

import pytest

from gradleak import data
from gradleak.cli.main import build_parser, main
from gradleak.experiments.config import ExperimentConfig
from gradleak.experiments.runner import run_experiment
from gradleak.parameter_hints import Hint, MissingDataError, spelled


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    return lines[-1]


def test_a_hinted_error_is_spelled_for_python_or_a_command():
    error = MissingDataError("then pass its folder with ", Hint("root", "root=PATH"), ".")
    assert isinstance(error, FileNotFoundError)
    assert str(error) == "then pass its folder with root=PATH."
    assert (
        spelled(error, {"root": "--data-root PATH"})
        == "then pass its folder with --data-root PATH."
    )
    assert spelled(error, {"overwrite": "--overwrite"}) == str(error)  # no flag: Python's
    assert spelled(ValueError("plain"), {"root": "--data-root PATH"}) == "plain"
    # Worker processes send errors back pickled: the hint must survive.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is MissingDataError
    assert copy.spelled({"root": "--set defaults.data_root=PATH"}).endswith(
        "--set defaults.data_root=PATH."
    )


def test_the_library_names_the_keyword_not_a_flag(tmp_path):
    with pytest.raises(FileNotFoundError) as cifar:
        data.load("cifar10")
    with pytest.raises(FileNotFoundError) as missing:
        data.load("fashion-mnist", tmp_path / "nowhere")
    for error in (cifar, missing):
        assert "root=PATH" in str(error.value) and "--data-root" not in str(error.value)
    config = ExperimentConfig(name="x", suite="labels", seed=0, description="", cases=())
    (tmp_path / "run").mkdir()
    with pytest.raises(FileExistsError, match=r"pass resume=True"):
        run_experiment(config, tmp_path / "run", progress=False)


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["recover", "--dataset", "cifar10"], "--data-root PATH"),
        (["reconstruct", "--dataset", "image-folder"], "--data-root PATH"),
        (["train", "--dataset", "cifar100"], "--data-root PATH"),
        (
            [
                "audit",
                "sweep",
                "--defense",
                "clipping",
                "--max-grad-norm",
                "1",
                "--dataset",
                "cifar10",
                "--out",
                "o",
            ],
            "--data-root PATH",
        ),
    ],
)
def test_commands_name_their_data_root_flag(capsys, tmp_path, monkeypatch, argv, flag):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    line = _error(capsys)
    assert f"pass its folder with {flag}" in line and "root=PATH" not in line
    assert list(tmp_path.iterdir()) == []  # a command that failed on its data wrote nothing


LABELS = """
name = "hint"
suite = "labels"
[defaults]
model = "lenet"
dataset = "cifar10"
num_classes = 10
samples = 1
methods = ["fast-search"]
[[cases]]
label_family = "hard"
"""


@pytest.mark.parametrize("command", ["run", "bench"])
def test_run_names_the_config_key_and_resume_flag(capsys, tmp_path, command):
    config = tmp_path / "hint.toml"
    config.write_text(LABELS)
    out = tmp_path / "out"
    argv = [command, str(config), "--workers", "1", "--out", str(out), "--no-report"]
    assert main(argv) == 2
    line = _error(capsys)
    assert "pass its folder with --set defaults.data_root=PATH." in line, line
    assert not out.exists()
    out.mkdir()
    assert main(argv) == 2
    line = _error(capsys)
    assert "pass --resume to continue" in line and "resume=True" not in line


def test_train_names_its_overwrite_flag(capsys, tmp_path):
    out = tmp_path / "model.safetensors"
    out.write_bytes(b"")
    assert main(["train", "--out", str(out)]) == 2
    line = _error(capsys)
    assert "pass --overwrite to replace it" in line and "overwrite=True" not in line


#: What a Python value looks like in help text: a dict, list, tuple or set repr, None, a bool,
#: a path object.
PYTHON_REPR = re.compile(r"[{\[(]'|\bNone\b|\bTrue\b|\bFalse\b|PosixPath|\[\]|\(\)|\{\}")


def _parsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*prefix, name))


def test_no_help_shows_a_python_repr():
    seen = []
    for path, parser in _parsers(build_parser()):
        text = parser.format_help()
        assert not PYTHON_REPR.search(text), (path, PYTHON_REPR.findall(text))
        seen.append(" ".join(path))
    assert {"", "run", "bench", "recover", "audit flower", "audit sweep"} <= set(seen)
