"""Batched restarts (`matching_batched`) against the one-by-one reference loop.

The two paths run the same arithmetic up to reduction order, so they are compared on
float64 models, where reduction-order noise stays near 1e-15 and Adam's sign-like first steps
cannot blow it up (float32 is checked too, with the tolerance that noise earns there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

import gradleak
from gradleak.data import load_embedded
from gradleak.experiments import matching_speed
from gradleak.reconstruction import matching, matching_batched
from gradleak.reconstruction.matching import MatchingProblem, build_problem, run_matching
from gradleak.reconstruction.matching_settings import MatchingSettings
from gradleak.reconstruction.result import Reconstruction


@dataclass(frozen=True)
class Client:
    model: nn.Module
    observation: gradleak.client.GradientObservation
    secret: gradleak.client.ClientSecret
    bounds: tuple[Tensor, Tensor]


def _client(name: str, *, image_size: int, batch: int, dtype: torch.dtype) -> Client:
    images = load_embedded("embedded-cifar10", image_size=image_size)
    init = "uniform" if name == "lenet" else "default"
    model = gradleak.models.build(name, num_classes=10, init=init, seed=0, image_size=image_size)
    model = model.to(dtype)
    inputs = images.normalise(images.images[:batch]).to(dtype)
    labels = torch.stack(
        [gradleak.labels.smoothing(int(c), 10, 0.2).probabilities for c in images.labels[:batch]]
    ).to(dtype)
    observation, secret = gradleak.simulate_client_step(model, inputs, labels)
    mean = torch.tensor(images.mean, dtype=dtype).reshape(1, -1, 1, 1)
    std = torch.tensor(images.std, dtype=dtype).reshape(1, -1, 1, 1)
    return Client(model, observation, secret, ((0 - mean) / std, (1 - mean) / std))


@pytest.fixture(scope="module")
def lenet() -> Client:
    return _client("lenet", image_size=32, batch=2, dtype=torch.float64)


@pytest.fixture(scope="module")
def resnet() -> Client:
    return _client("resnet18", image_size=8, batch=1, dtype=torch.float64)


def _problem(client: Client, *, known_label: bool, feature: bool) -> MatchingProblem:
    secret = client.secret
    return build_problem(
        client.observation,
        client.model,
        input_shape=tuple(secret.inputs.shape),
        label=secret.soft_label if known_label else None,
        feature=secret.features if feature else None,
        bounds=client.bounds,
    )


def _both(
    problem: MatchingProblem, settings: MatchingSettings, monkeypatch: pytest.MonkeyPatch
) -> tuple[Reconstruction, Reconstruction]:
    """(batched, sequential), checking that the batched path really ran."""
    calls = []
    real = matching.run_batched_restarts

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(matching, "run_batched_restarts", spy)
    batched = run_matching(problem, settings, attack="test")
    assert calls == [1]
    sequential = run_matching(problem, settings, attack="test", batch_restarts=False)
    assert calls == [1]
    return batched, sequential


def _assert_same(batched: Reconstruction, sequential: Reconstruction, *, rtol, atol) -> None:
    assert batched.diagnostics.keys() == sequential.diagnostics.keys()
    assert batched.diagnostics["best_restart"] == sequential.diagnostics["best_restart"]
    objectives = [torch.tensor(r.diagnostics["restart_objectives"]) for r in (batched, sequential)]
    torch.testing.assert_close(*objectives, rtol=rtol, atol=0)
    assert batched.objective == pytest.approx(sequential.objective, rel=rtol)
    assert (batched.iterations, batched.converged, batched.reason, batched.attack) == (
        sequential.iterations, sequential.converged, sequential.reason, sequential.attack,
    )  # fmt: skip
    torch.testing.assert_close(
        torch.tensor(batched.history), torch.tensor(sequential.history), rtol=rtol, atol=0
    )
    assert batched.inputs.shape == sequential.inputs.shape
    torch.testing.assert_close(batched.inputs, sequential.inputs, rtol=0, atol=atol)
    if "label" in sequential.diagnostics:
        torch.testing.assert_close(
            batched.diagnostics["label"], sequential.diagnostics["label"], rtol=0, atol=atol
        )


#: (known label, feature term, settings): inverting gradients with TV, DLG's joint label
#: (Adam, Euclidean), and "ours-feature".
CASES = {
    "inverting-gradients": (True, False, MatchingSettings(iterations=20, restarts=3)),
    "dlg-adam": (
        False,
        False,
        MatchingSettings(distance="euclidean", iterations=20, restarts=3, tv_weight=1e-3),
    ),
    "feature": (True, True, MatchingSettings(iterations=20, restarts=3, feature_weight=0.5)),
}


@pytest.mark.parametrize("case", CASES)
def test_batched_restarts_match_sequential_lenet(lenet, case, monkeypatch):
    known_label, feature, settings = CASES[case]
    problem = _problem(lenet, known_label=known_label, feature=feature)
    batched, sequential = _both(problem, settings, monkeypatch)
    _assert_same(batched, sequential, rtol=1e-9, atol=1e-9)
    assert len(set(batched.diagnostics["restart_objectives"])) == 3  # three distinct starts
    assert batched.history[-1] < batched.history[0]


def test_restarts_in_several_chunks_match_sequential(lenet, monkeypatch):
    """Chunks of 2, 2 and 1 restarts (a budget of two LeNet gradients) change nothing."""
    parameters = sum(p.numel() for p in lenet.model.parameters())
    monkeypatch.setattr(matching_batched, "BATCH_ELEMENTS", 2 * parameters + 1)
    problem = _problem(lenet, known_label=False, feature=True)
    assert matching_batched.restarts_per_chunk(problem) == 2
    settings = MatchingSettings(
        distance="euclidean", iterations=10, restarts=5, tv_weight=1e-3, feature_weight=0.5
    )
    batched, sequential = _both(problem, settings, monkeypatch)
    _assert_same(batched, sequential, rtol=1e-9, atol=1e-9)


def test_a_model_too_large_for_two_restarts_runs_them_one_by_one(lenet, monkeypatch):
    parameters = sum(p.numel() for p in lenet.model.parameters())
    monkeypatch.setattr(matching_batched, "BATCH_ELEMENTS", 2 * parameters - 1)
    monkeypatch.setattr(matching, "run_batched_restarts", None)  # would raise if called
    problem = _problem(lenet, known_label=True, feature=False)
    result = run_matching(problem, MatchingSettings(iterations=2, restarts=2), attack="t")
    assert result.iterations == 2


def _force_batching(monkeypatch: pytest.MonkeyPatch) -> None:
    """ResNet18 runs its restarts one by one by default (too large to gain from batching,
    `BATCH_ELEMENTS`); its batched path must still agree, so these tests batch it."""
    monkeypatch.setattr(matching_batched, "BATCH_ELEMENTS", 1 << 26)


def test_resnet18_runs_restarts_one_by_one_by_default(resnet):
    problem = _problem(resnet, known_label=True, feature=False)
    assert matching_batched.restarts_per_chunk(problem) == 1


@pytest.mark.parametrize("case", ["inverting-gradients", "dlg-adam"])
def test_batched_restarts_match_sequential_resnet18(resnet, case, monkeypatch):
    """BatchNorm in eval mode (running statistics); the feature term rides on the first case."""
    _force_batching(monkeypatch)
    known_label, _, settings = CASES[case]
    settings = MatchingSettings(
        distance=settings.distance,
        iterations=8,
        restarts=3,
        tv_weight=settings.tv_weight,
        feature_weight=0.5 if known_label else 0.0,
    )
    problem = _problem(resnet, known_label=known_label, feature=known_label)
    batched, sequential = _both(problem, settings, monkeypatch)
    _assert_same(batched, sequential, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_batched_restarts_match_sequential_resnet18_cifar_size(case, monkeypatch):
    _force_batching(monkeypatch)
    client = _client("resnet18", image_size=32, batch=1, dtype=torch.float64)
    known_label, feature, settings = CASES[case]
    problem = _problem(client, known_label=known_label, feature=feature)
    batched, sequential = _both(problem, settings, monkeypatch)
    _assert_same(batched, sequential, rtol=1e-9, atol=1e-9)


def test_batched_restarts_match_sequential_in_float32(monkeypatch):
    """In float32 the objectives agree to 1e-6 (checked to 1e-4); single pixels whose gradient
    is near zero can take different early Adam steps (g / (|g| + 1e-8)): inputs differ by up
    to about 4e-4 here, hence the looser input tolerance."""
    client = _client("lenet", image_size=32, batch=1, dtype=torch.float32)
    problem = _problem(client, known_label=True, feature=True)
    settings = MatchingSettings(iterations=20, restarts=3, feature_weight=0.5)
    batched, sequential = _both(problem, settings, monkeypatch)
    _assert_same(batched, sequential, rtol=1e-4, atol=5e-3)


# A per-restart objective with a known failure point: the iterate's mean passing 1 makes it NaN.
def _toy_value(dummy: Tensor) -> Tensor:
    return ((dummy - 3) ** 2).sum() + torch.sqrt(1 - dummy.mean())


class _Bar:
    """Stands in for tqdm; records every update."""

    updates: list[int]

    def __init__(self, **_kwargs) -> None:
        self.updates = []
        _Bar.updates = self.updates

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *_exc) -> None:
        return None

    def update(self, count: int) -> None:
        self.updates.append(count)


def test_non_finite_restarts_stop_being_tracked_alike(monkeypatch):
    """Restarts that turn NaN at different iterations (or at once) keep the same best
    iterate, history and bar progress in both paths; the others run to the end."""
    model = nn.Linear(4, 3).eval()
    problem = MatchingProblem(
        model=model, parameters={}, names=(), targets=(torch.zeros(1),), classifier=model,
        input_shape=(1, 1, 2, 2), label=torch.full((1, 3), 1 / 3), feature=None, bounds=None,
    )  # fmt: skip
    monkeypatch.setattr(matching, "_objective", lambda *_: lambda dummy, _l: _toy_value(dummy))
    monkeypatch.setattr(
        matching_batched,
        "batched_objective",
        lambda *_: lambda dummies, _l: torch.stack([_toy_value(d) for d in dummies]),
    )
    monkeypatch.setattr(matching, "tqdm", _Bar)
    settings = MatchingSettings(iterations=12, restarts=8, learning_rate=0.1, seed=4)
    batched = run_matching(problem, settings, attack="toy")
    batched_updates = _Bar.updates
    sequential = run_matching(problem, settings, attack="toy", batch_restarts=False)
    sequential_updates = _Bar.updates
    _assert_same(batched, sequential, rtol=0, atol=0)
    # Each restart's finite iterations (the bar advances after each; a NaN ends the restart).
    finite = [sum(map(math.isfinite, run.history)) for run in _sequential_runs(problem, settings)]
    assert min(finite) < 12 and max(finite) == 12  # some restarts stop, some run to the end
    assert 0 in finite  # one is NaN from its start: its best stays the start, at inf
    assert sequential_updates == [1] * sum(finite)
    assert batched_updates == [sum(n > i for n in finite) for i in range(12)]


def _sequential_runs(problem: MatchingProblem, settings: MatchingSettings) -> list:
    """Every restart's `RestartResult` from the sequential loop."""
    generator = torch.Generator().manual_seed(settings.seed)
    objective = matching._objective(problem, settings, [])
    starts = [matching._start(problem, generator) for _ in range(settings.restarts)]
    return [matching._restart(objective, problem, settings, one, _Bar()) for one in starts]


