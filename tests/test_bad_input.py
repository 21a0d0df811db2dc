"""Inputs the analytic recovery must refuse, loudly or with converged=False and a reason."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from gradleak import (
    GradientObservation,
    LabelEstimate,
    labels,
    models,
    recover_from_last_layer,
    recover_label,
    simulate_client_step,
)
from gradleak.recovery import NotSingleInputError
from lastlayer_problems import (
    gradient_problem,
    mixup_vector,
    one_hot_vector,
    random_problem,
    smoothing_vector,
)

C, M = 10, 16


@pytest.fixture
def problem():
    return random_problem(smoothing_vector(3, C, 0.2), M, seed=0, bias=True)


@pytest.fixture(scope="module")
def lenet():
    return models.build("lenet", num_classes=10, init="uniform", seed=0)


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _two_input_gradient(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The summed last-layer gradient of a batch of two inputs (rank two). W, G (C, M)."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(C, M)) / np.sqrt(M)
    first = gradient_problem(weight, rng.normal(size=M), smoothing_vector(1, C, 0.1))
    second = gradient_problem(weight, rng.normal(size=M), smoothing_vector(6, C, 0.1))
    return weight, 0.5 * (first.weight_grad + second.weight_grad)


# --- non-finite values and shapes -----------------------------------------------------------


@pytest.mark.parametrize("name", ["weight", "weight_grad", "bias", "bias_grad"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_raise_naming_the_argument(problem, name: str, bad: float) -> None:
    arrays = problem.last_layer_kwargs()
    spoiled = arrays[name].copy()
    spoiled.flat[1] = bad
    arrays[name] = spoiled
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        recover_from_last_layer(**arrays)


@pytest.mark.parametrize("name", ["weight", "weight_grad"])
def test_non_finite_torch_tensors_raise_too(problem, name: str) -> None:
    arrays = {"weight": problem.weight, "weight_grad": problem.weight_grad}
    tensors = {key: torch.from_numpy(value.copy()) for key, value in arrays.items()}
    tensors[name][2, 3] = float("nan")
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        recover_from_last_layer(**tensors)


def test_weight_grad_shape_mismatch_raises(problem) -> None:
    with pytest.raises(ValueError, match="shape"):
        recover_from_last_layer(problem.weight, problem.weight_grad[:, :-1])
    with pytest.raises(ValueError, match="shape"):
        recover_from_last_layer(problem.weight[:-1], problem.weight_grad)


def test_wrong_number_of_dimensions_raises(problem) -> None:
    with pytest.raises(ValueError, match=r"\bweight\b"):
        recover_from_last_layer(problem.weight[0], problem.weight_grad)
    with pytest.raises(ValueError, match=r"\bweight_grad\b"):
        recover_from_last_layer(problem.weight, problem.weight_grad[None])


@pytest.mark.parametrize("name", ["bias", "bias_grad"])
def test_bias_shape_mismatch_raises(problem, name: str) -> None:
    arrays = problem.last_layer_kwargs()
    arrays[name] = arrays[name][:-1]
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        recover_from_last_layer(**arrays)


def test_bias_without_bias_grad_raises(problem) -> None:
    with pytest.raises(ValueError, match="bias"):
        recover_from_last_layer(problem.weight, problem.weight_grad, problem.bias, None)
    with pytest.raises(ValueError, match="bias"):
        recover_from_last_layer(problem.weight, problem.weight_grad, None, problem.bias_grad)


def test_all_zero_weight_grad_raises(problem) -> None:
    with pytest.raises(ValueError, match="zero"):
        recover_from_last_layer(problem.weight, np.zeros_like(problem.weight))


# --- not one input's gradient -----------------------------------------------------------------


def test_batch_of_two_gradient_is_not_rank_one() -> None:
    weight, weight_grad = _two_input_gradient()
    with pytest.raises(NotSingleInputError, match="rank") as info:
        recover_from_last_layer(weight, weight_grad)
    assert isinstance(info.value, ValueError)


def test_rank_tol_none_lets_a_rank_two_gradient_through() -> None:
    weight, weight_grad = _two_input_gradient()
    estimate = recover_from_last_layer(weight, weight_grad, rank_tol=None)
    assert isinstance(estimate, LabelEstimate)
    assert estimate.diagnostics["rank_one_deviation"] > 1e-2


def test_rank_tol_bounds_the_deviation() -> None:
    weight, weight_grad = _two_input_gradient()
    deviation = recover_from_last_layer(weight, weight_grad, rank_tol=None).diagnostics[
        "rank_one_deviation"
    ]
    recover_from_last_layer(weight, weight_grad, rank_tol=1.01 * deviation)
    with pytest.raises(NotSingleInputError):
        recover_from_last_layer(weight, weight_grad, rank_tol=0.99 * deviation)


def test_lenet_batch_of_two_is_refused(lenet, images) -> None:
    soft = torch.stack(
        [labels.smoothing(2, 10, 0.1).probabilities, labels.smoothing(7, 10, 0.1).probabilities]
    )
    observation, _ = simulate_client_step(lenet, images, soft)
    assert observation.num_samples == 2
    with pytest.raises(NotSingleInputError, match="num_samples is 2"):
        recover_label(observation)
    with pytest.raises(NotSingleInputError, match="several inputs"):
        recover_from_last_layer(observation.weight, observation.weight_grad)
    # A client that lies about its batch size is caught by the rank check.
    lying = GradientObservation(
        observation.gradients, observation.parameters, classifier=observation.classifier
    )
    assert lying.num_samples == 1
    with pytest.raises(NotSingleInputError):
        recover_label(lying)
    assert isinstance(recover_label(lying, rank_tol=None), LabelEstimate)


def _local_steps(model, inputs, soft_labels, lr: float, steps: int) -> GradientObservation:
    """``steps`` plain SGD steps cycling over the inputs; the server sees before and after."""
    model = copy.deepcopy(model)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for step in range(steps):
        index = step % len(inputs)
        optimizer.zero_grad()
        logits = model(inputs[index : index + 1])
        loss = -(soft_labels[index] * torch.log_softmax(logits, dim=-1)).sum()
        loss.backward()
        optimizer.step()
    after = {name: p.detach().clone() for name, p in model.named_parameters()}
    return GradientObservation.from_update(before, after, lr, classifier="classifier")


def test_several_local_steps_on_two_inputs_are_refused(lenet, images) -> None:
    soft = [labels.smoothing(2, 10, 0.1).probabilities, labels.mixup(4, 8, 0.3, 10).probabilities]
    observation = _local_steps(lenet, images, soft, lr=0.1, steps=3)
    assert observation.num_samples == 1
    with pytest.raises(NotSingleInputError):
        recover_label(observation)
    with pytest.raises(NotSingleInputError):
        recover_from_last_layer(observation.weight, observation.weight_grad)
    estimate = recover_label(observation, rank_tol=None)
    assert estimate.diagnostics["rank_one_deviation"] > 1e-3


def test_one_local_step_is_accepted(lenet, images) -> None:
    soft = [labels.smoothing(2, 10, 0.1).probabilities]
    observation = _local_steps(lenet, images[:1], soft, lr=0.1, steps=1)
    estimate = recover_label(observation, "smoothing")
    assert estimate.converged, estimate.reason
    assert estimate.family_params["target"] == 2


# --- labels no family explains ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_label_outside_every_family_is_not_converged_without_bias(seed: int) -> None:
    label = np.random.default_rng(seed).dirichlet(np.ones(C))
    problem = random_problem(label, M, seed=seed)
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="auto")
    assert not estimate.converged
    assert "family" in estimate.reason
    assert estimate.reason
    assert set(estimate.diagnostics["rejected_families"]) == {"hard", "smoothing", "mixup"}
    for family in ("hard", "smoothing", "mixup"):
        single = recover_from_last_layer(problem.weight, problem.weight_grad, family=family)
        assert not single.converged
        assert single.reason


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixup_label_does_not_fit_the_smoothing_family(seed: int) -> None:
    problem = random_problem(mixup_vector(1, 5, 0.3, C, 0.1), M, seed=seed)
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="smoothing")
    assert not estimate.converged
    assert estimate.reason
    assert estimate.residual > 1e-4


@pytest.mark.parametrize("seed", [0, 1])
def test_smoothed_label_does_not_fit_the_hard_family(seed: int) -> None:
    problem = random_problem(smoothing_vector(1, C, 0.2), M, seed=seed)
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="hard")
    assert not estimate.converged
    assert estimate.reason


def test_inconsistent_bias_gradient_is_not_converged(problem) -> None:
    other = random_problem(mixup_vector(0, 4, 0.4, C), M, seed=0, bias=True)
    estimate = recover_from_last_layer(
        problem.weight, problem.weight_grad, problem.bias, other.bias_grad
    )
    assert not estimate.converged
    assert "disagree" in estimate.reason


# --- family, search and method arguments ------------------------------------------------------


def _rank_one(num_classes: int):
    return random_problem(one_hot_vector(0, num_classes), M, seed=1)


@pytest.mark.parametrize(
    ("family", "num_classes"),
    [
        ("smoothing", 2),
        ("smoothing", 3),
        ("mixup", 2),
        ("mixup", 3),
        ("mixup", 4),
        ("hard", 2),
        ("auto", 2),
        ("auto", 4),
    ],
)
def test_family_below_its_identifiable_class_count_is_refused(
    family: str, num_classes: int
) -> None:
    """Issue 10 item 8: as many equations as unknowns (or fewer) is a refusal, not a guess."""
    small = _rank_one(num_classes)
    estimate = recover_from_last_layer(small.weight, small.weight_grad, family=family)
    assert not estimate.converged
    assert estimate.reason.startswith("not identifiable")
    assert f"C={num_classes}" in estimate.reason
    assert torch.isnan(estimate.soft_label).all() and estimate.features is None


def test_two_classes_are_fine_with_a_bias() -> None:
    small = random_problem(one_hot_vector(1, 2), M, seed=2, bias=True)
    unknown = recover_from_last_layer(*small.last_layer(), family="hard")
    assert not unknown.converged and "C >= 3" in unknown.reason  # k is one more unknown
    estimate = recover_from_last_layer(*small.last_layer(), family="hard", scale="known")
    assert estimate.converged, estimate.reason
    assert np.abs(estimate.soft_label.numpy() - small.label).sum() < 1e-9


@pytest.mark.parametrize("scale", ["known", "unknown"])
def test_smallest_identifiable_class_counts_are_accepted(scale: str) -> None:
    extra = scale == "unknown"  # the gradient scale k is one more unknown: one more class
    for family, num_classes in (("hard", 3), ("smoothing", 4), ("mixup", 5)):
        small = _rank_one(num_classes + extra)
        estimate = recover_from_last_layer(
            small.weight, small.weight_grad, family=family, scale=scale
        )
        assert estimate.family == family
        assert estimate.converged, estimate.reason
        assert np.abs(estimate.soft_label.numpy() - small.label).sum() < 1e-8


def test_unknown_family_and_search_raise(problem) -> None:
    with pytest.raises(ValueError, match="family"):
        recover_from_last_layer(problem.weight, problem.weight_grad, family="cutmix")
    with pytest.raises(ValueError, match="method"):
        recover_from_last_layer(problem.weight, problem.weight_grad, method="grid")
    with pytest.raises(ValueError, match="tol"):
        recover_from_last_layer(problem.weight, problem.weight_grad, tol=0.0)


def test_recover_label_argument_errors(lenet, images) -> None:
    observation, _ = simulate_client_step(lenet, images[0], labels.one_hot(3, 10))
    with pytest.raises(ValueError, match="family"):
        recover_label(observation, "cutmix")
    with pytest.raises(ValueError, match="method"):
        recover_label(observation, method="dlg-magic")
    with pytest.raises(ValueError, match="family"):
        recover_label(observation, "smoothing", method="idlg")
    with pytest.raises(ValueError, match="method"):
        recover_label(observation, method="grid")


def test_declared_batch_with_a_rank_one_gradient_is_not_converged(lenet, images) -> None:
    observation, _ = simulate_client_step(lenet, images[0], labels.one_hot(3, 10))
    claimed = GradientObservation(
        observation.gradients, observation.parameters, classifier="classifier", num_samples=4
    )
    estimate = recover_label(claimed)
    assert not estimate.converged
    assert "mean label" in estimate.reason and "num_samples is 4" in estimate.reason
    assert estimate.diagnostics["declared_num_samples"] == 4


def test_identical_inputs_in_a_batch_give_their_mean_label(lenet, images) -> None:
    """Issue 10 item 10: two copies of one image make a rank-one gradient; the label it holds
    is the batch mean, which is said, never claimed as either sample's label."""
    first, second = labels.smoothing(2, 10, 0.1), labels.smoothing(2, 10, 0.3)
    soft = torch.stack([first.probabilities, second.probabilities])
    observation, _ = simulate_client_step(lenet, images[:1].expand(2, -1, -1, -1), soft)
    assert observation.num_samples == 2
    estimate = recover_label(observation, "smoothing")
    assert not estimate.converged and "mean label" in estimate.reason
    mean = soft.mean(dim=0)
    assert float((estimate.soft_label - mean).abs().sum()) < 1e-4  # eps 0.2: the batch mean
    assert float((estimate.soft_label - soft[0]).abs().sum()) > 0.1


