"""Observation files and checkpoints: atomic writes, checks up front, clear errors."""

import json
import logging
import os
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

import gradleak
from gradleak.client import GradientObservation, load_observation, save_observation
from gradleak.client import files as observation_files
from gradleak.models import checkpoint as checkpoints
from gradleak.models import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def observation():
    model = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=3)
    label = gradleak.labels.smoothing(2, 10, 0.3)
    obs, _ = gradleak.simulate_client_step(model, torch.rand(3, 32, 32), label)
    return obs


@pytest.fixture(scope="module")
def lenet():
    return gradleak.models.build("lenet", num_classes=3, seed=0)


def _normal_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


# --- observation files -------------------------------------------------------------------


def _observation_file(path: Path, **metadata: str) -> Path:
    tensors = {"gradient/fc.weight": torch.ones(3, 2), "parameter/fc.weight": torch.ones(3, 2)}
    header = {"format": "gradleak-observation", "version": "1"} | metadata
    save_file(tensors, str(path), metadata=header)
    return path


@pytest.mark.parametrize("missing", ["classifier", "num_samples"])
def test_observation_without_metadata_key_is_a_clear_error(tmp_path, missing):
    fields = {"classifier": "fc", "num_samples": "1"}
    del fields[missing]
    path = _observation_file(tmp_path / "obs.safetensors", **fields)
    with pytest.raises(ValueError, match=f"{path}.*no '{missing}'"):
        load_observation(path)


@pytest.mark.parametrize("value", ["two", "1.5", ""])
def test_observation_with_non_integer_num_samples(tmp_path, value):
    path = _observation_file(tmp_path / "obs.safetensors", classifier="fc", num_samples=value)
    with pytest.raises(ValueError, match=f"{path}.*num_samples.*integer"):
        load_observation(path)


def test_observation_that_does_not_validate_names_the_file(tmp_path):
    path = _observation_file(tmp_path / "obs.safetensors", classifier="head", num_samples="1")
    with pytest.raises(ValueError, match=f"{path}: classifier='head'"):
        load_observation(path)