def test_a_model_in_training_mode_runs_restarts_one_by_one(monkeypatch):
    """BatchNorm's running statistics (and dropout) make a training-mode forward stateful."""
    client = _client("lenet", image_size=8, batch=1, dtype=torch.float64)
    problem = _problem(client, known_label=True, feature=False)
    monkeypatch.setattr(matching, "run_batched_restarts", None)  # would raise if called
    client.model.train()
    try:
        result = run_matching(problem, MatchingSettings(iterations=2, restarts=2), attack="t")
    finally:
        client.model.eval()
    assert result.iterations == 2
    assert not client.model.classifier._forward_hooks
    assert math.isfinite(result.objective)


def test_speed_report_times_one_batched_and_sequential_restarts():
    result = matching_speed.measure(
        "lenet", iterations=2, rounds=1, restarts=3, restart_iterations=2
    )
    assert result["restarts"] == 3
    for key in ("one_restart_s", "restarts_s", "sequential_restarts_s"):
        assert result[key] > 0
    assert result["restarts_ratio"] == result["restarts_s"] / result["one_restart_s"]
    table = matching_speed.markdown([result, result]).splitlines()
    assert len(table) == 4 and "3 restarts, default path s" in table[0]
    assert matching_speed.markdown(result).splitlines()[2].startswith("| lenet |")
