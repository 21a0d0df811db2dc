"""Cost of one gradient-matching iteration relative to the model's own autograd work, and of
R restarts relative to one.

The baseline is what any gradient-matching step must do: a forward pass, the parameter
gradient with ``create_graph=True`` and the backward pass through it (double backward) to
the input. The ratio says how much the attack loop adds (distance, TV, Adam, bookkeeping).
The restart columns time one restart, R restarts on the default path (one batched problem where
the model is small enough to gain from it, `matching_batched.BATCH_ELEMENTS`)
and R restarts run one after another, all in this process and alternated round by round. The
floor column times the baseline on R inputs as one batch (one shared parameter gradient)
against one input: batching the restarts cannot cost less than that, so where it exceeds a
target ratio (ResNet18 on a 2-core CPU: compute-bound) no batching meets the target.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

import gradleak
from gradleak.data import load_embedded
from gradleak.reconstruction.attack_inputs import pixel_box
from gradleak.reconstruction.matching import build_problem, run_matching
from gradleak.reconstruction.matching_settings import MatchingSettings


def _per_call(function: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def _autograd_step(
    model: torch.nn.Module, dummy: torch.Tensor, probabilities: torch.Tensor, targets: list
) -> Callable[[], None]:
    """Forward, parameter gradient with ``create_graph=True``, backward through it to the input.

    Shapes: dummy (R, C, H, W); probabilities (R, C'); targets like the parameters.
    """
    dummy = dummy.detach().requires_grad_(True)
    parameters = list(model.parameters())

    def step() -> None:
        loss = -(probabilities * torch.log_softmax(model(dummy), -1)).sum()
        gradients = torch.autograd.grad(loss, parameters, create_graph=True)
        sum((g * t).sum() for g, t in zip(gradients, targets, strict=True)).backward()

    return step


def measure(
    model_name: str = "lenet",
    *,
    iterations: int = 200,
    rounds: int = 5,
    restarts: int = 10,
    restart_iterations: int = 20,
) -> dict[str, Any]:
    """Median seconds per baseline step and per attack iteration, measured alternately in
    ``rounds`` rounds in this process, and their ratio; then median seconds of a
    ``restart_iterations``-iteration inverting-gradients run with one restart, with
    ``restarts`` on the default path (batched where it pays) and with ``restarts`` one by one,
    and the ratios of the latter two to the first; and the floor: the baseline on ``restarts``
    inputs as one batch over the baseline on one.

    Shapes: not applicable.
    """
    images = load_embedded("embedded-cifar10")
    model = gradleak.models.build(model_name, num_classes=10, init="uniform", seed=0)
    inputs = images.normalise(images.images[:1])
    label = gradleak.labels.smoothing(int(images.labels[0]), 10, 0.2)
    observation, _ = gradleak.simulate_client_step(model, inputs, label)
    targets = [observation.gradients[name] for name, _ in model.named_parameters()]
    probabilities = label.probabilities.to(inputs.dtype).reshape(1, -1)
    baseline = _autograd_step(model, torch.randn_like(inputs), probabilities, targets)
    # The same work on all restarts' inputs as one batch with one shared parameter gradient:
    # no batching of the restarts can do less, so its ratio to one input is their floor.
    together = torch.randn((restarts, *inputs.shape[1:]), dtype=inputs.dtype)
    floor = _autograd_step(model, together, probabilities.expand(restarts, -1), targets)

    def attack() -> None:
        gradleak.reconstruct(
            observation,
            model,
            "inverting-gradients",
            labels=label,
            iterations=iterations,
            restarts=1,
            image_mean=images.mean,
            image_std=images.std,
        )

    problem = build_problem(
        observation,
        model,
        input_shape=tuple(inputs.shape),
        label=probabilities,
        feature=None,
        bounds=pixel_box(images.mean, images.std, inputs.dtype),
    )

    def run_restarts(count: int, *, batched: bool) -> Callable[[], object]:
        settings = MatchingSettings(iterations=restart_iterations, restarts=count)
        return lambda: run_matching(
            problem, settings, attack="inverting-gradients", batch_restarts=batched
        )

    timed = {
        "one_restart_s": run_restarts(1, batched=True),
        "restarts_s": run_restarts(restarts, batched=True),
        "sequential_restarts_s": run_restarts(restarts, batched=False),
    }
    baseline_times, attack_times, floor_times = [], [], []
    restart_times: dict[str, list[float]] = {key: [] for key in timed}
    _per_call(baseline, 20)
    attack()
    for run in timed.values():
        run()
    for _ in range(rounds):
        baseline_times.append(_per_call(baseline, iterations))
        attack_times.append(_per_call(attack, 1) / iterations)
        floor_times.append(_per_call(floor, max(1, iterations // restarts)))
        for key, run in timed.items():
            restart_times[key].append(_per_call(run, 1))
    base, step = statistics.median(baseline_times), statistics.median(attack_times)
    seconds = {key: statistics.median(values) for key, values in restart_times.items()}
    return {
        "model": model_name,
        "baseline_ms": 1e3 * base,
        "iteration_ms": 1e3 * step,
        "ratio": step / base,
        **seconds,
        "restarts_ratio": seconds["restarts_s"] / seconds["one_restart_s"],
        "sequential_ratio": seconds["sequential_restarts_s"] / seconds["one_restart_s"],
        "floor_ratio": statistics.median(floor_times) / base,
        "restarts": restarts,
        "restart_iterations": restart_iterations,
        "rounds": rounds,
        "iterations": iterations,
        "threads": torch.get_num_threads(),
    }


def markdown(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """A table of `measure`'s results, one row each (one result: a one-row table)."""
    rows = [results] if isinstance(results, Mapping) else list(results)
    restarts = {row["restarts"] for row in rows}
    count = restarts.pop() if len(restarts) == 1 else "R"
    lines = [
        "| model | forward+backward+double-backward ms | attack iteration ms | ratio | "
        f"1 restart s | {count} restarts, default path s | default / 1 | "
        f"{count} restarts one by one s | one by one / 1 | floor: {count} inputs as one "
        "batch / 1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {row['model']} | {row['baseline_ms']:.3f} | {row['iteration_ms']:.3f} | "
        f"{row['ratio']:.2f} | {row['one_restart_s']:.3f} | {row['restarts_s']:.3f} | "
        f"{row['restarts_ratio']:.2f} | {row['sequential_restarts_s']:.3f} | "
        f"{row['sequential_ratio']:.2f} | {row['floor_ratio']:.2f} |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"
