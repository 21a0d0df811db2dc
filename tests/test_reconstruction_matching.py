"""Gradient matching (DLG, inverting gradients), oracle labels and the reconstruction variants."""

import sys

import pytest
import torch

import gradleak
from gradleak.experiments.oracles import oracle_hard_label, oracle_soft_label
from gradleak.experiments.variants import CNN_VARIANTS, run_variant
from gradleak.reconstruction import ATTACKS, InvertingGradients, MatchingSettings
from gradleak.reconstruction.matching import build_problem, gradient_distance, total_variation

MEAN, STD = (0.5,), (0.25,)


@pytest.fixture(scope="module")
def client():
    """A tiny grayscale LeNet client with a smoothed label, its estimate and the truth."""
    model = gradleak.models.build("lenet", num_classes=6, in_channels=1, image_size=8, seed=0)
    generator = torch.Generator().manual_seed(0)
    inputs = (torch.rand(1, 1, 8, 8, generator=generator) - 0.5) / 0.25
    label = gradleak.labels.smoothing(2, 6, 0.2)
    observation, secret = gradleak.simulate_client_step(model, inputs, label)
    estimate = gradleak.recover_label(observation, family="smoothing")
    assert estimate.converged
    return model, observation, secret, estimate


def _objective_at(model, observation, inputs, label, distance="cosine", tv=0.0):
    problem = build_problem(
        observation, model, input_shape=(1, 1, 8, 8), label=label, feature=None, bounds=None
    )
    loss = -(problem.label * torch.log_softmax(model(inputs), -1)).sum()
    names = [name for name, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, list(model.parameters()))
    targets = [observation.gradients[name] for name in names]
    norm = torch.sqrt(sum((t * t).sum() for t in targets))
    value = gradient_distance(grads, targets, distance=distance, target_norm=norm)
    return float(value + tv * total_variation(inputs))


def test_all_attacks_are_registered():
    assert {"analytic-fc", "dlg", "inverting-gradients"} <= set(ATTACKS)


def test_inverting_gradients_keeps_its_lowest_iterate(client):
    model, observation, _, estimate = client
    result = gradleak.reconstruct(
        observation, model, "inverting-gradients", labels=estimate, iterations=40, restarts=2,
        tv_weight=1e-2, image_mean=MEAN, image_std=STD, seed=3,
    )  # fmt: skip
    assert result.converged and result.iterations == 40
    assert result.history[-1] < result.history[0]
    assert result.objective == min(result.history)
    assert result.objective == min(result.diagnostics["restart_objectives"])
    # The returned input is the iterate that scored ``objective``: recompute it independently.
    recomputed = _objective_at(model, observation, result.inputs, estimate.soft_label, tv=1e-2)
    assert recomputed == pytest.approx(result.objective, rel=1e-4)
    low, high = (0 - 0.5) / 0.25, (1 - 0.5) / 0.25
    assert result.inputs.min() >= low - 1e-6 and result.inputs.max() <= high + 1e-6
    assert result.inputs.shape == (1, 1, 8, 8)


def test_matching_is_seeded_and_leaves_no_hooks(client):
    model, observation, _, estimate = client
    runs = [
        gradleak.reconstruct(
            observation, model, labels=estimate, iterations=5, restarts=1, seed=7,
            feature_weight=0.5,
        )
        for _ in range(2)
    ]  # fmt: skip
    torch.testing.assert_close(runs[0].inputs, runs[1].inputs, rtol=0, atol=0)
    assert not model.classifier._forward_hooks


def test_dlg_learns_the_label_jointly(client):
    model, observation, secret, _ = client
    result = gradleak.reconstruct(observation, model, "dlg", iterations=30, seed=1)
    assert result.history[-1] < 0.05 * result.history[0]
    learned = result.diagnostics["label"]
    assert learned.shape == (6,)
    assert float(learned.sum()) == pytest.approx(1.0, abs=1e-5)
    assert int(learned.argmax()) == int(secret.soft_label[0].argmax())


