"""Analytic layer-by-layer inversion ("analytic-fc"): exact on tiny float64 FCNs, >= 45 dB on
FCN-4 from recovered labels, and refusals as values or as errors naming the argument.

Paper: Wang, Liang & He, ICLR 2024, Sec. 5.3 (FCN-4 analytic inversion: PSNR 51.2 dB).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch
from torch import nn

import gradleak
from gradleak import labels as soft_labels
from gradleak.client.observation import GradientObservation
from gradleak.data import load_embedded
from gradleak.metrics import psnr, ssim, to_unit_range
from gradleak.reconstruction import (
    ATTACKS,
    LayerFit,
    NotLinearReluChain,
    Reconstruction,
    build_attack,
    linear_relu_chain,
    reconstruct,
)
from gradleak.reconstruction.rank_one import matvec, rank_one_residual, weighted_row_sum
from gradleak.recovery import LabelEstimate

TINY_SHAPE = (3, 4, 4)
TINY_WIDTHS = (48, 32, 16, 8)
C = 5


class TinyFCN(nn.Module):
    """FCN-4's shape at toy widths, optionally with hidden (and classifier) biases, float64."""

    classifier_name = "classifier"

    def __init__(self, *, seed: int, bias: bool = False) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.hidden_layers = nn.ModuleList(
                nn.Linear(a, b, bias=bias) for a, b in pairwise(TINY_WIDTHS)
            )
            self.activation = nn.ReLU()
            self.classifier = nn.Linear(TINY_WIDTHS[-1], C, bias=bias)
        self.double().eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.flatten(x, 1)
        for layer in self.hidden_layers:
            h = self.activation(layer(h))
        return self.classifier(h)


def _tiny_case(seed: int, *, bias: bool = False, family: str = "smoothing"):
    model = TinyFCN(seed=seed, bias=bias)
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(TINY_SHAPE, generator=generator, dtype=torch.float64)
    label = (
        soft_labels.smoothing(1, C, 0.3)
        if family == "smoothing"
        else soft_labels.mixup(0, 3, 0.4, C)
    )
    observation, secret = gradleak.simulate_client_step(model, inputs, label)
    return model, observation, secret


def _oracle_estimate(secret, *, converged: bool = True, features=None) -> LabelEstimate:
    """A LabelEstimate holding the truth: isolates the inversion from label recovery."""
    return LabelEstimate(
        soft_label=secret.soft_label[0],
        features=secret.features[0] if features is None else features,
        scale=1.0,
        residual=0.0,
        converged=converged,
        family="oracle",
        method="oracle",
        reason="" if converged else "test: not converged",
    )


def _relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return float((estimate.double() - truth.double()).norm() / truth.double().norm())


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tiny_fcn_inversion_is_exact(seed: int, bias: bool) -> None:
    model, observation, secret = _tiny_case(seed, bias=bias)
    result = reconstruct(
        observation,
        model,
        "analytic-fc",
        labels=_oracle_estimate(secret),
        input_shape=TINY_SHAPE,
    )
    assert isinstance(result, Reconstruction)
    assert result.converged, result.reason
    assert result.attack == "analytic-fc"
    assert result.inputs.shape == (1, *TINY_SHAPE)
    assert result.inputs.dtype == torch.float64
    assert _relative_error(result.inputs, secret.inputs) < 1e-10
    assert result.iterations == len(TINY_WIDTHS) == len(result.history)
    assert result.objective == result.history[-1] < 1e-10
    fits = result.diagnostics["layer_fits"]
    assert all(isinstance(fit, LayerFit) for fit in fits)
    assert [fit.layer for fit in fits] == [
        "classifier",
        "hidden_layers.2",
        "hidden_layers.1",
        "hidden_layers.0",
    ]
    assert [fit.width for fit in fits] == [C, *TINY_WIDTHS[-1:0:-1]]
    assert all(0 < fit.active_units <= fit.width for fit in fits)
    assert tuple(fit.residual for fit in fits) == result.history
    assert fits[0].forward_mismatch is None
    assert all(fit.forward_mismatch < 1e-10 for fit in fits[1:])
    assert all(fit.excluded < 1e-12 for fit in fits)
    if bias:
        # The back-propagated delta agrees with the observed bias gradient dL/db_k.
        assert all(fit.bias_disagreement < 1e-10 for fit in fits)
    else:
        assert all(fit.bias_disagreement is None for fit in fits)


