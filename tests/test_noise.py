"""The acceptance threshold follows the precision of the observed gradient."""

import numpy as np
import pytest
import torch

import gradleak
from gradleak import defenses
from gradleak.data import load_embedded
from gradleak.families import FAMILIES
from gradleak.recovery.last_layer import prepare
from gradleak.recovery.noise import EXACT, NOISE_FACTOR, noise_floor, threshold_at
from gradleak.recovery.residual import implied_labels, label_residual


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
    t = np.array([inv_scale])
    labels, probs = implied_labels(t, problem.logit_direction, problem.coupling)
    floor = noise_floor(problem, FAMILIES["smoothing"], t, labels, probs)[0]
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
    threshold = threshold_at(problem, FAMILIES["smoothing"], np.array([0.3]), 1e-4)[0]
    assert threshold == pytest.approx(EXACT)


def test_tol_caps_the_threshold():
    weight = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    problem = prepare(weight, np.outer(np.array([0.5, -0.2, -0.1, -0.1, -0.1]), [1.0, 2.0, 3.0]))
    assert threshold_at(problem, FAMILIES["smoothing"], np.array([1e-6]), 1e-7)[0] <= 1e-7


def test_a_saturated_softmax_is_no_rival():
    """Far out in |mu| the softmax is one-hot and the implied label nearly a mixup one: that
    limit misses the family by ~1e-4, millions of times the true fit, and must not make the
    true scalar "ambiguous" (the rounding of a one-hot softmax is zero, not eps * ||W|| ||x||)."""
    images = load_embedded("embedded-cifar10")
    network = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=16)
    first, second, lam = 4, 9, 0.3
    mixed = lam * images.images[first] + (1 - lam) * images.images[second]
    label = gradleak.labels.mixup(
        int(images.labels[first]), int(images.labels[second]), lam, num_classes=10
    )
    observation, secret = gradleak.simulate_client_step(network, images.normalise(mixed), label)
    truth = secret.soft_label[0].double()
    estimate = gradleak.recover_label(observation, family="mixup", scale="known")
    assert estimate.converged, estimate.reason
    assert estimate.diagnostics["rival_scales"] == []
    assert float((estimate.soft_label - truth).abs().sum()) < 1e-5
    unknown = gradleak.recover_label(observation, family="mixup")  # k fitted: a looser label
    assert unknown.converged, unknown.reason
    assert float((unknown.soft_label - truth).abs().sum()) < 1e-4


def test_precision_is_the_dtype_eps_for_a_clean_gradient_and_the_noise_for_a_noisy_one():
    network = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=2)
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    observation, _ = gradleak.simulate_client_step(
        network, image, gradleak.labels.smoothing(1, 10, 0.2)
    )
    clean = prepare(observation.weight, observation.weight_grad)
    assert clean.precision == pytest.approx(np.finfo(np.float32).eps)
    rng = np.random.default_rng(0)
    gradient = observation.weight_grad.double().numpy()
    noise = rng.normal(size=gradient.shape) * 1e-4 * np.sqrt(np.mean(gradient**2))
    noisy = prepare(observation.weight.double().numpy(), gradient + noise)
    assert 1e-5 < noisy.precision < 1e-3


def test_acceptance_follows_the_measured_noise_of_a_defended_gradient():
    """Laplace noise at 1e-4 of each tensor's RMS leaves the labels right to ~1e-4; a threshold
    set by the gradient's measured precision, not float32's eps, accepts them."""
    images = load_embedded("embedded-cifar10")
    network = gradleak.models.build("lenet", num_classes=10, init="uniform", seed=2)
    recovered = 0
    for index in range(20):
        label = gradleak.labels.smoothing(int(images.labels[index]), 10, 0.1 + 0.015 * index)
        clean, secret = gradleak.simulate_client_step(
            network, images.normalise(images.images[index]), label
        )
        noisy = defenses.apply(clean, "laplace-noise", seed=index, noise_scale=1e-4, relative=True)
        estimate = gradleak.recover_label(noisy, family="smoothing")
        error = float((estimate.soft_label - secret.soft_label[0].double()).abs().sum())
        assert not estimate.converged or error < 1e-2, "a noisy gradient must not mislead"
        recovered += estimate.converged
    assert recovered >= 19  # 16 of 20 with a threshold from float32's eps alone
