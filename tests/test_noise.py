"""The acceptance threshold follows the precision of the observed gradient."""

import numpy as np
import pytest
import torch

import gradleak
from gradleak.recovery.families import FAMILIES, implied_labels, label_residual
from gradleak.recovery.last_layer import prepare
from gradleak.recovery.noise import EXACT, NOISE_FACTOR, noise_floor, threshold_at


def _true_scale(observation, secret) -> tuple:
    problem = prepare(observation.weight, observation.weight_grad)
    weight = observation.weight.double()
    probs = torch.softmax(weight @ secret.features[0].double(), 0).numpy()
    truth = secret.soft_label[0].double().numpy()
    return problem, float(probs[problem.row] - truth[problem.row])


def _residual(problem, family, inv_scale):
    t = np.array([inv_scale])
    labels, _ = implied_labels(t, problem.logit_direction, problem.coupling)
    return label_residual(labels, t, float(np.linalg.norm(problem.coupling)), FAMILIES[family])[0]


@pytest.mark.parametrize(("model", "init"), [("lenet", "uniform"), ("resnet18", "default")])
def test_truth_sits_below_the_floor_and_a_nearby_scalar_far_above(model, init):
    network = gradleak.models.build(model, num_classes=10, init=init, seed=4)
    label = gradleak.labels.smoothing(3, 10, 0.25)
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    observation, secret = gradleak.simulate_client_step(network, image, label)
    problem, inv_scale = _true_scale(observation, secret)
    _, probs = implied_labels(np.array([inv_scale]), problem.logit_direction, problem.coupling)
    floor = noise_floor(problem, np.array([inv_scale]), probs)[0]
    assert _residual(problem, "smoothing", inv_scale) < floor
    wrong = inv_scale * (1 + 1e-3)
    assert _residual(problem, "smoothing", wrong) > NOISE_FACTOR * floor


def test_float64_gradients_get_the_exact_threshold():
    rng = np.random.default_rng(0)
    weight, features = rng.normal(size=(6, 4)), rng.normal(size=4)
    probs = np.exp(weight @ features)
    probs /= probs.sum()
    label = np.full(6, 0.02)
    label[1] += 0.88
    problem = prepare(weight, np.outer(probs - label, features))
    assert problem.input_eps == np.finfo(np.float64).eps
    assert threshold_at(problem, np.array([0.3]), 1e-4)[0] == pytest.approx(EXACT)


def test_tol_caps_the_threshold():
    weight = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    problem = prepare(weight, np.outer(np.array([0.5, -0.2, -0.1, -0.1, -0.1]), [1.0, 2.0, 3.0]))
    assert threshold_at(problem, np.array([1e-6]), 1e-7)[0] <= 1e-7