@pytest.mark.parametrize("family", ["smoothing", "mixup"])
def test_tiny_fcn_inversion_from_recovered_label(family: str) -> None:
    model, observation, secret = _tiny_case(3, family=family)
    estimate = gradleak.recover_label(observation, family=family, scale="known")
    assert estimate.converged, estimate.reason
    result = reconstruct(observation, model, "analytic-fc", labels=estimate, input_shape=TINY_SHAPE)
    assert result.converged, result.reason
    assert _relative_error(result.inputs, secret.inputs) < 1e-8


def test_input_shape_defaults_to_the_models_architecture() -> None:
    model = gradleak.models.build("fcn4", num_classes=3, seed=0, image_size=8)
    inputs = torch.rand(3, 8, 8)
    observation, secret = gradleak.simulate_client_step(model, inputs, soft_labels.one_hot(1, 3))
    result = reconstruct(observation, model, "analytic-fc", labels=_oracle_estimate(secret))
    assert result.converged, result.reason
    assert result.inputs.shape == (1, 3, 8, 8)
    assert _relative_error(result.inputs, secret.inputs) < 1e-5


# --- FCN-4 on real 64 x 64 images with recovered labels (the paper's demo) -----------------


@pytest.fixture(scope="module")
def imagenet64():
    return load_embedded("embedded-imagenet", image_size=64)


@pytest.fixture(scope="module")
def fcn4():
    return gradleak.models.build("fcn4", num_classes=1000, seed=0)


def _fcn4_label(family: str, images, index: int, generator: torch.Generator):
    target = int(images.labels[index])
    if family == "smoothing":
        eps = float(torch.rand((), generator=generator)) * 0.5
        return images.normalise(images.images[index]), soft_labels.smoothing(target, 1000, eps)
    other = next(
        j for j in range(len(images.labels)) if int(images.labels[j]) != target and j != index
    )
    lam = float(torch.rand((), generator=generator))
    mixed = (1 - lam) * images.images[index] + lam * images.images[other]
    label = soft_labels.mixup(target, int(images.labels[other]), lam, 1000)
    return images.normalise(mixed), label


@pytest.mark.parametrize(("family", "index"), [("smoothing", 0), ("mixup", 5)])
def test_fcn4_reaches_45_db_from_recovered_labels(imagenet64, fcn4, family, index) -> None:
    generator = torch.Generator().manual_seed(index)
    inputs, label = _fcn4_label(family, imagenet64, index, generator)
    observation, secret = gradleak.simulate_client_step(fcn4, inputs, label)
    estimate = gradleak.recover_label(observation, family=family, scale="known")
    assert estimate.converged, estimate.reason
    result = reconstruct(observation, fcn4, "analytic-fc", labels=estimate)
    assert result.converged, result.reason
    assert result.objective < 1e-4
    stats = (imagenet64.mean, imagenet64.std)
    recovered = to_unit_range(result.inputs[0], *stats, quantise=True)
    truth = to_unit_range(secret.inputs[0], *stats, quantise=True)
    assert psnr(recovered, truth) >= 45.0
    assert ssim(recovered, truth) > 0.999


