"""The safetensors observation format: round trip, no overwrite, clear errors."""

import pytest
import torch
from safetensors.torch import save_file

import gradleak
from gradleak.client import load_observation, save_observation


@pytest.fixture(scope="module")
def observation():
    model = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=3)
    label = gradleak.labels.smoothing(2, 10, 0.3)
    obs, _ = gradleak.simulate_client_step(model, torch.rand(3, 32, 32), label)
    return obs


def test_round_trip_keeps_every_tensor(tmp_path, observation):
    path = save_observation(observation, tmp_path / "obs.safetensors")
    loaded = load_observation(path)
    assert loaded.classifier == observation.classifier
    assert loaded.num_samples == 1
    assert set(loaded.gradients) == set(observation.gradients)
    for name, grad in observation.gradients.items():
        assert torch.equal(loaded.gradients[name], grad)
        assert torch.equal(loaded.parameters[name], observation.parameters[name])


def test_classifier_only_is_enough_for_recovery(tmp_path, observation):
    path = save_observation(observation, tmp_path / "head.safetensors", classifier_only=True)
    loaded = load_observation(path)
    assert set(loaded.gradients) == {"classifier.weight"}
    full = gradleak.recover_label(observation, family="smoothing")
    head = gradleak.recover_label(loaded, family="smoothing")
    assert torch.allclose(full.soft_label, head.soft_label)


def test_existing_file_is_never_overwritten(tmp_path, observation):
    path = tmp_path / "obs.safetensors"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_observation(observation, path)
    assert path.read_bytes() == b"precious"
    save_observation(observation, path, overwrite=True)
    assert load_observation(path).classifier == "classifier"


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00\x01not a header")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_observation(path)


def test_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a gradleak observation"):
        load_observation(path)