def test_observation_path_that_is_a_folder(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_observation(tmp_path)


def test_save_observation_replaces_the_file_atomically(tmp_path, observation, monkeypatch):
    path = save_observation(observation, tmp_path / "obs.safetensors")
    before, inode = path.read_bytes(), path.stat().st_ino

    def torn(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(observation_files, "save_file", torn)
    with pytest.raises(OSError, match="disk full"):
        save_observation(observation, path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obs.safetensors"]
    monkeypatch.undo()
    save_observation(observation, path, overwrite=True)
    assert path.stat().st_ino != inode  # a new file moved over the old name, not rewritten
    assert path.stat().st_mode & 0o777 == _normal_mode()


def test_save_observation_into_read_only_folder(tmp_path, observation, read_only):
    read_only(tmp_path)
    with pytest.raises(PermissionError, match=f"path {tmp_path / 'obs.safetensors'}"):
        save_observation(observation, tmp_path / "obs.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_save_observation_write_error_names_the_path(tmp_path, observation, monkeypatch):
    def failing(tensors, filename, metadata=None):
        raise SafetensorError("I/O error: Permission denied (os error 13)")

    monkeypatch.setattr(observation_files, "save_file", failing)
    with pytest.raises(OSError, match=r"obs.safetensors.*Permission denied"):
        save_observation(observation, tmp_path / "obs.safetensors")


def test_save_observation_to_a_folder(tmp_path, observation):
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save_observation(observation, tmp_path)


# --- meta-device tensors -----------------------------------------------------------------


def test_meta_inputs_to_simulate_are_refused():
    model = gradleak.models.build("lenet", num_classes=10, seed=0)
    label = gradleak.labels.smoothing(2, 10, 0.3)
    with pytest.raises(ValueError, match=r"inputs.*meta"):
        gradleak.simulate_client_step(model, torch.empty(3, 32, 32, device="meta"), label)
    meta_label = torch.empty(10, device="meta")
    with pytest.raises(ValueError, match=r"soft_label.*meta"):
        gradleak.simulate_client_step(model, torch.rand(3, 32, 32), meta_label)


def test_meta_model_to_simulate_is_refused():
    model = gradleak.models.build("lenet", num_classes=10, seed=0).to("meta")
    label = gradleak.labels.smoothing(2, 10, 0.3)
    with pytest.raises(ValueError, match=r"model.*meta"):
        gradleak.simulate_client_step(model, torch.rand(3, 32, 32), label)


@pytest.mark.parametrize("group", ["gradients", "parameters"])
def test_meta_observation_is_refused(group):
    real, meta = torch.ones(3, 2), torch.empty(3, 2, device="meta")
    tensors = {"gradients": {"fc.weight": real}, "parameters": {"fc.weight": real}}
    tensors[group] = {"fc.weight": meta}
    with pytest.raises(ValueError, match=rf"{group}\['fc.weight'\].*meta"):
        GradientObservation(**tensors, classifier="fc")


# --- the missing-weight message ----------------------------------------------------------


def test_missing_classifier_weight_says_where_it_is_missing():
    weight = torch.ones(3, 2)
    with pytest.raises(ValueError, match="not in parameters") as info:
        GradientObservation({"fc.weight": weight}, {"body.weight": weight}, classifier="fc")
    assert "weights in parameters: ['body.weight']" in str(info.value)
    with pytest.raises(ValueError, match="not in gradients") as info:
        GradientObservation({"body.weight": weight}, {"fc.weight": weight}, classifier="fc")
    assert "weights in gradients: ['body.weight']" in str(info.value)


# --- checkpoints --------------------------------------------------------------------------


def test_checkpoint_and_sidecar_get_normal_permissions(tmp_path, lenet):
    path = save_checkpoint(lenet, tmp_path / "m.safetensors")
    assert path.stat().st_mode & 0o777 == _normal_mode()
    assert checkpoints.sidecar_path(path).stat().st_mode & 0o777 == _normal_mode()


def test_checkpoint_sidecar_is_replaced_atomically(tmp_path, lenet):
    path = save_checkpoint(lenet, tmp_path / "m.safetensors")
    sidecar = checkpoints.sidecar_path(path)
    inodes = path.stat().st_ino, sidecar.stat().st_ino
    save_checkpoint(lenet, path, overwrite=True)
    assert path.stat().st_ino != inodes[0]
    assert sidecar.stat().st_ino != inodes[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_checkpoint_refuses_an_existing_sidecar_alone(tmp_path, lenet):
    (tmp_path / "m.json").write_text("notes")
    with pytest.raises(FileExistsError, match=r"m.json.*overwrite=True"):
        save_checkpoint(lenet, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_checkpoint_into_read_only_folder(tmp_path, lenet, read_only):
    read_only(tmp_path)
    with pytest.raises(PermissionError, match=r"m.safetensors"):
        save_checkpoint(lenet, tmp_path / "m.safetensors")


def test_checkpoint_write_error_names_the_path(tmp_path, lenet, monkeypatch):
    def failing(tensors, filename, metadata=None):
        raise SafetensorError("I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoints, "save_file", failing)
    with pytest.raises(OSError, match=r"m.safetensors.*No space left"):
        save_checkpoint(lenet, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_of_a_meta_model_is_refused(tmp_path):
    model = gradleak.models.build("lenet", num_classes=3, seed=0).to("meta")
    with pytest.raises(ValueError, match=r"model.*meta"):
        save_checkpoint(model, tmp_path / "m.safetensors")


def test_checkpoint_path_that_is_a_folder(tmp_path):
    folder = tmp_path / "m.safetensors"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        load_checkpoint(folder)


def _card_file(path: Path, model, card: str | None) -> Path:
    metadata = {"format": "gradleak-checkpoint", "version": "1"}
    if card is not None:
        metadata["card"] = card
    state = {name: value.contiguous() for name, value in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)
    return path


ARCHITECTURE = {"name": "lenet", "num_classes": 3, "in_channels": 3, "image_size": 32}
BAD_CARDS = {
    "extra-key": json.dumps({"architecture": ARCHITECTURE | {"depth": 5}}),
    "missing-key": json.dumps({"architecture": {"name": "lenet", "num_classes": 3}}),
    "not-a-dict": json.dumps([1, 2]),
    "not-json": "{architecture: lenet",
    "no-architecture": json.dumps({"training": {}}),
    "architecture-not-a-dict": json.dumps({"architecture": "lenet"}),
    "no-card": None,
}


@pytest.mark.parametrize("case", sorted(BAD_CARDS))
def test_bad_checkpoint_card_is_a_clear_error(tmp_path, lenet, case):
    path = _card_file(tmp_path / "m.safetensors", lenet, BAD_CARDS[case])
    with pytest.raises(ValueError, match=rf"{path}.*card") as info:
        load_checkpoint(path)
    if case in ("extra-key", "missing-key"):
        assert ("depth" if case == "extra-key" else "in_channels") in str(info.value)


def test_sidecar_that_disagrees_with_the_card_warns(tmp_path, lenet, caplog):
    path = save_checkpoint(lenet, tmp_path / "m.safetensors", training={"epochs": 3})
    sidecar = checkpoints.sidecar_path(path)
    with caplog.at_level(logging.WARNING):
        load_checkpoint(path)
    assert caplog.records == []
    card = json.loads(sidecar.read_text())
    card["training"]["epochs"] = 30
    sidecar.write_text(json.dumps(card))
    with caplog.at_level(logging.WARNING):
        checkpoint = load_checkpoint(path)
    assert checkpoint.card["training"]["epochs"] == 3  # the header card is the truth
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1
    assert str(path) in messages[0] and str(sidecar) in messages[0]


def test_unreadable_sidecar_warns(tmp_path, lenet, caplog):
    path = save_checkpoint(lenet, tmp_path / "m.safetensors")
    checkpoints.sidecar_path(path).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        load_checkpoint(path)
    assert any("m.json" in record.getMessage() for record in caplog.records)