# --- kernels ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 5), (70, 9000), (1, 1)])
def test_rank_one_kernels_match_dense_float64(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    delta, inputs = rng.standard_normal(shape[0]), rng.standard_normal(shape[1])
    delta[0] = 0.0  # an inactive unit: its row is outside the fit
    matrix = (np.outer(delta, inputs) + 1e-3 * rng.standard_normal(shape)).astype(np.float32)
    kept = matrix.copy()
    dense = matrix.astype(np.float64)
    assert np.allclose(weighted_row_sum(matrix, delta), delta @ dense, rtol=1e-12, atol=1e-12)
    assert np.allclose(matvec(matrix, inputs), dense @ inputs, rtol=1e-12, atol=1e-12)
    misfit = dense - np.outer(delta, inputs)
    scale = np.linalg.norm(dense)
    residual, excluded = rank_one_residual(matrix, delta, inputs)
    assert residual == pytest.approx(np.linalg.norm(misfit[1:]) / scale, rel=1e-9, abs=1e-15)
    assert excluded == pytest.approx(np.linalg.norm(dense[0]) / scale, rel=1e-9)
    assert np.array_equal(matrix, kept)
    exact = np.outer(delta, inputs)
    assert rank_one_residual(exact, delta, inputs) == (0.0, 0.0)
    assert np.array_equal(exact, np.outer(delta, inputs))  # float64 input is not overwritten
    assert rank_one_residual(np.zeros(shape), delta, inputs) == (0.0, 0.0)


# --- refusals --------------------------------------------------------------------------------


def test_cnn_is_refused_as_a_value() -> None:
    model = gradleak.models.build("lenet", num_classes=C, seed=0)
    inputs = torch.rand(3, 32, 32)
    observation, secret = gradleak.simulate_client_step(model, inputs, soft_labels.one_hot(2, C))
    result = reconstruct(observation, model, "analytic-fc", labels=_oracle_estimate(secret))
    assert not result.converged
    assert "neither Linear nor ReLU" in result.reason
    assert result.inputs.shape == (1, 3, 32, 32)
    assert not result.inputs.any()


@pytest.mark.parametrize("labels", ["soft-label", "tensor", "no-features", "none"])
def test_labels_without_a_feature_raise_naming_labels(labels: str) -> None:
    model, observation, secret = _tiny_case(0)
    given = {
        "soft-label": soft_labels.smoothing(1, C, 0.3),
        "tensor": secret.soft_label[0],
        "no-features": _oracle_estimate(secret, features=None),
        "none": None,
    }[labels]
    if labels == "no-features":
        given = LabelEstimate(**{**given.__dict__, "features": None})
    with pytest.raises(ValueError, match="labels"):
        reconstruct(observation, model, "analytic-fc", labels=given, input_shape=TINY_SHAPE)


def test_layer_without_active_unit_is_refused() -> None:
    model = TinyFCN(seed=0, bias=True)
    with torch.no_grad():
        model.hidden_layers[1].weight.zero_()
        model.hidden_layers[1].bias.fill_(-1.0)  # every unit of layer 1 is dead
        model.hidden_layers[2].bias.fill_(1.0)  # the layers above still see a signal
    inputs = torch.randn(TINY_SHAPE, dtype=torch.float64)
    observation, secret = gradleak.simulate_client_step(
        model, inputs, soft_labels.smoothing(1, C, 0.3)
    )
    result = reconstruct(
        observation, model, "analytic-fc", labels=_oracle_estimate(secret), input_shape=TINY_SHAPE
    )
    assert not result.converged
    assert "layer 'hidden_layers.1' has no active unit" in result.reason
    dead = result.diagnostics["layer_fits"][-1]
    assert (dead.layer, dead.active_units, dead.residual) == ("hidden_layers.1", 0, None)
    assert result.iterations == len(result.history) == 2
    assert not result.inputs.any()


def test_wrong_sign_feature_leaves_no_active_unit() -> None:
    model, observation, secret = _tiny_case(0)
    flipped = _oracle_estimate(secret, features=-secret.features[0])
    result = reconstruct(observation, model, "analytic-fc", labels=flipped, input_shape=TINY_SHAPE)
    assert not result.converged
    assert "'hidden_layers.2' has no active unit" in result.reason


def test_unconverged_label_estimate_is_refused() -> None:
    model, observation, secret = _tiny_case(0)
    result = reconstruct(
        observation,
        model,
        "analytic-fc",
        labels=_oracle_estimate(secret, converged=False),
        input_shape=TINY_SHAPE,
    )
    assert not result.converged
    assert "did not converge: test: not converged" in result.reason


def test_gradient_of_two_inputs_fails_the_rank_one_check() -> None:
    model, first, secret = _tiny_case(0)
    other = torch.randn(TINY_SHAPE, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    second, _ = gradleak.simulate_client_step(model, other, soft_labels.one_hot(4, C))
    mixed = GradientObservation(
        gradients={name: (g + second.gradients[name]) / 2 for name, g in first.gradients.items()},
        parameters=dict(first.parameters),
        classifier=first.classifier,
    )
    result = reconstruct(
        mixed, model, "analytic-fc", labels=_oracle_estimate(secret), input_shape=TINY_SHAPE
    )
    assert not result.converged
    assert "residual" in result.reason
    assert max(result.history) > 1e-3


def test_activation_tol_handles_a_slightly_noisy_gradient() -> None:
    model, observation, secret = _tiny_case(4)
    generator = torch.Generator().manual_seed(0)
    noisy = GradientObservation(
        gradients={
            name: g
            + 1e-7 * g.abs().max() * torch.randn(g.shape, generator=generator, dtype=g.dtype)
            for name, g in observation.gradients.items()
        },
        parameters=dict(observation.parameters),
        classifier=observation.classifier,
    )
    oracle = _oracle_estimate(secret)
    strict = reconstruct(noisy, model, "analytic-fc", labels=oracle, input_shape=TINY_SHAPE)
    # Noise lifts inactive units above 0: their rows join the fit and spoil it, visibly.
    assert not strict.converged
    assert "inconsistent" in strict.reason
    tolerant = reconstruct(
        noisy, model, "analytic-fc", labels=oracle, input_shape=TINY_SHAPE, activation_tol=1e-3
    )
    assert tolerant.converged, tolerant.reason
    assert _relative_error(tolerant.inputs, secret.inputs) < 1e-4
    assert _relative_error(strict.inputs, secret.inputs) > 10 * _relative_error(
        tolerant.inputs, secret.inputs
    )


def test_batch_observation_is_refused() -> None:
    model = TinyFCN(seed=0)
    inputs = torch.randn(2, *TINY_SHAPE, dtype=torch.float64)
    rows = torch.stack([soft_labels.one_hot(0, C).probabilities] * 2)
    observation, secret = gradleak.simulate_client_step(model, inputs, rows)
    estimate = _oracle_estimate(secret)
    # A one-input estimate on a batch gradient is the caller's mistake: an error naming the fix.
    with pytest.raises(ValueError, match="recover_batch"):
        reconstruct(observation, model, "analytic-fc", labels=estimate, input_shape=TINY_SHAPE)


# --- registry, parameters and the chain finder -----------------------------------------------


def test_unknown_attack_lists_known_names() -> None:
    model, observation, secret = _tiny_case(0)
    with pytest.raises(ValueError, match="analytic-fc"):
        reconstruct(observation, model, "no-such-attack", labels=_oracle_estimate(secret))
    assert "analytic-fc" in ATTACKS


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"tol": 0.0}, "tol"),
        ({"activation_tol": 1.0}, "activation_tol"),
        ({"input_shape": (3, 0)}, "input_shape"),
        ({"learning_rate": 0.1}, "unknown parameters"),
    ],
)
def test_bad_parameters_raise(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_attack("analytic-fc", **params)


def test_input_shape_must_fit_the_first_layer() -> None:
    model, observation, secret = _tiny_case(0)
    with pytest.raises(ValueError, match="input_shape"):
        reconstruct(
            observation, model, "analytic-fc", labels=_oracle_estimate(secret), input_shape=(2, 5)
        )


def test_oracle_labels_are_checked_at_the_boundary() -> None:
    model, observation, _ = _tiny_case(0)
    with pytest.raises(ValueError, match="labels"):
        reconstruct(observation, model, "analytic-fc", labels=torch.ones(C + 1) / (C + 1))


class _Skip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.classifier = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.relu(self.first(x)) + x)


def test_chain_finder() -> None:
    assert linear_relu_chain(TinyFCN(seed=0), classifier="classifier") == (
        "hidden_layers.0",
        "hidden_layers.1",
        "hidden_layers.2",
        "classifier",
    )
    sequential = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert linear_relu_chain(sequential, classifier="3") == ("1", "3")
    sigmoid = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2))
    with pytest.raises(NotLinearReluChain, match="neither Linear nor ReLU"):
        linear_relu_chain(sigmoid, classifier="2")
    with pytest.raises(NotLinearReluChain, match="plain chain"):
        linear_relu_chain(_Skip(), classifier="classifier")
    no_relu = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    with pytest.raises(NotLinearReluChain, match="without a ReLU"):
        linear_relu_chain(no_relu, classifier="1")
    with pytest.raises(NotLinearReluChain, match="classifier"):
        linear_relu_chain(sequential, classifier="1")
