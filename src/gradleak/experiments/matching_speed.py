"""Cost of one gradient-matching iteration relative to the model's own autograd work.

The baseline is what any gradient-matching step must do: a forward pass, the parameter
gradient with ``create_graph=True`` and the backward pass through it (double backward) to
the input. The ratio says how much the attack loop adds (distance, TV, Adam, bookkeeping).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

import gradleak
from gradleak.data import load_embedded


def _per_call(function, repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def measure(model_name: str = "lenet", *, iterations: int = 200, rounds: int = 5) -> dict[str, Any]:
    """Median seconds per baseline step and per attack iteration, measured alternately in
    ``rounds`` rounds in this process, and their ratio.

    Shapes: not applicable.
    """
    images = load_embedded("embedded-cifar10")
    model = gradleak.models.build(model_name, num_classes=10, init="uniform", seed=0)
    inputs = images.normalise(images.images[:1])
    label = gradleak.labels.smoothing(int(images.labels[0]), 10, 0.2)
    observation, _ = gradleak.simulate_client_step(model, inputs, label)
    parameters = list(model.parameters())
    targets = [observation.gradients[name] for name, _ in model.named_parameters()]
    dummy = torch.randn_like(inputs).requires_grad_(True)
    probabilities = label.probabilities.to(inputs.dtype).reshape(1, -1)

    def baseline() -> None:
        loss = -(probabilities * torch.log_softmax(model(dummy), -1)).sum()
        gradients = torch.autograd.grad(loss, parameters, create_graph=True)
        sum((g * t).sum() for g, t in zip(gradients, targets, strict=True)).backward()

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

    baseline_times, attack_times = [], []
    _per_call(baseline, 20)
    attack()
    for _ in range(rounds):
        baseline_times.append(_per_call(baseline, iterations))
        attack_times.append(_per_call(attack, 1) / iterations)
    base, step = statistics.median(baseline_times), statistics.median(attack_times)
    return {
        "model": model_name,
        "baseline_ms": 1e3 * base,
        "iteration_ms": 1e3 * step,
        "ratio": step / base,
        "rounds": rounds,
        "iterations": iterations,
        "threads": torch.get_num_threads(),
    }


def markdown(result: dict[str, Any]) -> str:
    """A one-row table of `measure`'s result."""
    return (
        "| model | forward+backward+double-backward ms | attack iteration ms | ratio |\n"
        "|---|---|---|---|\n"
        f"| {result['model']} | {result['baseline_ms']:.3f} | {result['iteration_ms']:.3f} | "
        f"{result['ratio']:.2f} |\n"
    )
