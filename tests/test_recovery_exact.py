"""Exact math of the analytic recovery on tiny float64 problems built by hand (no model).

Paper: Wang, Liang & He, ICLR 2024, Sec. 4: dL/dW = (p - y) x^T, x = mu g_r, and the implied
label y(mu) = softmax(mu W g_r + b) - c / mu sums to 1 for every mu (Theorem 1).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradleak import LabelEstimate, recover_from_last_layer
from gradleak.families import FAMILIES
from gradleak.recovery.last_layer import prepare
from gradleak.recovery.residual import (
    constrained_mask,
    implied_labels,
    project,
    relative_residual,
)
from lastlayer_problems import (
    Problem,
    gradient_problem,
    l1,
    mixup_vector,
    near_label_problem,
    one_hot_vector,
    random_problem,
    relative_error,
    smoothing_vector,
    softmax,
)

C, M = 10, 16

LABELS = {
    "hard": one_hot_vector(3, C),
    "smoothing": smoothing_vector(3, C, 0.2),
    "mixup": mixup_vector(2, 7, 0.3, C, 0.1),
}


def _problem(family: str, seed: int = 0, **kwargs) -> Problem:
    return random_problem(LABELS[family], M, seed=seed, **kwargs)


def _inv_scales() -> np.ndarray:
    magnitudes = np.concatenate([np.logspace(-9, 0, 37), np.linspace(0.05, 0.95, 19)])
    return np.concatenate([-magnitudes, magnitudes])


def _residual_at(problem: Problem, inv_scale: float, family: str) -> float:
    reduced = prepare(problem.weight, problem.weight_grad, rank_tol=1e-6)
    labels, _ = implied_labels(np.array([inv_scale]), reduced.logit_direction, reduced.coupling)
    spec = FAMILIES[family]
    deviation = project(labels, constrained_mask(labels, spec), spec)
    norm = float(np.linalg.norm(reduced.coupling))
    return float(relative_residual(deviation, np.array([inv_scale]), norm)[0])


def _assert_recovered(estimate: LabelEstimate, problem: Problem, tol: float = 1e-6) -> None:
    assert estimate.converged, estimate.reason
    assert estimate.reason == ""
    assert l1(estimate.soft_label, problem.label) < tol
    assert estimate.features is not None
    assert relative_error(estimate.features, problem.features) < tol


def _same_mixup(params, a: int, b: int, lam: float, eps: float, tol: float = 1e-6) -> bool:
    """Mixup params match, reading (a, b, lam) and (b, a, 1 - lam) as the same label."""
    if abs(params["eps"] - eps) > tol:
        return False
    if (params["a"], params["b"]) == (a, b):
        return abs(params["lam"] - lam) < tol
    return (params["a"], params["b"]) == (b, a) and abs(params["lam"] - (1 - lam)) < tol


# --- the reduced problem -------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(LABELS))
def test_prepare_reduces_to_row_direction_and_coupling(family: str) -> None:
    problem = _problem(family)
    reduced = prepare(problem.weight, problem.weight_grad, rank_tol=1e-6)
    t = problem.inv_scale
    assert reduced.row == problem.row
    np.testing.assert_allclose(reduced.row_grad, t * problem.features, rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        reduced.logit_direction, problem.weight @ reduced.row_grad, rtol=1e-12, atol=1e-15
    )
    coupling = (problem.probs - problem.label) / t
    np.testing.assert_allclose(reduced.coupling, coupling, rtol=1e-10, atol=1e-12)
    assert reduced.coupling[reduced.row] == pytest.approx(1.0, abs=1e-12)
    assert reduced.rank_one_deviation < 1e-7
    assert reduced.num_classes == C


# --- Theorem 1 -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(LABELS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_theorem1_implied_labels_sum_to_one_for_every_scale(family: str, seed: int) -> None:
    problem = _problem(family, seed=seed, logit_scale=3.0)
    reduced = prepare(problem.weight, problem.weight_grad)
    t = _inv_scales()
    labels, probs = implied_labels(t, reduced.logit_direction, reduced.coupling)
    assert labels.shape == probs.shape == (t.size, C)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # The labels really do vary with t: "sums to one" alone cannot pin the scale.
    assert np.ptp(labels, axis=0).max() > 0.1


def test_theorem1_for_a_label_outside_every_family() -> None:
    label = np.random.default_rng(7).dirichlet(np.ones(C))
    problem = random_problem(label, M, seed=7)
    reduced = prepare(problem.weight, problem.weight_grad)
    labels, _ = implied_labels(_inv_scales(), reduced.logit_direction, reduced.coupling)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_theorem1_with_bias(seed: int) -> None:
    problem = _problem("smoothing", seed=seed, bias=True)
    reduced = prepare(problem.weight, problem.weight_grad)
    for mu in 1.0 / _inv_scales():
        implied = softmax(mu * reduced.logit_direction + problem.bias) - reduced.coupling / mu
        assert abs(implied.sum() - 1.0) < 1e-12


# --- the true scale ------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(LABELS))
@pytest.mark.parametrize("sign", ["mixed", "positive", "negative"])
def test_true_scale_gives_true_label_and_feature(family: str, sign: str) -> None:
    problem = _problem(family, seed=3, sign=sign)
    reduced = prepare(problem.weight, problem.weight_grad)
    t = problem.inv_scale
    labels, _ = implied_labels(np.array([t]), reduced.logit_direction, reduced.coupling)
    np.testing.assert_allclose(labels[0], problem.label, rtol=0, atol=1e-10)
    np.testing.assert_allclose(reduced.features(1.0 / t), problem.features, rtol=0, atol=1e-10)
    np.testing.assert_allclose(reduced.row_grad / t, problem.features, rtol=0, atol=1e-10)


@pytest.mark.parametrize("family", sorted(LABELS))
def test_residual_vanishes_at_true_scale_for_the_right_family(family: str) -> None:
    problem = _problem(family, seed=4)
    assert _residual_at(problem, problem.inv_scale, family) < 1e-10
    # ...and not at a wrong scale.
    assert _residual_at(problem, 0.5 * problem.inv_scale, family) > 1e-3


def test_residual_at_true_scale_is_large_for_a_wrong_family() -> None:
    mixup = _problem("mixup", seed=5)
    assert _residual_at(mixup, mixup.inv_scale, "smoothing") > 1e-3
    assert _residual_at(mixup, mixup.inv_scale, "hard") > 1e-3
    smoothed = _problem("smoothing", seed=5)
    assert _residual_at(smoothed, smoothed.inv_scale, "hard") > 1e-3
    # A smoothed label is a mixup label too (lam = 0 and a free second entry): still exact.
    assert _residual_at(smoothed, smoothed.inv_scale, "mixup") < 1e-10


def test_constrained_mask_frees_the_largest_entries() -> None:
    labels = np.array([[0.1, 0.6, 0.05, 0.25], [0.4, 0.1, 0.3, 0.2]])
    for name in ("hard", "smoothing"):
        mask = constrained_mask(labels, FAMILIES[name])
        np.testing.assert_array_equal(mask, [[1, 0, 1, 1], [0, 1, 1, 1]])
    mixup = constrained_mask(labels, FAMILIES["mixup"])
    np.testing.assert_array_equal(mixup, [[1, 0, 1, 0], [0, 1, 0, 1]])


def test_project_measures_the_family_constraint() -> None:
    labels = np.array([[0.1, 0.6, 0.1, 0.2]])
    smoothing = FAMILIES["smoothing"]
    deviation = project(labels, constrained_mask(labels, smoothing), smoothing)
    np.testing.assert_allclose(deviation, [[-1 / 30, 0, -1 / 30, 2 / 30]], atol=1e-15)
    hard = FAMILIES["hard"]
    np.testing.assert_allclose(
        project(labels, constrained_mask(labels, hard), hard), [[0.1, 0, 0.1, 0.2]], atol=1e-15
    )
    exact = np.array([[0.1, 0.7, 0.1, 0.1]])
    assert np.abs(project(exact, constrained_mask(exact, smoothing), smoothing)).max() < 1e-15


# --- the bias closed form ------------------------------------------------------------------


@pytest.mark.parametrize("sign", ["mixed", "negative", "positive"])
@pytest.mark.parametrize("family", sorted(LABELS))
def test_bias_closed_form_is_exact(family: str, sign: str) -> None:
    problem = _problem(family, seed=6, bias=True, sign=sign)
    if sign != "positive":
        assert (problem.features < 0).any()
    estimate = recover_from_last_layer(*problem.last_layer(), family=family)
    assert estimate.method == "fast-search"
    assert estimate.diagnostics["solution"] == "bias-closed-form"
    assert estimate.converged, estimate.reason
    assert estimate.family == family
    assert l1(estimate.soft_label, problem.label) < 1e-9
    np.testing.assert_allclose(estimate.features.numpy(), problem.features, rtol=0, atol=1e-9)
    assert estimate.scale == pytest.approx(1.0 / problem.inv_scale, rel=1e-12)
    assert estimate.row == problem.row


def test_bias_closed_form_recovers_a_label_outside_every_family() -> None:
    """A free label (e.g. distillation targets) is read off the bias gradient when the scale is
    known; at an unknown scale it is one more unknown with nothing to pin it: refused."""
    label = np.random.default_rng(8).dirichlet(np.ones(C))
    problem = random_problem(label, M, seed=8, bias=True, sign="negative")
    unknown = recover_from_last_layer(*problem.last_layer())
    assert not unknown.converged and (
        "no mixup label" in unknown.reason or "[0, 1]" in unknown.reason
    )
    estimate = recover_from_last_layer(*problem.last_layer(), scale="known")
    assert estimate.converged, estimate.reason
    assert estimate.family == "unknown"
    assert l1(estimate.soft_label, label) < 1e-9
    assert relative_error(estimate.features, problem.features) < 1e-9


@pytest.mark.parametrize("family", sorted(LABELS))
def test_bias_closed_form_auto_names_the_family(family: str) -> None:
    problem = _problem(family, seed=9, bias=True)
    estimate = recover_from_last_layer(*problem.last_layer(), family="auto")
    assert estimate.converged
    assert estimate.family == family


# --- the bias-free scalar search ------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hard_family_recovers_label_and_feature(seed: int) -> None:
    problem = _problem("hard", seed=seed)
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="hard")
    _assert_recovered(estimate, problem)
    assert estimate.family == "hard"
    assert dict(estimate.family_params) == {"target": 3}
    assert estimate.method == "fast-search"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sign", ["mixed", "negative"])
def test_smoothing_family_recovers_label_and_feature(seed: int, sign: str) -> None:
    problem = _problem("smoothing", seed=seed, sign=sign)
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="smoothing")
    _assert_recovered(estimate, problem)
    assert estimate.family == "smoothing"
    assert estimate.family_params["target"] == 3
    assert estimate.family_params["eps"] == pytest.approx(0.2, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixup_family_recovers_label_and_feature(seed: int) -> None:
    problem = _problem("mixup", seed=seed)
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="mixup")
    _assert_recovered(estimate, problem)
    assert estimate.family == "mixup"
    params = estimate.family_params
    assert (params["a"], params["b"]) == (2, 7)
    assert params["lam"] == pytest.approx(0.3, abs=1e-6)
    assert params["eps"] == pytest.approx(0.1, abs=1e-6)


def test_mixup_params_with_lam_above_half_describe_the_same_label() -> None:
    label = mixup_vector(1, 4, 0.8, C, 0.05)
    problem = random_problem(label, M, seed=11)
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="mixup")
    _assert_recovered(estimate, problem)
    assert _same_mixup(estimate.family_params, 1, 4, 0.8, 0.05)


def test_estimate_fields_are_consistent() -> None:
    problem = _problem("smoothing", seed=12)
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="smoothing")
    assert isinstance(estimate, LabelEstimate)
    assert estimate.soft_label.dtype == torch.float64
    assert estimate.soft_label.shape == (C,)
    assert estimate.features.dtype == torch.float64
    assert estimate.features.shape == (M,)
    assert estimate.num_classes == C
    assert estimate.row == problem.row
    assert estimate.scale == pytest.approx(1.0 / problem.inv_scale, rel=1e-6)
    assert 0.0 <= estimate.residual < 1e-4
    np.testing.assert_allclose(
        estimate.features.numpy(), estimate.scale * problem.weight_grad[estimate.row], rtol=1e-12
    )


def test_numpy_and_torch_inputs_give_the_same_estimate() -> None:
    problem = _problem("mixup", seed=13)
    from_numpy = recover_from_last_layer(problem.weight, problem.weight_grad, family="mixup")
    from_torch = recover_from_last_layer(
        torch.from_numpy(problem.weight), torch.from_numpy(problem.weight_grad), family="mixup"
    )
    assert from_numpy.converged and from_torch.converged
    assert torch.equal(from_numpy.soft_label, from_torch.soft_label)
    assert torch.equal(from_numpy.features, from_torch.features)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("truth", "label"),
    [
        ("hard", one_hot_vector(5, C)),
        ("smoothing", smoothing_vector(5, C, 0.15)),
        ("mixup", mixup_vector(5, 8, 0.35, C, 0.1)),
        ("mixup", mixup_vector(5, 8, 0.35, C, 0.0)),
    ],
)
def test_auto_picks_the_family_of_the_label(truth: str, label: np.ndarray, seed: int) -> None:
    problem = random_problem(label, M, seed=seed)
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="auto")
    _assert_recovered(estimate, problem)
    assert estimate.family == truth
    # auto searches the widest family (mixup) and names the simplest one the label is in.
    assert "rejected_families" in estimate.diagnostics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paper_search_recovers_a_smoothing_label(seed: int) -> None:
    problem = _problem("smoothing", seed=seed)
    estimate = recover_from_last_layer(
        problem.weight, problem.weight_grad, family="smoothing", method="paper-search"
    )
    assert estimate.converged, estimate.reason
    assert estimate.method == "paper-search"
    # The paper's stopping rule (1000 * variance < 1e-9) leaves ~1e-5 of label error.
    assert l1(estimate.soft_label, problem.label) < 1e-4
    assert relative_error(estimate.features, problem.features) < 1e-4
    assert estimate.family_params["target"] == 3


# --- hard corners: saturated softmax and p close to y ----------------------------------------


def _saturated(label_of_order, seed: int) -> Problem:
    """Logits with gaps of ~20 so the softmax is one-hot to ~1e-8; the label misses its peak."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=M)
    order = rng.permutation(C)
    logits = np.empty(C)
    logits[order] = 20.0 * np.arange(C)[::-1]  # order[0] is the peak
    orthogonal = rng.normal(size=(C, M))
    orthogonal -= np.outer(orthogonal @ features, features) / (features @ features)
    weight = np.outer(logits, features) / (features @ features) + orthogonal
    return gradient_problem(weight, features, label_of_order(order))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("family", "label_of_order", "identified"),
    [
        ("hard", lambda order: one_hot_vector(int(order[-1]), C), True),  # t -> -1
        ("hard", lambda order: one_hot_vector(int(order[1]), C), True),
        ("mixup", lambda order: mixup_vector(int(order[3]), int(order[5]), 0.3, C), True),
    ],
)
def test_saturated_softmax_is_recovered_or_refused(
    family: str, label_of_order, identified: bool, seed: int
) -> None:
    """Logit gaps of 20: p is one-hot to ~2e-9 and every class below the runner-up has
    p < 1e-17, too small to move the relative residual past its threshold (~1e-10 here), so
    only the peak and the runner-up still pin the scale.

    A hard label at the lowest class keeps both equations and is recovered; a mixup of two low
    classes too. A hard label AT the runner-up leaves the peak's equation alone: one equation
    for the scalar, so the verdict takes a census of every root (`root_census`) and accepts
    because there is only one. Under auto (the mixup family) every (1 - s) e_peak + s y fits to
    ~1e-17: the answer is right or refused, never wrong.
    """
    problem = _saturated(label_of_order, seed)
    assert 1.0 - abs(problem.inv_scale) < 1e-6
    unknown = recover_from_last_layer(problem.weight, problem.weight_grad, family=family)
    assert not unknown.converged or l1(unknown.soft_label, problem.label) < 1e-6
    estimate = recover_from_last_layer(
        problem.weight, problem.weight_grad, family=family, scale="known"
    )
    if identified:
        _assert_recovered(estimate, problem)
        assert estimate.family == family
    else:
        assert not estimate.converged
        assert estimate.reason.startswith("not identifiable at this scalar"), estimate.reason
    auto = recover_from_last_layer(problem.weight, problem.weight_grad, family="auto")
    if auto.converged:
        _assert_recovered(auto, problem)
        assert auto.family == family
    else:
        assert auto.reason.startswith(("not identifiable", "ambiguous")), auto.reason


