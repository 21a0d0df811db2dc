"""One harness for every registered thing: methods, attacks, defenses, families, suites.

A new registry entry is tested here without a new test: every recovery method runs on the
same observations under each family it declares (and refuses the others by name), every
reconstruction attack on the same gradient, every defense on the same observation, every
label family through make / draw / read-back / training targets / its class count, and every
suite has a shipped config whose quick twin `test_configs_quick.py` runs against golden
numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradleak
from gradleak.data import load_embedded
from gradleak.defenses import DEFENSES, apply
from gradleak.experiments.config import CONFIG_FOLDER
from gradleak.experiments.suites import SUITES
from gradleak.families import FAMILIES, draw_trial
from gradleak.reconstruction import ATTACKS
from gradleak.recovery import ATTACK_FAMILIES, METHODS, identifiability

#: The parameters each defense is exercised with (every registered defense must be here).
DEFENSE_PARAMS = {
    "gaussian-noise": {"noise_scale": 1e-3, "relative": True},
    "laplace-noise": {"noise_scale": 1e-3, "relative": True},
    "clipping": {"max_grad_norm": 1e-4},
    "dp-sgd": {"max_grad_norm": 1.0, "noise_multiplier": 1e-3},
    "top-k": {"fraction": 0.1},
    "quantization": {"dtype": "int8"},
}
#: A small budget for each attack (every registered attack must be here).
ATTACK_PARAMS = {
    "analytic-fc": {},
    "dlg": {"iterations": 2},
    "inverting-gradients": {"iterations": 3, "restarts": 1},
}


@pytest.fixture(scope="module")
def images():
    return load_embedded("embedded-cifar10")


@pytest.fixture(scope="module")
def clients(images):
    """One LeNet client per label family, the same image and model for all."""
    model = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=3)
    rng = np.random.default_rng(0)
    return {
        family: gradleak.simulate_client_step(model, *draw_trial(family, images, 10, rng))
        for family in FAMILIES
    }


@pytest.mark.parametrize("method", METHODS.keys())
def test_every_method_answers_the_families_it_declares(clients, method):
    for family in ATTACK_FAMILIES:
        client_family = "hard" if family == "auto" else family
        observation, secret = clients[client_family]
        if family not in METHODS[method].families:
            with pytest.raises(ValueError, match=method):
                gradleak.recover_label(observation, family, method=method)
            continue
        estimate = gradleak.recover_label(observation, family, method=method)
        assert estimate.method == method
        assert estimate.soft_label.shape == (10,)
        assert estimate.converged or estimate.reason
        if estimate.converged and method != "nonnegative":
            error = float((estimate.soft_label - secret.soft_label[0].double()).abs().sum())
            assert error < 1e-2, (method, family, error)


def test_every_method_recovers_a_one_hot_client(clients):
    """The one family every method answers: no registered method may miss it."""
    observation, secret = clients["hard"]
    for method in METHODS:
        if method == "nonnegative":  # answers only when non-negativity pins the label
            continue
        estimate = gradleak.recover_label(observation, "hard", method=method)
        assert estimate.converged, (method, estimate.reason)
        assert int(estimate.soft_label.argmax()) == int(secret.soft_label[0].argmax())


def test_every_defense_is_exercised_and_reproducible(clients):
    assert set(DEFENSES) == set(DEFENSE_PARAMS), "add the new defense to DEFENSE_PARAMS"
    observation, _ = clients["smoothing"]
    for name, params in DEFENSE_PARAMS.items():
        first = apply(observation, name, seed=1, **params)
        again = apply(observation, name, seed=1, **params)
        assert first.gradients.keys() == observation.gradients.keys()
        for key, value in observation.gradients.items():
            assert first.gradients[key].shape == value.shape
            assert torch.equal(first.gradients[key], again.gradients[key])
        assert not torch.equal(first.weight_grad, observation.weight_grad), name


@pytest.mark.parametrize("attack", ATTACKS.keys())
def test_every_attack_reconstructs_an_input_of_the_right_shape(images, attack):
    assert set(ATTACKS) == set(ATTACK_PARAMS), "add the new attack to ATTACK_PARAMS"
    model_name, size = ("fcn4", 16) if attack == "analytic-fc" else ("lenet", 32)
    model = gradleak.models.build(model_name, num_classes=10, seed=0, image_size=size)
    small = load_embedded("embedded-cifar10", image_size=size)
    inputs, label = draw_trial("smoothing", small, 10, np.random.default_rng(1))
    observation, secret = gradleak.simulate_client_step(model, inputs, label)
    estimate = gradleak.recover_label(observation, "smoothing")
    labels = None if attack == "dlg" else estimate
    result = gradleak.reconstruct(
        observation, model, attack, labels=labels, **ATTACK_PARAMS[attack]
    )
    assert result.attack == attack
    assert result.inputs.shape == secret.inputs.shape
    assert torch.isfinite(result.inputs).all()
    assert result.converged or result.reason


@pytest.mark.parametrize("key", FAMILIES.keys())
def test_every_family_makes_draws_reads_back_and_trains(images, key):
    family = FAMILIES[key]
    rng = np.random.default_rng(5)
    label = family.random(10, rng)
    assert label.family == key and abs(float(label.probabilities.sum()) - 1.0) < 1e-12
    read = family.read_params(label.probabilities.numpy())
    for name, value in label.params.items():
        if name in read and not (key == "mixup" and name in ("a", "b", "lam")):
            assert read[name] == pytest.approx(value, abs=1e-9), (key, name)
    inputs, drawn = draw_trial(key, images, 10, rng)
    assert inputs.shape == images.images.shape[1:] and drawn.family == key
    classes = torch.tensor([0, 1, 2, 3])
    batch = torch.rand(4, 3, 8, 8)
    value = family.training_default
    mixed, targets = family.training_targets(batch, classes, 10, value, rng)
    assert mixed.shape == batch.shape and targets.shape == (4, 10)
    assert torch.allclose(targets.sum(dim=1), torch.ones(4))
    bound = identifiability(10, key).min_classes
    assert family.min_classes() == bound == len(family.parameters) + 3  # + mu, + one more


def test_every_suite_has_a_shipped_config():
    shipped = {
        line.split("=")[1].strip().strip('"')
        for path in CONFIG_FOLDER.glob("*.toml")
        for line in path.read_text().splitlines()
        if line.startswith("suite = ")
    }
    ours = {
        key for key, suite in SUITES.items() if suite.case_type.__module__.startswith("gradleak")
    }
    assert ours <= shipped, "every suite needs a config (its quick twin is tested)"
