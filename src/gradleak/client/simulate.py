"""Simulate one FedSGD client step: the soft-label cross-entropy gradient of one input.

Paper: Wang, Liang & He, ICLR 2024, Sec. 3 (threat model): the client computes
L = -sum_i y_i log softmax(f(x))_i on one input with a soft label y and sends dL/dtheta.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradleak.client.observation import ClientSecret, GradientObservation
from gradleak.labels import SoftLabel


def find_classifier(model: nn.Module) -> str:
    """Name of the module producing the logits: ``model.classifier_name`` or the last Linear."""
    declared = getattr(model, "classifier_name", None)
    if isinstance(declared, str):
        return declared
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError("model has no nn.Linear module; pass classifier=NAME of the final layer")
    return linears[-1]


def _check_not_meta(model: nn.Module, inputs: Tensor, soft_label: SoftLabel | Tensor) -> None:
    """Meta-device tensors have shapes but no values: no gradient can be computed from them."""
    rows = soft_label.probabilities if isinstance(soft_label, SoftLabel) else soft_label
    for name, value in (("inputs", inputs), ("soft_label", rows)):
        if isinstance(value, Tensor) and value.is_meta:
            raise ValueError(
                f"{name} is a meta-device tensor (a shape without values); pass real data"
            )
    meta = [name for name, value in model.named_parameters() if value.is_meta]
    if meta:
        raise ValueError(
            f"model has {len(meta)} meta-device parameters (first {meta[0]!r}): shapes without "
            "values; build or load its weights before simulating a client step"
        )


def _as_batch(inputs: Tensor) -> Tensor:
    return inputs.unsqueeze(0) if inputs.dim() in (1, 3) else inputs


def _label_rows(soft_label: SoftLabel | Tensor, batch: int) -> tuple[Tensor, str, dict]:
    if isinstance(soft_label, SoftLabel):
        rows, family, params = soft_label.probabilities, soft_label.family, dict(soft_label.params)
    else:
        rows, family, params = soft_label, "unknown", {}
    rows = rows.unsqueeze(0) if rows.dim() == 1 else rows
    if rows.shape[0] != batch:
        raise ValueError(
            f"soft_label has {rows.shape[0]} rows but inputs hold {batch} samples; give one "
            "label per input"
        )
    if not torch.isfinite(rows).all() or (rows < 0).any():
        raise ValueError("soft_label must hold finite, non-negative probabilities")
    sums = rows.sum(dim=-1).double()
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
        raise ValueError(f"soft_label rows must sum to 1, got sums {sums.tolist()}")
    return rows, family, params


def simulate_client_step(
    model: nn.Module,
    inputs: Tensor,
    soft_label: SoftLabel | Tensor,
    *,
    classifier: str | None = None,
) -> tuple[GradientObservation, ClientSecret]:
    """Compute the gradient a client sends for ``inputs`` labelled ``soft_label``.

    The model runs in eval mode (its mode is restored afterwards), in its own dtype. The loss is
    averaged over the batch as PyTorch does; the paper's attack assumes a batch of one.

    Shapes: ``inputs`` (*input_shape) or (B, *input_shape); ``soft_label`` (C,) or (B, C).
    """
    _check_not_meta(model, inputs, soft_label)
    classifier = classifier or find_classifier(model)
    head = dict(model.named_modules()).get(classifier)
    if not isinstance(head, nn.Linear):
        raise ValueError(f"classifier={classifier!r} is not an nn.Linear module of the model")
    batch = _as_batch(inputs)
    rows, family, params = _label_rows(soft_label, batch.shape[0])
    dtype = head.weight.dtype
    batch, rows = batch.to(dtype), rows.to(dtype)

    captured: list[Tensor] = []
    hook = head.register_forward_hook(lambda _m, args, _out: captured.append(args[0].detach()))
    was_training = model.training
    model.eval()
    try:
        logits = model(batch)
        if logits.shape != rows.shape:
            raise ValueError(
                f"model returns logits of shape {tuple(logits.shape)}, soft_label has "
                f"{tuple(rows.shape)}"
            )
        loss = -(rows * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, [p for _, p in named])
    finally:
        hook.remove()
        model.train(was_training)

    observation = GradientObservation(
        gradients={name: g for (name, _), g in zip(named, grads, strict=True)},
        parameters={name: p.detach().clone() for name, p in named},
        classifier=classifier,
        num_samples=batch.shape[0],
    )
    secret = ClientSecret(
        inputs=batch.detach().clone(),
        soft_label=rows.detach().clone(),
        features=captured[0].flatten(1),
        family=family,
        family_params=params,
    )
    return observation, secret