def test_feature_term_adds_the_relative_feature_gap(client):
    """With one iteration the result is the seeded start; the objectives differ by exactly
    weight * ||feature(start) - recovered||^2 / ||recovered||^2."""
    model, observation, _, estimate = client
    runs = {
        weight: gradleak.reconstruct(
            observation, model, labels=estimate, iterations=1, restarts=1, seed=2,
            feature_weight=weight, tv_weight=0.0,
        )
        for weight in (0.0, 10.0)
    }  # fmt: skip
    torch.testing.assert_close(runs[0.0].inputs, runs[10.0].inputs, rtol=0, atol=0)
    captured = []
    hook = model.classifier.register_forward_hook(lambda _m, args, _o: captured.append(args[0]))
    try:
        with torch.no_grad():
            model(runs[0.0].inputs)
    finally:
        hook.remove()
    target = estimate.features.float()
    gap = float(((captured[0][0] - target) ** 2).sum() / (target**2).sum())
    assert gap > 0
    difference = runs[10.0].objective - runs[0.0].objective
    assert difference == pytest.approx(10.0 * gap, rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attack": "inverting-gradients", "labels": None}, "needs labels"),
        ({"attack": "inverting-gradients", "feature_weight": 1.0, "use_soft": True}, "feature"),
        ({"attack": "inverting-gradients", "iterations": 0}, "iterations"),
        ({"attack": "dlg", "restarts": 0}, "restarts"),
        ({"attack": "inverting-gradients", "image_mean": (0.5,)}, "image_std"),
        ({"attack": "inverting-gradients", "tv_weight": -1.0}, "tv_weight"),
        ({"attack": "inverting-gradients", "tv": 1e-2}, r"unknown parameters \['tv'\].*tv_weight"),
        ({"attack": "dlg", "optimiser": "adam"}, "accepts settings, image_mean.*optimizer"),
        ({"attack": "nonsense"}, "choose one of analytic-fc, dlg, inverting-gradients"),
    ],
)
def test_bad_arguments_are_named(client, kwargs, message):
    model, observation, secret, estimate = client
    kwargs = dict(kwargs)
    labels = oracle_soft_label(secret) if kwargs.pop("use_soft", False) else estimate
    labels = kwargs.pop("labels", labels)
    with pytest.raises(ValueError, match=message):
        gradleak.reconstruct(observation, model, labels=labels, **kwargs)


def test_classifier_only_observation_is_refused(client, tmp_path):
    model, observation, _, estimate = client
    path = gradleak.client.save_observation(
        observation, tmp_path / "o.safetensors", classifier_only=True
    )
    partial = gradleak.client.load_observation(path)
    with pytest.raises(ValueError, match="classifier_only"):
        gradleak.reconstruct(partial, model, labels=estimate, iterations=1, restarts=1)


def test_oracles_are_the_truth_and_its_hard_version(client):
    _, _, secret, _ = client
    torch.testing.assert_close(oracle_soft_label(secret), secret.soft_label[0])
    hard = oracle_hard_label(secret)
    assert float(hard.sum()) == 1.0 and float(hard[2]) == 1.0


def test_every_cnn_variant_runs_on_the_same_gradient(client):
    model, observation, secret, estimate = client
    settings = MatchingSettings(iterations=3, restarts=1)
    budget = {"settings": settings, "dlg_iterations": 2, "image_mean": MEAN, "image_std": STD}
    for name in CNN_VARIANTS:
        result = run_variant(name, observation, model, estimate=estimate, secret=secret, **budget)
        assert result.inputs.shape == (1, 1, 8, 8), name
        assert result.iterations == (2 if name == "dlg" else 3), name
    with pytest.raises(ValueError, match="variant 'magic' is unknown"):
        run_variant("magic", observation, model, estimate=estimate, secret=secret, **budget)


