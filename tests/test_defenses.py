"""Gradient noise defenses: the registry, `apply`, the noise itself, and its effect on recovery."""

from __future__ import annotations

import math

import pytest
import torch

import gradleak
from gradleak import GradientObservation, labels, models, simulate_client_step
from gradleak.data import load_embedded
from gradleak.defenses import DEFENSES, GaussianNoise, LaplaceNoise, apply
from gradleak.recovery import NotSingleInputError

NOISES = ("gaussian-noise", "laplace-noise")
#: Standard deviation of the noise per unit of ``scale``: sigma, or sqrt(2) b for Laplace.
STD_PER_SCALE = {"gaussian-noise": 1.0, "laplace-noise": math.sqrt(2.0)}


@pytest.fixture(scope="module")
def lenet():
    return models.build("lenet", num_classes=10, init="uniform", seed=0)


@pytest.fixture(scope="module")
def step(lenet):
    images = load_embedded("embedded-cifar10")
    target = int(images.labels[0])
    return simulate_client_step(lenet, images.images[0], labels.smoothing(target, 10, 0.2))


def _flat(gradient: torch.Tensor) -> GradientObservation:
    """One classifier whose gradient is ``gradient``: a large tensor to measure noise on."""
    return GradientObservation(
        {"fc.weight": gradient}, {"fc.weight": torch.zeros_like(gradient)}, classifier="fc"
    )


# --- registry and arguments -----------------------------------------------------------------


def test_registry_holds_both_noises() -> None:
    assert set(NOISES) <= set(DEFENSES)
    assert isinstance(DEFENSES.build("gaussian-noise", noise_scale=0.1), GaussianNoise)
    assert isinstance(DEFENSES.build("laplace-noise", noise_scale=0.1, relative=True), LaplaceNoise)
    assert GaussianNoise.key == "gaussian-noise" and LaplaceNoise.key == "laplace-noise"


def test_unknown_defense_lists_the_known_ones(step) -> None:
    with pytest.raises(
        ValueError, match=r"defense 'dropout' is unknown.*gaussian-noise.*laplace-noise"
    ):
        apply(step[0], "dropout", seed=0)


