"""The gradient-matching loop shared by DLG and inverting gradients.

A dummy input (and, for DLG, a dummy label) is optimised so that the gradient it produces on
the server's model matches the observed one. The objective is a gradient distance plus
optional total variation and a feature-matching term that pulls the dummy's last-layer input
toward the recovered feature (Wang, Liang & He, ICLR 2024, Sec. 5.3, "ours-feature").

Paper: Zhu et al., NeurIPS 2019 (DLG); Geiping et al., NeurIPS 2020 (inverting gradients).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn import functional
from tqdm import tqdm

from gradleak.client.observation import GradientObservation
from gradleak.reconstruction.matching_settings import MatchingSettings
from gradleak.reconstruction.result import Reconstruction


def total_variation(images: Tensor) -> Tensor:
    """Mean absolute difference of neighbouring pixels, both directions (Geiping et al.).

    Shapes: (B, C, H, W) -> scalar.
    """
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    vertical = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return horizontal + vertical


def gradient_distance(
    gradients: Sequence[Tensor], targets: Sequence[Tensor], *, distance: str, target_norm: Tensor
) -> Tensor:
    """Euclidean: sum ||g - t||^2. Cosine: 1 - <g, t> / (||g|| ||t||) over all layers jointly.

    Shapes: matching sequences of parameter-shaped tensors -> scalar.
    """
    if distance == "euclidean":
        return sum(((g - t) ** 2).sum() for g, t in zip(gradients, targets, strict=True))
    dot = sum((g * t).sum() for g, t in zip(gradients, targets, strict=True))
    norm = torch.sqrt(sum((g * g).sum() for g in gradients))
    return 1 - dot / (norm * target_norm + 1e-30)


@dataclass(frozen=True)
class MatchingProblem:
    """The observed gradient, the server's parameters and what the loop may use besides.

    ``label`` fixes the dummies' soft labels (None: optimised jointly, as in DLG); ``feature``
    holds the recovered last-layer inputs for the feature term; ``bounds`` the per-channel box
    of valid normalised pixels. B > 1 dummies are matched jointly to a mean-reduced batch
    gradient, row b of ``label`` and ``feature`` belonging to dummy b.

    Shapes: ``input_shape`` (B, C, H, W); ``label`` (B, C'); ``feature`` (B, m); ``bounds``
    two (1, C, 1, 1) tensors.
    """

    model: nn.Module
    parameters: dict[str, Tensor]
    names: tuple[str, ...]
    targets: tuple[Tensor, ...]
    classifier: nn.Module
    input_shape: tuple[int, ...]
    label: Tensor | None
    feature: Tensor | None
    bounds: tuple[Tensor, Tensor] | None


def build_problem(
    observation: GradientObservation,
    model: nn.Module,
    *,
    input_shape: tuple[int, ...],
    label: Tensor | None,
    feature: Tensor | None,
    bounds: tuple[Tensor, Tensor] | None,
) -> MatchingProblem:
    """Pair the model's parameters with the observation's, by name; the server's sent values
    are used (not whatever the module holds). Errors name what is missing."""
    batch = input_shape[0]
    label = None if label is None else label.reshape(-1, label.shape[-1])
    feature = None if feature is None else feature.reshape(-1, feature.shape[-1])
    for what, value in (("labels", label), ("features", feature)):
        if value is not None and value.shape[0] != batch:
            raise ValueError(
                f"{what} hold {value.shape[0]} samples, the observation {batch}: give one row "
                "per sample of the batch"
            )
    names = tuple(name for name, _ in model.named_parameters())
    missing = [name for name in names if name not in observation.gradients]
    if missing:
        raise ValueError(
            f"observation lacks gradients for {missing[:3]}...; gradient matching needs every "
            "parameter's gradient (save observations without classifier_only)"
        )
    dtype = next(model.parameters()).dtype
    parameters = {
        name: observation.parameters.get(name, value).detach().to(dtype).requires_grad_(True)
        for name, value in model.named_parameters()
    }
    targets = tuple(observation.gradients[name].detach().to(dtype) for name in names)
    classifier = dict(model.named_modules())[observation.classifier]
    return MatchingProblem(
        model=model,
        parameters=parameters,
        names=names,
        targets=targets,
        classifier=classifier,
        input_shape=input_shape,
        label=None if label is None else label.detach().to(dtype),
        feature=None if feature is None else feature.detach().to(dtype),
        bounds=bounds,
    )


def _objective(
    problem: MatchingProblem, settings: MatchingSettings, captured: list[Tensor]
) -> Callable[[Tensor, Tensor | None], Tensor]:
    """Build objective(dummy_input, dummy_label_logits) -> scalar, reusing fixed tensors.

    ``captured`` receives the classifier's input from a forward hook the caller installs.
    """
    leaves = [problem.parameters[name] for name in problem.names]
    target_norm = torch.sqrt(sum((t * t).sum() for t in problem.targets))
    feature_norm = None if problem.feature is None else (problem.feature**2).sum()

    def objective(dummy: Tensor, label_logits: Tensor | None) -> Tensor:
        captured.clear()
        logits = functional_call(problem.model, problem.parameters, (dummy,))
        label = problem.label if label_logits is None else functional.softmax(label_logits, -1)
        # The client's mean-reduced cross-entropy (B = 1: the single input's loss).
        loss = -(label * functional.log_softmax(logits, dim=-1)).sum() / logits.shape[0]
        gradients = torch.autograd.grad(loss, leaves, create_graph=True)
        total = gradient_distance(
            gradients, problem.targets, distance=settings.distance, target_norm=target_norm
        )
        if settings.tv_weight > 0:
            total = total + settings.tv_weight * total_variation(dummy)
        if settings.feature_weight > 0:
            gap = ((captured[0] - problem.feature) ** 2).sum() / feature_norm
            total = total + settings.feature_weight * gap
        return total

    return objective


def _start(problem: MatchingProblem, generator: torch.Generator) -> tuple[Tensor, Tensor | None]:
    dtype = problem.targets[0].dtype
    dummy = torch.randn(problem.input_shape, generator=generator, dtype=dtype)
    if problem.bounds is not None:
        dummy = torch.maximum(torch.minimum(dummy, problem.bounds[1]), problem.bounds[0])
    label_logits = None
    if problem.label is None:
        classes = problem.classifier.out_features
        batch = problem.input_shape[0]
        label_logits = torch.randn(batch, classes, generator=generator, dtype=dtype)
        label_logits.requires_grad_(True)
    return dummy.requires_grad_(True), label_logits


class RestartResult(NamedTuple):
    """The lowest-objective iterate of one restart and the trace that led there.

    Shapes: ``inputs`` like the problem's input; ``label_logits`` (B, C) or None.
    """

    objective: float
    inputs: Tensor
    label_logits: Tensor | None
    history: list[float]


def _optimizer(
    variables: list[Tensor], settings: MatchingSettings
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimizer ``settings`` names and, for Adam, its 10x drops at 3/8, 5/8 and 7/8."""
    if settings.optimizer == "lbfgs":
        lbfgs = torch.optim.LBFGS(
            variables, lr=settings.learning_rate, max_iter=1, line_search_fn="strong_wolfe"
        )
        return lbfgs, None
    adam = torch.optim.Adam(variables, lr=settings.learning_rate)
    milestones = [round(settings.iterations * f) for f in (3 / 8, 5 / 8, 7 / 8)]
    return adam, torch.optim.lr_scheduler.MultiStepLR(adam, milestones, gamma=0.1)


def _restart(
    objective: Callable[[Tensor, Tensor | None], Tensor],
    problem: MatchingProblem,
    settings: MatchingSettings,
    generator: torch.Generator,
    bar: tqdm,
) -> RestartResult:
    """One optimisation from a random start; returns the lowest-objective iterate."""
    dummy, label_logits = _start(problem, generator)
    variables = [dummy] if label_logits is None else [dummy, label_logits]
    best = RestartResult(math.inf, dummy.detach().clone(), label_logits, [])
    history: list[float] = []
    optimizer, schedule = _optimizer(variables, settings)

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        value = objective(dummy, label_logits)
        value.backward()
        return value

    for _ in range(settings.iterations):
        # step() returns the objective at the point it started from: keep that point.
        before = (dummy.detach().clone(), _detached(label_logits))
        value = float(optimizer.step(closure).detach())
        history.append(value)
        if value < best.objective:
            best = RestartResult(value, *before, history)
        if not math.isfinite(value):
            break
        if schedule is not None:
            schedule.step()
            if problem.bounds is not None:
                with torch.no_grad():
                    dummy.copy_(
                        torch.maximum(torch.minimum(dummy, problem.bounds[1]), problem.bounds[0])
                    )
        bar.update(1)
    return best._replace(history=history)


def _detached(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.detach().clone()


def run_matching(
    problem: MatchingProblem, settings: MatchingSettings, *, attack: str
) -> Reconstruction:
    """Optimise from ``settings.restarts`` seeded random starts; keep the lowest objective.

    Shapes: returns inputs shaped ``problem.input_shape``.
    """
    captured: list[Tensor] = []
    hook = problem.classifier.register_forward_hook(
        lambda _module, args, _out: captured.append(args[0])
    )
    objective = _objective(problem, settings, captured)
    generator = torch.Generator().manual_seed(settings.seed)
    results: list[RestartResult] = []
    total = settings.restarts * settings.iterations
    try:
        with tqdm(total=total, desc=attack, disable=not settings.progress, leave=False) as bar:
            for _ in range(settings.restarts):
                results.append(_restart(objective, problem, settings, generator, bar))
    finally:
        hook.remove()
    index = min(range(len(results)), key=lambda i: results[i].objective)
    best = results[index]
    finite = math.isfinite(best.objective)
    diagnostics = {
        "restart_objectives": [result.objective for result in results],
        "best_restart": index,
    }
    if best.label_logits is not None:
        labels = functional.softmax(best.label_logits, -1)
        diagnostics["label"] = labels[0] if labels.shape[0] == 1 else labels
    return Reconstruction(
        inputs=best.inputs,
        objective=best.objective,
        iterations=len(best.history),
        converged=finite,
        history=tuple(best.history),
        attack=attack,
        reason="" if finite else "the objective became non-finite",
        diagnostics=diagnostics,
    )
