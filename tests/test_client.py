"""The simulated client step on real models, and recovery from the gradients it sends."""

from __future__ import annotations

import copy

import pytest
import torch

from gradleak import (
    ClientSecret,
    GradientObservation,
    labels,
    models,
    recover_label,
    simulate_client_step,
)


def _relative(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    estimate, truth = estimate.double(), truth.double()
    return float((estimate - truth).norm() / truth.norm())


@pytest.fixture(scope="module")
def lenet():
    return models.build("lenet", num_classes=10, init="uniform", seed=0)


@pytest.fixture(scope="module")
def image():
    return torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def smoothing_step(lenet, image):
    return simulate_client_step(lenet, image, labels.smoothing(4, 10, 0.2))


# --- what the client computes ---------------------------------------------------------------


def test_secret_records_the_step(smoothing_step, image) -> None:
    observation, secret = smoothing_step
    assert isinstance(observation, GradientObservation)
    assert isinstance(secret, ClientSecret)
    assert secret.inputs.shape == (1, 3, 32, 32)
    assert torch.equal(secret.inputs[0], image)
    assert secret.soft_label.shape == (1, 10)
    # The label is cast to the model's dtype (float32 here), whatever dtype it came in.
    assert secret.soft_label.dtype == torch.float32
    expected = labels.smoothing(4, 10, 0.2, dtype=torch.float64).probabilities
    assert torch.allclose(secret.soft_label[0].double(), expected, rtol=0, atol=1e-7)
    assert secret.features.shape == (1, 768)
    assert secret.family == "smoothing"
    assert dict(secret.family_params) == {"target": 4, "eps": 0.2}


def test_secret_feature_is_the_classifier_input(lenet, image, smoothing_step) -> None:
    _, secret = smoothing_step
    seen: list[torch.Tensor] = []
    hook = lenet.classifier.register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
    try:
        with torch.no_grad():
            lenet(image[None])
    finally:
        hook.remove()
    assert _relative(secret.features, seen[0]) < 1e-5
    # The feature is not trivially zero or constant (lenet ends in a sigmoid).
    assert float(secret.features.std()) > 1e-3


def test_weight_gradient_is_the_outer_product(lenet, image, smoothing_step) -> None:
    observation, secret = smoothing_step
    with torch.no_grad():
        logits = lenet(image[None])[0].double()
    probs = torch.softmax(logits, dim=-1)
    expected = torch.outer(probs - secret.soft_label[0].double(), secret.features[0].double())
    assert _relative(observation.weight_grad, expected) < 1e-5
    assert observation.bias is None and observation.bias_grad is None


def test_observation_layout(lenet, smoothing_step) -> None:
    observation, _ = smoothing_step
    names = {name for name, _ in lenet.named_parameters()}
    assert set(observation.gradients) == names
    assert set(observation.parameters) == names
    assert observation.classifier == "classifier"
    assert observation.num_samples == 1
    assert observation.num_classes == 10
    assert observation.weight_grad.shape == lenet.classifier.weight.shape == (10, 768)
    assert torch.equal(observation.weight, lenet.classifier.weight.detach())
    for name, grad in observation.gradients.items():
        assert grad.shape == observation.parameters[name].shape
        assert not grad.requires_grad
    assert all(p.grad is None for p in lenet.parameters())


def test_observation_is_a_snapshot(image) -> None:
    model = models.build("lenet", num_classes=10, init="uniform", seed=0)
    observation, _ = simulate_client_step(model, image, labels.one_hot(1, 10))
    saved = observation.weight.clone()
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    assert torch.equal(observation.weight, saved)
    with pytest.raises(TypeError):
        observation.gradients["classifier.weight"] = saved  # type: ignore[index]


@pytest.mark.parametrize("training", [True, False])
def test_training_flag_is_restored(image, training: bool) -> None:
    model = models.build("lenet", num_classes=10, init="uniform", seed=0)
    model.train(training)
    simulate_client_step(model, image, labels.one_hot(1, 10))
    assert model.training is training
    assert all(module.training is training for module in model.modules())


def test_batch_and_tensor_label_forms_agree(lenet, image, smoothing_step) -> None:
    observation, _ = smoothing_step
    label = labels.smoothing(4, 10, 0.2).probabilities
    batched, secret = simulate_client_step(lenet, image[None], label[None])
    assert secret.family == "unknown"
    for name, grad in observation.gradients.items():
        assert torch.allclose(batched.gradients[name], grad, rtol=1e-6, atol=1e-9)


# --- the server's view of an SGD update -----------------------------------------------------


def test_from_update_reproduces_one_sgd_step(lenet, smoothing_step) -> None:
    observation, _ = smoothing_step
    lr = 0.1
    before = {name: p.detach().clone() for name, p in lenet.named_parameters()}
    after = {name: before[name] - lr * observation.gradients[name] for name in before}
    update = GradientObservation.from_update(before, after, lr, classifier="classifier")
    assert update.num_samples == 1
    assert update.weight_grad.dtype == torch.float64
    assert _relative(update.weight_grad, observation.weight_grad) < 1e-5
    for name, grad in observation.gradients.items():
        assert update.gradients[name].shape == grad.shape
        assert torch.equal(update.parameters[name], before[name])
        assert torch.allclose(update.gradients[name], grad.double(), rtol=1e-4, atol=1e-5)


def test_from_update_of_a_torch_sgd_step(lenet, image) -> None:
    label = labels.mixup(2, 5, 0.3, 10, 0.1)
    observation, _ = simulate_client_step(lenet, image, label)
    model = copy.deepcopy(lenet)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = -(label.probabilities * torch.log_softmax(model(image[None])[0], dim=-1)).sum()
    loss.backward()
    optimizer.step()
    after = {name: p.detach().clone() for name, p in model.named_parameters()}
    update = GradientObservation.from_update(before, after, 0.1, classifier="classifier")
    assert _relative(update.weight_grad, observation.weight_grad) < 1e-5
    estimate = recover_label(update, "mixup")
    assert estimate.converged, estimate.reason
    assert (estimate.soft_label - label.probabilities.double()).abs().sum() < 1e-3


# --- recovery from real model gradients -----------------------------------------------------


@pytest.mark.parametrize(
    ("family", "label"),
    [
        ("smoothing", labels.smoothing(4, 10, 0.2)),
        ("mixup", labels.mixup(2, 7, 0.3, 10, 0.1)),
    ],
)
@pytest.mark.parametrize("given", ["family", "auto"])
def test_lenet_gradient_recovery(lenet, image, family: str, label, given: str) -> None:
    observation, secret = simulate_client_step(lenet, image, label)
    estimate = recover_label(observation, family if given == "family" else "auto")
    assert estimate.converged, estimate.reason
    assert estimate.family == family
    assert float((estimate.soft_label - secret.soft_label[0].double()).abs().sum()) < 1e-3
    assert _relative(estimate.features, secret.features[0]) < 1e-3
    params = estimate.family_params
    if family == "smoothing":
        assert params["target"] == 4
        assert params["eps"] == pytest.approx(0.2, abs=1e-3)
    else:
        assert (params["a"], params["b"]) == (2, 7)
        assert params["lam"] == pytest.approx(0.3, abs=1e-3)
        assert params["eps"] == pytest.approx(0.1, abs=1e-3)


def test_float64_model_gives_near_exact_recovery(image) -> None:
    model = models.build("lenet", num_classes=10, init="uniform", seed=3).double()
    label = labels.smoothing(7, 10, 0.15)
    observation, secret = simulate_client_step(model, image.double(), label)
    assert observation.weight_grad.dtype == torch.float64
    estimate = recover_label(observation, "smoothing")
    assert estimate.converged, estimate.reason
    assert float((estimate.soft_label - secret.soft_label[0]).abs().sum()) < 1e-8
    assert _relative(estimate.features, secret.features[0]) < 1e-8


def test_bias_classifier_uses_the_closed_form(image) -> None:
    model = models.build("lenet", num_classes=10, init="uniform", seed=0, classifier_bias=True)
    label = labels.mixup(1, 8, 0.4, 10, 0.05)
    observation, secret = simulate_client_step(model, image, label)
    assert observation.bias is not None and observation.bias_grad is not None
    estimate = recover_label(observation)
    assert estimate.method == "fast-search"
    assert estimate.diagnostics["solution"] == "bias-closed-form"
    assert estimate.converged, estimate.reason
    assert estimate.family == "mixup"
    assert float((estimate.soft_label - secret.soft_label[0].double()).abs().sum()) < 1e-3
    assert _relative(estimate.features, secret.features[0]) < 1e-3


@pytest.mark.parametrize("target", [0, 6, 9])
def test_idlg_recovers_a_one_hot_target(lenet, image, target: int) -> None:
    observation, _ = simulate_client_step(lenet, image, labels.one_hot(target, 10))
    estimate = recover_label(observation, method="idlg")
    assert estimate.method == "idlg"
    assert estimate.converged, estimate.reason
    assert estimate.features is None
    assert dict(estimate.family_params) == {"target": target}
    expected = labels.one_hot(target, 10, dtype=torch.float64).probabilities
    assert torch.equal(estimate.soft_label, expected)
    assert recover_label(observation, "hard", method="idlg").family_params["target"] == target


def test_scalar_search_recovers_a_one_hot_target_too(lenet, image) -> None:
    observation, secret = simulate_client_step(lenet, image, labels.one_hot(6, 10))
    estimate = recover_label(observation)
    assert estimate.converged, estimate.reason
    assert estimate.family == "hard"
    assert dict(estimate.family_params) == {"target": 6}
    assert _relative(estimate.features, secret.features[0]) < 1e-3


def test_resnet18_smoothing_recovery(image) -> None:
    model = models.build("resnet18", num_classes=10, seed=0)
    model.train()
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    label = labels.smoothing(3, 10, 0.1)
    observation, secret = simulate_client_step(model, image, label)
    # Eval mode inside the step: BatchNorm statistics untouched, train mode restored.
    assert model.training
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
    assert observation.weight_grad.shape == (10, 512)
    # An untrained ResNet18's softmax is nearly flat: at an unknown gradient scale the scale is
    # then confounded with mixing the label toward uniform (docs/client-updates.md), so only
    # a refusal or the right label may come back; at the known scale it is recovered.
    unknown = recover_label(observation, "smoothing")
    truth = secret.soft_label[0].double()
    assert not unknown.converged or float((unknown.soft_label - truth).abs().sum()) < 1e-3
    estimate = recover_label(observation, "smoothing", scale="known")
    assert estimate.converged, estimate.reason
    assert float((estimate.soft_label - secret.soft_label[0].double()).abs().sum()) < 1e-3
    assert _relative(estimate.features, secret.features[0]) < 1e-3
    assert estimate.family_params["target"] == 3
    assert estimate.family_params["eps"] == pytest.approx(0.1, abs=1e-3)
    assert recover_label(observation, scale="known").family == "smoothing"
