"""Identifiability (equations against unknowns) and the refusals that follow from it.

Issue 10 items 8, 9 and 13: no confident wrong answer at the smallest class counts, for a
gradient no softmax client can produce, or for low-precision gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradleak import recover_from_last_layer
from gradleak.cli.run import CASE_TYPES
from gradleak.experiments.config import load_config
from gradleak.experiments.seeds import trial_seed
from gradleak.experiments.suites.base import TrialTask
from gradleak.experiments.suites.identifiability import (
    IdentifiabilityTrials,
    draw_problem,
    run_trial,
)
from gradleak.recovery.identifiability import identifiability
from gradleak.recovery.last_layer import NotSingleInputError
from lastlayer_problems import random_problem, smoothing_vector

# (family, scale, bias) -> smallest identifiable C: C - 1 equations > unknowns.
TABLE = {
    ("hard", "known", False): 3,
    ("smoothing", "known", False): 4,
    ("mixup", "known", False): 5,
    ("auto", "known", False): 5,
    ("hard", "unknown", False): 4,
    ("smoothing", "unknown", False): 5,
    ("mixup", "unknown", False): 6,
    ("hard", "known", True): 2,
    ("mixup", "known", True): 2,
    ("hard", "unknown", True): 3,
    ("smoothing", "unknown", True): 4,
    ("mixup", "unknown", True): 5,
}


@pytest.mark.parametrize(("setting", "bound"), TABLE.items())
def test_the_count_gives_the_smallest_identifiable_class_count(setting, bound) -> None:
    family, scale, bias = setting
    below = identifiability(bound - 1, family, scale=scale, bias=bias) if bound > 2 else None
    at = identifiability(bound, family, scale=scale, bias=bias)
    assert at.identifiable and at.reason == "" and at.min_classes == bound
    assert at.equations == bound - 1 and len(at.unknowns) < at.equations
    if below is not None:
        assert not below.identifiable
        assert below.reason.startswith("not identifiable") and f"C >= {bound}" in below.reason


def test_the_count_rejects_unknown_settings() -> None:
    with pytest.raises(ValueError, match="family"):
        identifiability(10, "cutmix")
    with pytest.raises(ValueError, match="scale"):
        identifiability(10, "hard", scale="guessed")
    with pytest.raises(ValueError, match="num_classes"):
        identifiability(1, "hard")


@pytest.mark.parametrize(
    ("num_classes", "family", "attack_family"),
    [
        (3, "smoothing", "smoothing"),
        (3, "mixup", "auto"),
        (4, "mixup", "mixup"),
        (4, "smoothing", "auto"),
    ],
)
def test_settings_below_the_bound_never_answer(num_classes, family, attack_family) -> None:
    """The issue's cases: C = 3 smoothing (3 of 400 false accepts), C = 4 mixup (7 of 400),
    auto at C = 3 on mixup labels (99 of 200 claimed as smoothing). All must refuse now."""
    case = IdentifiabilityTrials(num_classes, family, attack_family, samples=40)
    for trial in range(case.samples):
        task = TrialTask("identifiability", case, trial, trial_seed(0, "t", case.name, trial), 0)
        record = run_trial(task)[0]
        assert not record["converged"] and record["reason"] == "not identifiable"


@pytest.mark.parametrize(
    ("num_classes", "family", "attack_family"),
    [
        (5, "smoothing", "smoothing"),
        (6, "mixup", "mixup"),
        (6, "mixup", "auto"),
        (4, "hard", "auto"),
    ],
)
def test_settings_at_the_bound_have_no_false_accept(num_classes, family, attack_family) -> None:
    """Just above the bound (float32 clients, flat to saturated softmax): answers are right or
    refused. The full measurement (2,000 cases per setting) is docs/reliability.md's table."""
    case = IdentifiabilityTrials(num_classes, family, attack_family, samples=60)
    accepted = 0
    for trial in range(case.samples):
        task = TrialTask("identifiability", case, trial, trial_seed(0, "t", case.name, trial), 0)
        record = run_trial(task)[0]
        assert record["correct"] or not record["converged"], record
        accepted += record["converged"]
    if identifiability(num_classes, attack_family).identifiable:
        assert accepted >= case.samples // 2


def test_a_gradient_whose_rows_do_not_sum_to_zero_is_refused() -> None:
    """Issue 10 item 9: every row equal to the first is rank one, but its rows sum to C g_0,
    not 0, which no softmax cross-entropy gradient does (Theorem 1)."""
    problem = random_problem(smoothing_vector(2, 10, 0.2), 32, seed=3)
    weight = torch.from_numpy(problem.weight).float()
    weight_grad = torch.from_numpy(problem.weight_grad[:1]).float().expand(10, -1).contiguous()
    for family in ("hard", "smoothing", "mixup", "auto"):
        estimate = recover_from_last_layer(weight, weight_grad, family=family)
        assert not estimate.converged, (family, float(estimate.soft_label.sum()))
    estimate = recover_from_last_layer(weight, weight_grad, family="smoothing", scale="known")
    assert "sum to zero" in estimate.reason, estimate.reason


