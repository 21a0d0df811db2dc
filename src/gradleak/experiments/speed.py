"""What a recovery costs against the client step it came from, measured in one process.

The baseline is the client's own work for the gradient the server observes: a forward pass of
the model and the backward pass to the classifier weight (``torch.autograd.grad`` of the soft
cross-entropy, one input). Each recovery path is timed warm (after one untimed call) on the
same gradients, as the median over inputs of the fastest of ``repeats`` calls, and reported as
ratios: to the client step, and to the paper's single-input known-scale path with the family
named (the cheapest the method gets). Timings on a shared CPU are noisy; ratios measured in
one process are what the table compares.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

import gradleak
from gradleak.data import load_embedded

#: name -> (model, init, embedded dataset): the settings of the speed table.
SETTINGS: dict[str, tuple[str, str, str]] = {
    "lenet C=100": ("lenet", "uniform", "embedded-cifar100"),
    "resnet18 C=100": ("resnet18", "default", "embedded-cifar100"),
    "resnet50 C=1000": ("resnet50", "default", "embedded-imagenet"),
}

#: path -> (family, scale): the single-input recovery paths of the table. The first is the
#: baseline of the "x known-scale named" column; the third (auto) is compared with the second
#: in "auto / named". ``None`` as family: the label's own family.
PATHS: dict[str, tuple[str | None, str]] = {
    "known scale, family named": (None, "known"),
    "unknown scale, family named": (None, "unknown"),
    "unknown scale, auto (default)": ("auto", "unknown"),
}

#: family -> label maker (target, other class, classes): the client's labels.
LABELS: dict[str, Callable[[int, int, int], Any]] = {
    "smoothing": lambda target, _other, classes: gradleak.labels.smoothing(target, classes, 0.1),
    "mixup": lambda target, other, classes: gradleak.labels.mixup(target, other, 0.3, classes),
    "hard": lambda target, _other, classes: gradleak.labels.one_hot(target, classes),
}


@dataclass(frozen=True)
class SpeedRow:
    """One setting, family and path: median milliseconds and the two ratios."""

    setting: str
    family: str
    path: str
    samples: int
    client_ms: float
    recovery_ms: float
    converged: int

    def ratio_to(self, baseline: float) -> float:
        return self.recovery_ms / baseline


def _fastest(function: Callable[[], Any], repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` warm calls (one untimed call first)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def _client_step(model: torch.nn.Module, inputs: torch.Tensor, label: torch.Tensor):
    weight = dict(model.named_parameters())[f"{model.classifier_name}.weight"]

    def step() -> None:
        logits = model(inputs)
        loss = -(label * torch.log_softmax(logits, -1)).sum() / logits.shape[0]
        torch.autograd.grad(loss, weight)

    return step


def single_input(
    settings: Iterable[str] = tuple(SETTINGS),
    *,
    samples: int = 8,
    repeats: int = 3,
    progress: bool = True,
) -> list[SpeedRow]:
    """Every setting x family x path of the single-input recovery, timed on ``samples``
    inputs each (the embedded images, cycled)."""
    rows: list[SpeedRow] = []
    work = [(s, f) for s in settings for f in LABELS]
    for setting, family in tqdm(work, desc="speed", disable=not progress, leave=False):
        name, init, dataset = SETTINGS[setting]
        images = load_embedded(dataset)
        classes = images.num_classes
        model = gradleak.models.build(
            name, num_classes=classes, init=init, seed=0, image_size=images.images.shape[-1]
        ).eval()
        client, recovery = [], {path: [] for path in PATHS}
        converged = dict.fromkeys(PATHS, 0)
        for index in range(samples):
            item = index % len(images.labels)
            inputs = images.normalise(images.images[item : item + 1])
            target = int(images.labels[item])
            label = LABELS[family](target, (target + 1 + index) % classes, classes)
            observation, _ = gradleak.simulate_client_step(model, inputs, label)
            row = label.probabilities.to(inputs.dtype).reshape(1, -1)
            client.append(_fastest(_client_step(model, inputs, row), repeats))
            weight, weight_grad = observation.weight, observation.weight_grad
            for path, (named, scale) in PATHS.items():
                chosen = named or family

                def recover(arrays=(weight, weight_grad), chosen=chosen, scale=scale):
                    return gradleak.recover_from_last_layer(*arrays, family=chosen, scale=scale)

                converged[path] += bool(recover().converged)
                recovery[path].append(_fastest(recover, repeats))
        for path in PATHS:
            rows.append(
                SpeedRow(
                    setting=setting,
                    family=family,
                    path=path,
                    samples=samples,
                    client_ms=1e3 * statistics.median(client),
                    recovery_ms=1e3 * statistics.median(recovery[path]),
                    converged=converged[path],
                )
            )
    return rows


def batch(
    *, batch_size: int = 8, samples: int = 5, repeats: int = 1, progress: bool = True
) -> list[SpeedRow]:
    """The batch recovery (LeNet, C = 100, hard labels, unknown scale; the family named, and
    auto) on ``samples`` batches, against the same batch's client step."""
    images = load_embedded("embedded-cifar100")
    model = gradleak.models.build("lenet", num_classes=100, init="uniform", seed=0).eval()
    families = ("hard", "auto")
    client, recovery = [], {family: [] for family in families}
    converged = dict.fromkeys(families, 0)
    for index in tqdm(range(samples), desc="speed (batch)", disable=not progress, leave=False):
        items = [(index * batch_size + k) % len(images.labels) for k in range(batch_size)]
        inputs = images.normalise(images.images[items])
        labels = torch.nn.functional.one_hot(images.labels[items].long(), 100).double()
        observation, _ = gradleak.simulate_client_step(model, inputs, labels)
        client.append(_fastest(_client_step(model, inputs, labels.to(inputs.dtype)), 3))
        for family in families:

            def recover(observation=observation, family=family):
                return gradleak.recover_batch(observation, family)

            converged[family] += bool(recover().converged)
            recovery[family].append(_fastest(recover, repeats))
    return [
        SpeedRow(
            setting="lenet C=100",
            family="hard",
            path=f"batch B={batch_size}, unknown scale, "
            + ("auto" if family == "auto" else "family named"),
            samples=samples,
            client_ms=1e3 * statistics.median(client),
            recovery_ms=1e3 * statistics.median(recovery[family]),
            converged=converged[family],
        )
        for family in families
    ]


def markdown(rows: list[SpeedRow]) -> str:
    """The ratio table: each row against its client step and against the known-scale named
    path of the same setting and family (the batch rows: of the same setting, hard labels);
    an auto row also against the named path at its scale (the family auto reports is the
    label's own when it converges)."""
    paths = list(PATHS)
    times = {(row.setting, row.family, row.path): row.recovery_ms for row in rows}
    lines = [
        "| setting | family | path | N | client step ms | recovery ms | x client step "
        "| x known-scale named | auto / named | converged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        known = times.get((row.setting, row.family, paths[0]))
        named = times.get((row.setting, row.family, paths[1])) if row.path == paths[2] else None
        lines.append(
            f"| {row.setting} | {row.family} | {row.path} | {row.samples} | "
            f"{row.client_ms:.3f} | {row.recovery_ms:.3f} | {row.ratio_to(row.client_ms):.2f} | "
            f"{'-' if known is None else f'{row.ratio_to(known):.2f}'} | "
            f"{'-' if named is None else f'{row.ratio_to(named):.2f}'} | "
            f"{row.converged}/{row.samples} |"
        )
    return "\n".join(lines) + "\n"