def test_settings_validate_their_fields():
    with pytest.raises(ValueError, match="distance"):
        MatchingSettings(distance="l1", optimizer="adam", iterations=1)
    with pytest.raises(ValueError, match="optimizer"):
        MatchingSettings(distance="cosine", optimizer="sgd", iterations=1)
    with pytest.raises(ValueError, match="learning_rate"):
        MatchingSettings(learning_rate=0.0)
    with pytest.raises(ValueError, match="feature_weight"):
        MatchingSettings(feature_weight=float("nan"))


def test_settings_object_and_keyword_overrides_build_the_same_attack(client):
    model, observation, _, estimate = client
    settings = MatchingSettings(iterations=4, restarts=2, tv_weight=1e-3, seed=5)
    built = InvertingGradients(settings=settings, image_mean=MEAN, image_std=STD)
    assert built.settings == settings
    overridden = InvertingGradients(settings=settings, iterations=2)
    assert overridden.settings == MatchingSettings(iterations=2, restarts=2, tv_weight=1e-3, seed=5)
    by_settings = built.run(observation, model, labels=estimate)
    by_keywords = gradleak.reconstruct(
        observation, model, "inverting-gradients", labels=estimate, iterations=4, restarts=2,
        tv_weight=1e-3, seed=5, image_mean=MEAN, image_std=STD,
    )  # fmt: skip
    torch.testing.assert_close(by_settings.inputs, by_keywords.inputs, rtol=0, atol=0)
    assert by_settings.history == by_keywords.history


def test_attack_defaults_are_the_papers():
    assert ATTACKS["inverting-gradients"].defaults == MatchingSettings(
        distance="cosine", optimizer="adam", iterations=4800, restarts=10, learning_rate=0.1,
        tv_weight=1e-2,
    )  # fmt: skip
    assert ATTACKS["dlg"].defaults == MatchingSettings(
        distance="euclidean", optimizer="lbfgs", iterations=300, restarts=1, learning_rate=1.0,
        tv_weight=0.0,
    )  # fmt: skip


def test_cosine_distance_is_zero_for_parallel_gradients():
    gradients = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    scaled = [2 * g for g in gradients]
    norm = torch.sqrt(sum((g * g).sum() for g in scaled))
    assert float(gradient_distance(gradients, scaled, distance="cosine", target_norm=norm)) == (
        pytest.approx(0.0, abs=1e-7)
    )
    assert float(gradient_distance(gradients, scaled, distance="euclidean", target_norm=norm)) == (
        pytest.approx(14.0)
    )


def test_progress_shows_on_request_hides_on_request_and_changes_nothing(client, capsys):
    model, observation, _, estimate = client
    run = {"labels": estimate, "iterations": 6, "restarts": 2, "image_mean": MEAN, "image_std": STD}
    shown = gradleak.reconstruct(observation, model, "inverting-gradients", progress=True, **run)
    assert "inverting-gradients" in capsys.readouterr().err  # the tqdm bar, on stderr
    hidden = gradleak.reconstruct(observation, model, "inverting-gradients", progress=False, **run)
    assert capsys.readouterr().err == ""
    torch.testing.assert_close(shown.inputs, hidden.inputs, rtol=0, atol=0)
    assert shown.history == hidden.history


def test_progress_is_automatic_for_a_long_run_someone_can_see(monkeypatch, capsys):
    from gradleak.reconstruction.matching_settings import AUTO_PROGRESS_STEPS

    def built(**params):
        return InvertingGradients(**params).settings.progress

    assert not built()  # the paper's 4800 x 10 steps, but stderr is captured: nobody sees it
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert built() and built(iterations=AUTO_PROGRESS_STEPS, restarts=1)
    assert not built(iterations=AUTO_PROGRESS_STEPS - 1, restarts=1)
    assert not built(progress=False) and built(iterations=1, progress=True)
    # Given settings decide for themselves (the experiments' runs stay quiet).
    assert not built(settings=MatchingSettings())
    assert built(settings=MatchingSettings(iterations=1, progress=True))
    with pytest.raises(ValueError, match="progress must be True, False or None"):
        built(progress="yes")
