"""The gradient-matching loop shared by DLG and inverting gradients.

A dummy input (and, for DLG, a dummy label) is optimised so that the gradient it produces on
the server's model matches the observed one. The objective is a gradient distance plus
optional total variation and a feature-matching term that pulls the dummy's last-layer input
toward the recovered feature (Wang, Liang & He, ICLR 2024, Sec. 5.3, "ours-feature").
Several Adam restarts run as one batched problem (`matching_batched.py`); L-BFGS, one
restart, and the reference run them one after another here. What both share (optimizer,
clamp, best-iterate bookkeeping) lives in `matching_restarts.py`, the terms in
`matching_terms.py`.

Paper: Zhu et al., NeurIPS 2019 (DLG); Geiping et al., NeurIPS 2020 (inverting gradients).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn import functional
from tqdm import tqdm

from gradleak.client.observation import GradientObservation
from gradleak.reconstruction.matching_batched import (
    SEPARABLE_OPTIMIZERS,
    restarts_per_chunk,
    run_batched_restarts,
)
from gradleak.reconstruction.matching_restarts import (
    RestartResult,
    RestartTrace,
    clamp_to_box,
    detached_copy,
    make_optimizer,
)
from gradleak.reconstruction.matching_settings import MatchingSettings
from gradleak.reconstruction.matching_terms import (
    gradient_distance,
    total_variation,
    weighted_objective,
)
from gradleak.reconstruction.result import Reconstruction

__all__ = [
    "MatchingProblem",
    "RestartResult",
    "build_problem",
    "gradient_distance",
    "run_matching",
    "total_variation",
]


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
        feature = (captured[0], problem.feature, feature_norm) if captured else None
        return weighted_objective(
            gradients,
            problem.targets,
            dummy,
            settings,
            target_norm=target_norm,
            feature=feature,
        )

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


def _restart(
    objective: Callable[[Tensor, Tensor | None], Tensor],
    problem: MatchingProblem,
    settings: MatchingSettings,
    start: tuple[Tensor, Tensor | None],
    bar: tqdm,
) -> RestartResult:
    """One optimisation from ``start``; returns the lowest-objective iterate."""
    dummy, label_logits = start
    variables = [dummy] if label_logits is None else [dummy, label_logits]
    trace = RestartTrace(dummy.detach().clone(), detached_copy(label_logits))
    optimizer, schedule = make_optimizer(variables, settings)

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        value = objective(dummy, label_logits)
        # Only the variables' gradient: the parameters' (second-order) one is never read.
        value.backward(inputs=variables)
        return value

    for _ in range(settings.iterations):
        # step() returns the objective at the point it started from: keep that point.
        before = (dummy.detach().clone(), detached_copy(label_logits))
        if not trace.record(float(optimizer.step(closure).detach()), *before):
            break
        if schedule is not None:
            schedule.step()
            clamp_to_box(dummy, problem.bounds)
        bar.update(1)
    return trace.result()


def _batchable(problem: MatchingProblem, settings: MatchingSettings) -> bool:
    """Whether the restarts may run as one batch: more than one, a separable optimizer, a
    stateless, deterministic forward pass (no module in training mode: BatchNorm would update
    its running statistics and dropout draw from the global generator, per restart), and a
    model small enough to evaluate two restarts at once."""
    training = any(module.training for module in problem.model.modules())
    separable = settings.optimizer in SEPARABLE_OPTIMIZERS
    several = min(settings.restarts, restarts_per_chunk(problem)) > 1
    return several and separable and not training


def run_matching(
    problem: MatchingProblem,
    settings: MatchingSettings,
    *,
    attack: str,
    batch_restarts: bool = True,
) -> Reconstruction:
    """Optimise from ``settings.restarts`` seeded random starts; keep the lowest objective.

    With ``batch_restarts`` (the default), several restarts, Adam and a model in eval mode,
    the restarts run as one batched problem (`matching_batched`, evaluated in chunks of
    `restarts_per_chunk`), with the results of running them one by one up to floating-point
    reduction order; otherwise (one restart, L-BFGS, a model in training mode or too large
    for two restarts at once, or ``batch_restarts=False``, the reference) one after another.
    Shapes: returns inputs shaped ``problem.input_shape``.
    """
    captured: list[Tensor] = []
    hook = problem.classifier.register_forward_hook(
        lambda _module, args, _out: captured.append(args[0])
    )
    generator = torch.Generator().manual_seed(settings.seed)
    starts = [_start(problem, generator) for _ in range(settings.restarts)]
    total = settings.restarts * settings.iterations
    try:
        with tqdm(total=total, desc=attack, disable=not settings.progress, leave=False) as bar:
            if batch_restarts and _batchable(problem, settings):
                results = run_batched_restarts(problem, settings, starts, captured, bar)
            else:
                objective = _objective(problem, settings, captured)
                results = [_restart(objective, problem, settings, one, bar) for one in starts]
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
