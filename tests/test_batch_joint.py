"""The joint fit of a batch's atoms (recovery/batch/joint.py) on exact float64 last layers."""

from __future__ import annotations

import numpy as np
import pytest

from gradleak.recovery.batch.candidates import row_starts
from gradleak.recovery.batch.joint import Atom, explains, refine
from gradleak.recovery.batch.roots import fit_roots
from gradleak.recovery.batch.subspace import subspace


def _batch(targets, *, num_classes=30, width=40, seed=0, lam=None):
    """W, Ĝ = (1/B) sum_b (p_b - y_b) x_b^T, the features and the labels (hard, or two-class
    mixes with ``lam`` of each target and its successor)."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 3.0 / np.sqrt(width), (num_classes, width))
    features = rng.uniform(0, 1, (len(targets), width))
    labels = np.eye(num_classes)[targets]
    if lam is not None:
        labels = lam * labels + (1 - lam) * np.roll(labels, 1, axis=0)
    logits = features @ weight.T
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    gradient = (probs - labels).T @ features / len(targets)
    return weight, gradient, features, labels


def _true_atoms(whole, features, labels, *, free, noise=0.0, seed=1):
    """Each sample's atom at its true coordinates (moved by ``noise``), weight 1/B."""
    rng = np.random.default_rng(seed)
    coordinates = features @ whole.right
    return [
        Atom(tuple(classes), False, a + noise * rng.standard_normal(a.shape), 1.0 / len(labels))
        for classes, a in zip(free, coordinates, strict=True)
    ]


@pytest.mark.parametrize(("targets", "lam"), [([2, 7, 7, 19], None), ([2, 7, 11, 19], 0.3)])
def test_refine_returns_to_the_true_atoms_from_a_perturbed_start(targets, lam):
    """From coordinates moved by 1e-3 (relative), the joint fit finds every atom again: the
    gradient explained to float64 rounding, labels and weights exact."""
    weight, gradient, features, labels = _batch(targets, lam=lam)
    whole = subspace(weight, gradient, len(targets), bias=False)
    core = whole.left.T @ gradient @ whole.right
    free = [tuple(np.flatnonzero(row > 0)) for row in labels]
    scale = float(np.abs(features @ whole.right).max())
    fit = refine(whole, core, _true_atoms(whole, features, labels, free=free, noise=1e-3 * scale))
    assert fit.misfit < 1e-10
    assert fit.residuals.max() < 1e-9
    np.testing.assert_allclose(fit.labels, labels, atol=1e-8)
    np.testing.assert_allclose([atom.weight for atom in fit.atoms], 1 / len(targets), rtol=1e-8)
    assert explains(fit, noise=1e-15, peers=0)


def test_a_wrong_label_for_one_sample_does_not_explain_the_gradient():
    """Swap one sample's hypothesis for a class it does not have: the joint fit cannot explain
    the gradient to the noise, and `explains` says so."""
    weight, gradient, features, labels = _batch([2, 7, 7, 19])
    whole = subspace(weight, gradient, 4, bias=False)
    core = whole.left.T @ gradient @ whole.right
    free = [(2,), (7,), (13,), (19,)]  # the second 7 named 13
    fit = refine(whole, core, _true_atoms(whole, features, labels, free=free))
    assert fit.misfit > 1e-6 or fit.residuals.max() > 1e-6
    assert not explains(fit, noise=1e-15, peers=0)


@pytest.mark.parametrize("bias", [False, True])
def test_row_starts_lead_each_label_to_its_sample(bias):
    """Started only from the gradient's rows (no random start), each sample's hypothesis
    converges to that sample's exact root: row c points at the sample labelled c. (From
    theta = 0, or the three random starts, most end far from their sample in this batch.)"""
    targets = [2, 7, 11, 19, 23, 4, 9, 14]
    weight, gradient, features, labels = _batch(targets)
    if bias:  # [W, b] with b = 0 and Ĝ = [G, dL/db]: features gain their entry 1
        logits = features @ weight.T
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        weight = np.concatenate([weight, np.zeros((weight.shape[0], 1))], axis=1)
        bias_gradient = (probs - labels).mean(axis=0)
        gradient = np.concatenate([gradient, bias_gradient[:, None]], axis=1)
        features = np.concatenate([features, np.ones((len(targets), 1))], axis=1)
    whole = subspace(weight, gradient, len(targets), bias=bias)
    free = [(target,) for target in targets]
    fit = fit_roots(whole, free, row_starts(whole, free, False, bias), eps_free=False)
    assert fit.residual.max() < 1e-9
    for row, sample in enumerate(features):
        found = whole.feature(fit.theta[row])
        assert np.linalg.norm(found - sample) < 1e-6 * np.linalg.norm(sample)
