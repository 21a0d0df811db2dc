"""All restarts of one gradient-matching run as one batched problem (Adam only).

R restarts are R independent problems, and Adam, its step drops and the box clamp act
elementwise: stacking the R dummies into one (R, B, C, H, W) variable and minimising the sum
of the R objectives gives every restart its own gradient, hence its own Adam trajectory,
while the model runs once per chunk of restarts on that many times the batch, sharing the
per-operation overhead that dominates small models. Each restart's objective is the
one-restart objective of `matching.py`, written with `torch.func` (the parameter gradient by
`grad`, differentiated again by the outer backward) and mapped over restarts by `vmap`.
L-BFGS is not separable (one line search over all variables), so it stays sequential.

Paper: Geiping et al., NeurIPS 2020 (restarts, best iterate); Wang, Liang & He, ICLR 2024,
Sec. 5.3 (feature term).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.func import functional_call
from torch.nn import functional
from tqdm import tqdm

from gradleak.reconstruction.matching_restarts import (
    RestartResult,
    RestartTrace,
    clamp_to_box,
    detached_copy,
    make_optimizer,
)
from gradleak.reconstruction.matching_settings import MatchingSettings
from gradleak.reconstruction.matching_terms import weighted_objective

if TYPE_CHECKING:
    from gradleak.reconstruction.matching import MatchingProblem

#: Optimizers whose update of one restart's variables reads only that restart's gradient.
SEPARABLE_OPTIMIZERS = frozenset({"adam"})

#: At most this many parameter-gradient elements (over the restarts of one chunk) are
#: computed at once, so batching runs only where it pays: a small model's iteration is mostly
#: per-operation overhead, which the restarts share (LeNet: 10 restarts cost 2.2x one), while a
#: large model's is compute and memory traffic, which they cannot share: ResNet18 (11M
#: parameters, 2-core CPU), 10 restarts x 3 iterations took 3.6 s in one chunk, 2.8 s in chunks
#: of 3 and 2.7 s one by one, so a model above 2^22 parameters (two restarts would exceed
#: this) runs them one by one. It also bounds memory.
BATCH_ELEMENTS = 1 << 23


def restarts_per_chunk(problem: MatchingProblem) -> int:
    """How many restarts one batched evaluation holds (at least 1): a model too large for
    two is better run one restart at a time, without the batching overhead."""
    parameters = sum(value.numel() for value in problem.parameters.values())
    return max(1, BATCH_ELEMENTS // max(parameters, 1))


def batched_objective(
    problem: MatchingProblem, settings: MatchingSettings, captured: list[Tensor]
) -> Callable[[Tensor, Tensor | None], Tensor]:
    """Build objective(dummies, label_logits) -> the R restarts' objectives.

    ``captured`` receives the classifier's input from a forward hook the caller installs; the
    hook fires inside the transforms and its tensor leaves them as ``grad``'s auxiliary output.
    Restarts are evaluated `restarts_per_chunk` at a time.
    Shapes: dummies (R, B, C, H, W); label_logits (R, B, C') or None -> (R,).
    """
    parameters = {name: problem.parameters[name].detach() for name in problem.names}
    target_norm = torch.sqrt(sum((t * t).sum() for t in problem.targets))
    feature_norm = None if problem.feature is None else (problem.feature**2).sum()

    def client_loss(
        weights: dict[str, Tensor], dummy: Tensor, label: Tensor
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        captured.clear()
        logits = functional_call(problem.model, weights, (dummy,))
        # The client's mean-reduced cross-entropy (B = 1: the single input's loss).
        loss = -(label * functional.log_softmax(logits, dim=-1)).sum() / logits.shape[0]
        features = tuple(captured)
        captured.clear()
        return loss, features

    parameter_gradient = torch.func.grad(client_loss, has_aux=True)

    def one_restart(dummy: Tensor, label_logits: Tensor | None) -> Tensor:
        label = problem.label if label_logits is None else functional.softmax(label_logits, -1)
        gradients, features = parameter_gradient(parameters, dummy, label)
        feature = (features[0], problem.feature, feature_norm) if features else None
        return weighted_objective(
            [gradients[name] for name in problem.names],
            problem.targets,
            dummy,
            settings,
            target_norm=target_norm,
            feature=feature,
        )

    return torch.vmap(
        one_restart,
        in_dims=(0, None if problem.label is not None else 0),
        chunk_size=restarts_per_chunk(problem),
    )


def run_batched_restarts(
    problem: MatchingProblem,
    settings: MatchingSettings,
    starts: Sequence[tuple[Tensor, Tensor | None]],
    captured: list[Tensor],
    bar: tqdm,
) -> list[RestartResult]:
    """Optimise every start at once with Adam; return each restart's lowest-objective iterate.

    Restart r follows the trajectory it would follow alone: same start, same Adam state and
    step drops, same clamp. It is recorded until its objective becomes non-finite, where the
    one-by-one loop stops it; its variables are still stepped with the others after that, but
    never read again (nothing mixes restarts, so they cannot spoil the others).
    Shapes: each start (B, C, H, W) and (B, C') or None.
    """
    dummies = torch.stack([dummy.detach() for dummy, _ in starts]).requires_grad_(True)
    label_logits = None
    if problem.label is None:
        label_logits = torch.stack([logits.detach() for _, logits in starts])
        label_logits.requires_grad_(True)
    variables = [dummies] if label_logits is None else [dummies, label_logits]
    traces = [
        RestartTrace(dummy.detach().clone(), detached_copy(logits)) for dummy, logits in starts
    ]
    objective = batched_objective(problem, settings, captured)
    optimizer, schedule = make_optimizer(variables, settings)
    for _ in range(settings.iterations):
        optimizer.zero_grad(set_to_none=True)
        values = objective(dummies, label_logits)
        # Restart r's objective depends on restart r's variables only: the sum's gradient
        # with respect to them is its own.
        values.sum().backward(inputs=variables)
        for index, value in enumerate(values.detach().tolist()):
            trace = traces[index]
            if trace.active:
                logits = None if label_logits is None else label_logits[index]
                trace.record(value, dummies[index].detach().clone(), detached_copy(logits))
        active = sum(trace.active for trace in traces)
        if not active:
            break
        optimizer.step()
        if schedule is not None:
            schedule.step()
        clamp_to_box(dummies, problem.bounds)
        bar.update(active)
    return [trace.result() for trace in traces]