@pytest.mark.parametrize("target_rank", [1, 3])
def test_a_saturated_continuum_of_labels_is_ambiguous(target_rank: int) -> None:
    """Issue 10 item 8: in float32, p = e_k exactly, so y(t) = e_k - t c = (1 - s) e_k + s y
    for every s in (0, 1] on a whole interval of t: a mixup of e_k and the true label, and, when
    the target is k itself, a smoothing label with eps' = s eps. Those families must refuse
    (ambiguous, or not identifiable at this scalar: no constrained class moves with the
    scale), never answer the interval's edge (found as false accepts at C = 5 and 10). A
    smoothing label whose target is not k is unique: the peak's entry (p = 1, frozen) against
    the others (p = 0) is one linear equation, whose one root is the true scalar."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=M)
    weight = rng.normal(size=(C, M)) / np.sqrt(M)
    logits = weight @ features
    weight *= 200.0 / np.ptp(logits)  # logit gaps of ~100: p = e_peak exactly in float32
    target = int(np.argsort(logits)[-target_rank])
    label = smoothing_vector(target, C, 0.3)
    weight32, features32 = (torch.from_numpy(a).float() for a in (weight, features))
    probs = torch.softmax(weight32 @ features32, dim=-1)
    assert float(probs.max()) == 1.0 and float(probs.sort().values[-2]) < 1e-9
    weight_grad = torch.outer(probs - torch.from_numpy(label).float(), features32)
    unique = () if target_rank == 1 else ("smoothing",)
    for family in ("smoothing", "mixup", "auto"):
        estimate = recover_from_last_layer(weight32, weight_grad, family=family, scale="known")
        unknown = recover_from_last_layer(weight32, weight_grad, family=family)
        assert not unknown.converged or l1(unknown.soft_label, label) < 1e-5
        if family in unique:
            assert estimate.converged, estimate.reason
            assert l1(estimate.soft_label, label) < 1e-5
            continue
        assert not estimate.converged, (family, estimate.soft_label)
        assert estimate.reason.startswith(("ambiguous", "not identifiable")), estimate.reason


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("family", "label"),
    [
        ("smoothing", smoothing_vector(2, C, 0.3)),
        ("mixup", mixup_vector(1, 4, 0.35, C, 0.1)),
    ],
)
def test_prediction_close_to_label_is_recovered(family: str, label: np.ndarray, seed: int) -> None:
    problem = near_label_problem(label, M, seed=seed, noise=1e-4)
    assert 1e-8 < abs(problem.inv_scale) < 1e-3
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family=family)
    _assert_recovered(estimate, problem)
    assert abs(1.0 / estimate.scale - problem.inv_scale) < 1e-6 * abs(problem.inv_scale)


@pytest.mark.parametrize("gap", [9.0, 12.0, 15.0])
def test_confident_correct_hard_prediction_is_recovered(gap: float) -> None:
    """p is one-hot on the true class up to e^-gap, so |t| = 1 - p_target is tiny."""
    rng = np.random.default_rng(int(gap))
    features = rng.normal(size=M)
    logits = rng.uniform(-1.0, 0.0, size=C)
    logits[4] = gap
    orthogonal = rng.normal(size=(C, M))
    orthogonal -= np.outer(orthogonal @ features, features) / (features @ features)
    weight = np.outer(logits, features) / (features @ features) + orthogonal
    problem = gradient_problem(weight, features, one_hot_vector(4, C))
    assert abs(problem.inv_scale) < 1e-3
    estimate = recover_from_last_layer(problem.weight, problem.weight_grad, family="hard")
    _assert_recovered(estimate, problem)
    assert dict(estimate.family_params) == {"target": 4}
