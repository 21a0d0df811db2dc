"""Simulate the update a real client sends: one ``torch.optim`` step on one input.

The client computes the soft-label cross-entropy gradient (as `simulate_client_step`), may clip
it, and steps its optimizer, freshly built as Flower's clients do each round. The server gets
the parameters before and after; `GradientObservation.from_update` reads the gradient back.

Clipping, as Opacus clips each per-sample gradient: g <- g * min(1, max_grad_norm / (||g|| +
1e-6)) with ||g|| over all trainable parameters ("max-grad-norm"); or a factor drawn uniformly
from (0.01, 1] ("factor", an unknown rescale such as a learning rate the server does not know).
Either way the server sees k dL/dW with k unknown to it. DP-SGD then adds Gaussian noise of
std ``noise_multiplier * max_grad_norm`` to every entry (Opacus, one sample per batch).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from gradleak.client.observation import ClientSecret, GradientObservation
from gradleak.client.simulate import simulate_client_step
from gradleak.labels import SoftLabel
from gradleak.registry import Registry

#: Opacus' guard against a zero norm in its clip factor.
OPACUS_NORM_EPS = 1e-6
#: The "factor" clipping draws k uniformly from (FACTOR_LOW, 1].
FACTOR_LOW = 0.01

#: optimizer key -> builder(parameters, settings) of the real torch.optim optimizer.
CLIENT_OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("client optimizer")
CLIENT_OPTIMIZERS.add(
    "sgd",
    lambda params, s: torch.optim.SGD(
        params, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov, weight_decay=s.weight_decay
    ),
)
CLIENT_OPTIMIZERS.add(
    "adam", lambda params, s: torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)
)
CLIENT_OPTIMIZERS.add(
    "adamw", lambda params, s: torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
)
#: How the client rescales its gradient before the step.
CLIPPINGS = ("none", "factor", "max-grad-norm")


@dataclass(frozen=True)
class ClientUpdate:
    """The client's step: ``optimizer`` (a key of CLIENT_OPTIMIZERS) and its settings, and
    ``clipping`` (one of CLIPPINGS; ``max_grad_norm`` for "max-grad-norm")."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    clipping: str = "none"
    max_grad_norm: float = 1.0
    noise_multiplier: float = 0.0

    def __post_init__(self) -> None:
        CLIENT_OPTIMIZERS[self.optimizer]  # an unknown key lists the known ones
        if self.clipping not in CLIPPINGS:
            raise ValueError(
                f"clipping must be one of {', '.join(CLIPPINGS)}, got {self.clipping!r}"
            )
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if self.noise_multiplier and self.clipping != "max-grad-norm":
            raise ValueError(
                "noise_multiplier (DP-SGD) scales with max_grad_norm: set clipping = "
                '"max-grad-norm"'
            )
        if self.optimizer != "sgd" and (self.momentum or self.nesterov):
            raise ValueError(
                f"momentum/nesterov are SGD settings; optimizer {self.optimizer!r} has its own"
            )

    def describe(self) -> str:
        """A short row name: "sgd lr=0.1 momentum=0.9 nesterov, clipped (factor)"."""
        text = f"{self.optimizer} lr={self.lr:g}"
        if self.momentum:
            text += f" momentum={self.momentum:g}" + (" nesterov" if self.nesterov else "")
        if self.weight_decay:
            text += f" wd={self.weight_decay:g}"
        if self.clipping == "factor":
            text += f", clipped by k in ({FACTOR_LOW:g}, 1]"
        elif self.clipping == "max-grad-norm":
            text += f", clipped to max_grad_norm={self.max_grad_norm:g}"
        if self.noise_multiplier:
            text += f", noise_multiplier={self.noise_multiplier:g}"
        return text


def clip_factor(grads: Iterable[Tensor], update: ClientUpdate, rng: np.random.Generator) -> float:
    """The factor k the client multiplies its gradient by (1.0 without clipping)."""
    if update.clipping == "factor":
        return float(1.0 - (1.0 - FACTOR_LOW) * rng.random())
    if update.clipping == "max-grad-norm":
        norm = float(torch.sqrt(sum(g.double().square().sum() for g in grads)))
        return min(1.0, update.max_grad_norm / (norm + OPACUS_NORM_EPS))
    return 1.0


def client_update(
    model: nn.Module,
    inputs: Tensor,
    soft_label: SoftLabel | Tensor,
    update: ClientUpdate,
    *,
    rng: np.random.Generator,
) -> tuple[GradientObservation, ClientSecret, float]:
    """One optimizer step of a copy of ``model`` on ``inputs``; the server's view of it.

    Returns the observation `from_update` reads back from (before, after), the client's
    secret, and the clip factor k it applied (the truth the fitted ``gradient_scale`` is
    compared with). ``model`` itself is not changed.
    """
    client = copy.deepcopy(model)
    exact, secret = simulate_client_step(client, inputs, soft_label)
    named = {name: p for name, p in client.named_parameters() if p.requires_grad}
    factor = clip_factor(exact.gradients.values(), update, rng)
    before = {name: p.detach().clone() for name, p in named.items()}
    optimizer = CLIENT_OPTIMIZERS[update.optimizer](list(named.values()), update)
    noise_std = update.noise_multiplier * update.max_grad_norm
    generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
    with torch.no_grad():
        for name, parameter in named.items():
            grad = exact.gradients[name].double() * factor
            if noise_std:
                grad += noise_std * torch.randn(grad.shape, generator=generator, dtype=grad.dtype)
            parameter.grad = grad.to(parameter.dtype)
    optimizer.step()
    after = {name: p.detach().clone() for name, p in named.items()}
    observation = GradientObservation.from_update(
        before,
        after,
        update.lr,
        optimizer=update.optimizer,
        momentum=update.momentum,
        nesterov=update.nesterov,
        weight_decay=update.weight_decay,
        classifier=exact.classifier,
        num_samples=exact.num_samples,
    )
    return observation, secret, factor