def test_a_bias_gradient_that_does_not_sum_to_zero_is_refused() -> None:
    problem = random_problem(smoothing_vector(2, 10, 0.2), 32, seed=4, bias=True)
    shifted = problem.bias_grad + 0.01  # sum(dL/db) = 0.1: no softmax client
    # Keep dL/dW consistent with the shifted bias gradient: (p - y + 0.01) x^T.
    weight_grad = np.outer(shifted, problem.features)
    estimate = recover_from_last_layer(problem.weight, weight_grad, problem.bias, shifted)
    assert not estimate.converged and "sum to zero" in estimate.reason


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_gradients_are_judged_at_their_own_precision(dtype) -> None:
    """Issue 10 item 13: a bfloat16/float16 gradient of ONE input is not "a batch"."""
    problem = random_problem(smoothing_vector(2, 10, 0.2), 32, seed=5)
    weight = torch.from_numpy(problem.weight).to(dtype)
    weight_grad = torch.from_numpy(problem.weight_grad).to(dtype)
    estimate = recover_from_last_layer(weight, weight_grad, family="smoothing")
    assert estimate.diagnostics["precision"] >= torch.finfo(dtype).eps
    if not estimate.converged:
        assert "precision" in estimate.reason or estimate.reason.startswith("ambiguous")
    else:
        assert float((estimate.soft_label - torch.from_numpy(problem.label)).abs().sum()) < 0.1
    loose = recover_from_last_layer(weight, weight_grad, family="smoothing", tol=0.5)
    assert loose.converged or loose.reason.startswith(("ambiguous", "not identifiable")), (
        loose.reason
    )


def test_a_real_batch_in_low_precision_names_every_cause() -> None:
    first = random_problem(smoothing_vector(2, 10, 0.2), 32, seed=6)
    second = random_problem(smoothing_vector(7, 10, 0.2), 32, seed=7)
    weight_grad = torch.from_numpy(first.weight_grad + second.weight_grad).to(torch.bfloat16)
    weight = torch.from_numpy(first.weight).to(torch.bfloat16)
    with pytest.raises(NotSingleInputError) as info:
        recover_from_last_layer(weight, weight_grad)
    for cause in ("several inputs", "several local steps", "noise", "precision"):
        assert cause in str(info.value)


@pytest.mark.parametrize("rank_tol", [-1.0, 0.0, 1.0, float("nan"), "high", True])
def test_rank_tol_out_of_range_is_refused(rank_tol) -> None:
    problem = random_problem(smoothing_vector(2, 10, 0.2), 16, seed=8)
    with pytest.raises(ValueError, match="rank_tol"):
        recover_from_last_layer(problem.weight, problem.weight_grad, rank_tol=rank_tol)


def test_zero_features_and_an_empty_update_say_what_they_are() -> None:
    with pytest.raises(ValueError, match="m = 0"):
        recover_from_last_layer(np.zeros((10, 0)), np.zeros((10, 0)))
    with pytest.raises(ValueError, match="no sample contributed"):
        recover_from_last_layer(np.ones((10, 4)), np.zeros((10, 4)))


def test_meta_tensors_are_refused_naming_the_argument() -> None:
    weight = torch.empty(10, 4, device="meta")
    with pytest.raises(ValueError, match=r"weight.*meta"):
        recover_from_last_layer(weight, torch.ones(10, 4))


def test_a_flat_softmax_at_an_unknown_scale_is_refused() -> None:
    """The one false accept of the first unknown-scale sweep (C = 6, hard label, family="auto"):
    the client's softmax was one-hot at its own label in float32, so p - y, and the gradient,
    are rounding; every reachable logit u / t is ~1e-13, p(t) = U for every t, and the whole
    path (1 - lam) U + lam y fits. It came back as the uniform label, "converged"."""
    config = load_config("identifiability", case_types=CASE_TYPES)
    case = next(c for c in config.cases if c.name == "C=6 hard as auto unknown scale float32")
    weight, weight_grad, _, _, truth = draw_problem(case, np.random.default_rng(2082517525))
    for family in ("auto", "smoothing", "mixup"):
        estimate = recover_from_last_layer(weight, weight_grad, family=family, scale="unknown")
        assert not estimate.converged, (family, estimate.soft_label, truth)
        assert "flat" in estimate.reason or "no scalar fits" in estimate.reason