@pytest.mark.parametrize("name", NOISES)
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"noise_scale": -0.1}, "noise_scale must be finite and >= 0"),
        ({"noise_scale": float("nan")}, "noise_scale must be finite and >= 0"),
        ({"noise_scale": float("inf")}, "noise_scale must be finite and >= 0"),
        ({"noise_scale": "0.1"}, "noise_scale must be a real number >= 0"),
        ({"noise_scale": True}, "noise_scale must be a real number >= 0"),
        ({"noise_scale": 0.1, "relative": "yes"}, "relative must be True or False"),
    ],
)
def test_bad_parameters_name_the_argument(name: str, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DEFENSES.build(name, **params)


@pytest.mark.parametrize("seed", [-1, 1.5, True, 2**63])
def test_bad_seed_names_the_range(step, seed) -> None:
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
        apply(step[0], "gaussian-noise", seed=seed, noise_scale=0.1)


def test_built_defense_takes_no_params(step) -> None:
    defense = GaussianNoise(noise_scale=0.1)
    assert torch.equal(
        apply(step[0], defense, seed=3).weight_grad,
        apply(step[0], "gaussian-noise", seed=3, noise_scale=0.1).weight_grad,
    )
    with pytest.raises(ValueError, match="params"):
        apply(step[0], defense, seed=3, noise_scale=0.2)


# --- the transformed observation ------------------------------------------------------------


@pytest.mark.parametrize("name", NOISES)
def test_shapes_kept_and_original_untouched(step, name: str) -> None:
    observation = step[0]
    before = {key: value.clone() for key, value in observation.gradients.items()}
    noisy = apply(observation, name, seed=0, noise_scale=0.01, relative=True)
    assert noisy is not observation
    assert list(noisy.gradients) == list(observation.gradients)
    assert noisy.classifier == observation.classifier
    assert noisy.num_samples == observation.num_samples
    for key, gradient in observation.gradients.items():
        assert torch.equal(gradient, before[key]), key
        assert noisy.gradients[key].shape == gradient.shape
        assert noisy.gradients[key].dtype == gradient.dtype
        assert not torch.equal(noisy.gradients[key], gradient), key
    assert noisy.parameters.keys() == observation.parameters.keys()


@pytest.mark.parametrize("name", NOISES)
def test_same_seed_same_noise(step, name: str) -> None:
    first = apply(step[0], name, seed=7, noise_scale=0.5)
    again = apply(step[0], name, seed=7, noise_scale=0.5)
    other = apply(step[0], name, seed=8, noise_scale=0.5)
    for key in first.gradients:
        assert torch.equal(first.gradients[key], again.gradients[key]), key
    assert not torch.equal(first.weight_grad, other.weight_grad)


@pytest.mark.parametrize("name", NOISES)
@pytest.mark.parametrize("relative", [False, True])
def test_scale_zero_is_the_identity(step, name: str, relative: bool) -> None:
    observation = step[0]
    same = apply(observation, name, seed=0, noise_scale=0.0, relative=relative)
    for key, gradient in observation.gradients.items():
        assert torch.equal(same.gradients[key], gradient), key


@pytest.mark.parametrize("name", NOISES)
@pytest.mark.parametrize("relative", [False, True])
def test_empirical_std_matches_the_scale(name: str, relative: bool) -> None:
    # RMS 2 on a 1000 x 1000 tensor: relative sigma doubles the absolute one.
    gradient = torch.full((1000, 1000), 2.0, dtype=torch.float64)
    scale = 0.3
    noise = apply(_flat(gradient), name, seed=1, noise_scale=scale, relative=relative).weight_grad
    noise = noise - gradient
    expected = scale * (2.0 if relative else 1.0) * STD_PER_SCALE[name]
    # 1e6 draws: the sample std's standard error is under 0.1% (Laplace tails included); allow 1%.
    assert float(noise.std()) == pytest.approx(expected, rel=1e-2)
    assert abs(float(noise.mean())) < 1e-2 * expected
    if name == "laplace-noise":
        # Laplace, not Gaussian: E|n| = b, and E|n| / std = 1 / sqrt(2) (Gaussian: sqrt(2 / pi)).
        assert float(noise.abs().mean()) == pytest.approx(expected / math.sqrt(2.0), rel=1e-2)


def test_float32_gradients_stay_float32() -> None:
    gradient = torch.ones(50, 20, dtype=torch.float32)
    noisy = apply(_flat(gradient), "laplace-noise", seed=0, noise_scale=1e-3).weight_grad
    assert noisy.dtype == torch.float32
    assert 0 < float((noisy - gradient).abs().max()) < 0.1


# --- effect on the paper's label recovery ---------------------------------------------------


@pytest.mark.parametrize("name", NOISES)
def test_recovery_survives_tiny_noise(step, name: str) -> None:
    observation, secret = step
    noisy = apply(observation, name, seed=0, noise_scale=1e-7, relative=True)
    estimate = gradleak.recover_label(noisy)
    assert estimate.converged, estimate.reason
    assert estimate.family == "smoothing"
    assert float((estimate.soft_label - secret.soft_label[0].double()).abs().sum()) < 1e-3


@pytest.mark.parametrize("name", NOISES)
def test_recovery_refuses_under_heavy_noise(step, name: str) -> None:
    noisy = apply(step[0], name, seed=0, noise_scale=1e-1, relative=True)
    # Noise at 10% of the gradient's RMS makes dL/dW visibly not rank one: the attack stops
    # before searching, with an exception (not a guess) ...
    with pytest.raises(NotSingleInputError, match="not rank one"):
        gradleak.recover_label(noisy)
    # ... and, told to try anyway, no label family fits: a refusal, never a converged answer.
    estimate = gradleak.recover_label(noisy, rank_tol=None)
    assert not estimate.converged
    assert estimate.reason
