"""Batch reconstruction: B dummies matched jointly, scored after assignment; CLI --batch-size."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import gradleak
from gradleak.cli.main import main
from gradleak.data import load_embedded
from gradleak.families.batch_trials import BATCH_LABELS, draw_batch
from gradleak.metrics import score_batch_images
from gradleak.reconstruction.matching import _objective, build_problem
from gradleak.reconstruction.matching_settings import MatchingSettings

TINY = {"iterations": 3, "restarts": 1}


@pytest.fixture(scope="module")
def batch_client():
    """A LeNet (C = 100) step on 3 embedded CIFAR-100 images with one eps."""
    images = load_embedded("embedded-cifar100")
    model = gradleak.models.build("lenet", num_classes=100, init="uniform", seed=0)
    inputs, labels = draw_batch("smoothing", images, 100, 3, np.random.default_rng(0))
    observation, secret = gradleak.simulate_client_step(model, inputs, labels)
    return images, model, observation, secret


def test_the_batch_objective_vanishes_at_the_true_inputs(batch_client):
    """The dummies' loss is the client's mean-reduced one: the truth matches exactly."""
    _, model, observation, secret = batch_client
    settings = MatchingSettings(distance="euclidean", tv_weight=0.0, iterations=1, restarts=1)
    problem = build_problem(
        observation, model, input_shape=tuple(secret.inputs.shape),
        label=secret.soft_label, feature=None, bounds=None,
    )  # fmt: skip
    objective = _objective(problem, settings, [])

    def value(inputs):
        return float(objective(inputs.clone().requires_grad_(True), None).detach())

    shuffled = value(secret.inputs[[1, 2, 0]])
    assert shuffled > 1e-8
    assert value(secret.inputs) < 1e-12 * shuffled


def test_reconstruct_a_batch_from_recovered_and_oracle_labels(batch_client):
    images, model, observation, secret = batch_client
    estimate = gradleak.recover_batch(observation, "smoothing")
    assert estimate.converged, estimate.reason
    box = {"image_mean": images.mean, "image_std": images.std}
    ours = gradleak.reconstruct(observation, model, labels=estimate, **TINY, **box)
    oracle = gradleak.reconstruct(observation, model, labels=secret.soft_label, **TINY, **box)
    joint = gradleak.reconstruct(observation, model, "dlg", iterations=2)
    feature = gradleak.reconstruct(
        observation, model, labels=estimate, feature_weight=0.1, **TINY, **box
    )
    for result in (ours, oracle, joint, feature):
        assert tuple(result.inputs.shape) == tuple(secret.inputs.shape)
        assert result.converged and np.isfinite(result.objective)
    assert tuple(joint.diagnostics["label"].shape) == (3, 100)


def test_an_unconverged_batch_estimate_is_refused_as_a_value(batch_client):
    _images, model, observation, secret = batch_client
    refused = gradleak.recover_batch(observation, method="llg")
    assert refused.soft_labels is None  # count-only: an error, it holds no labels
    with pytest.raises(ValueError, match="count-only"):
        gradleak.reconstruct(observation, model, labels=refused, **TINY)
    estimate = gradleak.recover_batch(observation, "smoothing")
    empty = estimate.soft_labels[:0]
    unconverged = replace(
        estimate, converged=False, reason="test", soft_labels=empty, features=empty
    )
    result = gradleak.reconstruct(observation, model, labels=unconverged, **TINY)
    assert not result.converged and "did not converge" in result.reason
    assert result.iterations == 0 and tuple(result.inputs.shape) == tuple(secret.inputs.shape)


def test_single_input_labels_on_a_batch_are_errors(batch_client):
    _images, model, observation, secret = batch_client
    with pytest.raises(ValueError, match=r"\(3, 100\)"):
        gradleak.reconstruct(observation, model, labels=secret.soft_label[0], **TINY)
    single = gradleak.recover_label(
        gradleak.simulate_client_step(model, secret.inputs[:1], secret.soft_label[:1])[0]
    )
    with pytest.raises(ValueError, match="recover_batch"):
        gradleak.reconstruct(observation, model, labels=single, **TINY)


def test_scores_after_assignment_undo_any_order(batch_client):
    images, _model, _observation, secret = batch_client
    order = [2, 0, 1]
    noisy = secret.inputs[order] + 0.01 * torch.randn(secret.inputs.shape, dtype=torch.float64)
    scores = score_batch_images(noisy, secret.inputs, mean=images.mean, std=images.std)
    assert [order[i] for i in scores.assignment] == [0, 1, 2]
    assert all(score.psnr > 30 for score in scores.scores)
    exact = score_batch_images(
        secret.inputs[order], secret.inputs, mean=images.mean, std=images.std
    )
    assert exact.mean("psnr") == float("inf")


def test_batch_label_makers_share_their_parameters():
    targets = torch.tensor([0, 1, 1])
    inputs = torch.arange(3.0).reshape(3, 1)
    _, smooth = BATCH_LABELS["smoothing"](inputs, targets, 4, torch.tensor([1, 2, 0]), eps=0.2)
    assert torch.allclose(smooth.sum(1), torch.ones(3, dtype=torch.float64))
    assert float(smooth.max()) == pytest.approx(0.85)
    mixed, mix = BATCH_LABELS["mixup"](inputs, targets, 4, torch.tensor([1, 2, 0]), lam=0.3)
    assert mixed[:, 0].tolist() == pytest.approx([0.7, 1.7, 0.6])
    assert mix[1].tolist() == [0.0, 1.0, 0.0, 0.0]  # mixed with its own class: a hard label
    with pytest.raises(ValueError, match="eps"):
        BATCH_LABELS["mixup"](inputs, targets, 4, torch.tensor([1, 2, 0]), lam=0.3, eps=0.1)


def test_recover_cli_on_a_batch(capsys):
    argv = [
        "recover",
        "--batch-size",
        "3",
        "--dataset",
        "embedded-cifar100",
        "--label-family",
        "hard",
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "batch of 3 inputs" in text and "converged: all 3 samples" in text
    assert "family hard" in text and "true class" in text
    assert main([*argv, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["converged"] and record["num_recovered"] == 3
    assert all(match["l1"] < 1e-2 for match in record["matched"])
    assert main([*argv, "--method", "fast-search"]) == 2
    assert "does not apply to a batch of 3" in capsys.readouterr().err
    assert main(["recover", "--batch-size", "21"]) == 2  # 20 embedded CIFAR-10 images
    assert "--batch-size must be in [1, 20]" in capsys.readouterr().err


def test_recover_cli_reads_a_saved_batch_observation(tmp_path, capsys):
    saved = tmp_path / "batch.safetensors"
    argv = ["recover", "--batch-size", "2", "--dataset", "embedded-cifar100"]
    assert main([*argv, "--save-observation", str(saved)]) == 0
    capsys.readouterr()
    assert main(["recover", "--observation", str(saved)]) == 0
    text = capsys.readouterr().out
    assert "batch of 2 inputs" in text and "converged: all 2" in text
    assert "true class" not in text  # a saved observation carries no truth


def test_reconstruct_cli_on_a_batch(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["reconstruct", "--batch-size", "2", "--dataset", "embedded-cifar100",
            "--iterations", "2", "--dlg-iterations", "1", "--variants", "ours,dlg",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "labels of the batch of 2: converged" in text and "after assignment" in text
    record = json.loads((out / "record.json").read_text())
    assert record["num_samples"] == 2
    for entry in record["variants"].values():
        assert sorted(entry["assignment"]) == [0, 1] and len(entry["per_sample"]) == 2
    assert (out / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_batch_reconstruction_case_refuses_single_input_variants():
    from gradleak.experiments.suites.reconstruction import ReconstructionTrials

    with pytest.raises(ValueError, match="analytic-fc"):
        ReconstructionTrials(
            model="fcn4", dataset="embedded-imagenet", num_classes=1000, label_family="mixup",
            variants=("analytic-fc", "dlg"), batch_size=2,
        )  # fmt: skip