# --- observations and client steps ------------------------------------------------------------


def test_observation_constructor_checks(lenet, images) -> None:
    observation, _ = simulate_client_step(lenet, images[0], labels.one_hot(3, 10))
    with pytest.raises(ValueError, match="classifier"):
        GradientObservation(observation.gradients, observation.parameters, classifier="head")
    with pytest.raises(ValueError, match="num_samples"):
        GradientObservation(
            observation.gradients, observation.parameters, classifier="classifier", num_samples=0
        )
    wrong = dict(observation.gradients)
    wrong["classifier.weight"] = wrong["classifier.weight"][:, :-1]
    with pytest.raises(ValueError, match="shape"):
        GradientObservation(wrong, observation.parameters, classifier="classifier")


def test_from_update_checks(lenet) -> None:
    before = {name: p.detach().clone() for name, p in lenet.named_parameters()}
    with pytest.raises(ValueError, match="lr"):
        GradientObservation.from_update(before, before, 0.0, classifier="classifier")
    fewer = dict(before)
    fewer.pop("classifier.weight")
    with pytest.raises(ValueError, match=r"classifier\.weight"):
        GradientObservation.from_update(before, fewer, 0.1, classifier="classifier")


def test_simulate_client_step_checks_labels(lenet, images) -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        simulate_client_step(lenet, images[0], torch.full((10,), 0.2))
    negative = torch.full((10,), 0.125)
    negative[0] = -0.125
    with pytest.raises(ValueError, match="non-negative"):
        simulate_client_step(lenet, images[0], negative)
    with pytest.raises(ValueError, match="rows"):
        simulate_client_step(lenet, images, labels.one_hot(3, 10))
    with pytest.raises(ValueError, match="shape"):
        simulate_client_step(lenet, images[0], labels.one_hot(3, 7))
    with pytest.raises(ValueError, match="classifier"):
        simulate_client_step(lenet, images[0], labels.one_hot(3, 10), classifier="features")
