"""Audit a client trained with Opacus (DP-SGD): the update it sends, and its per-sample
gradients before and after clipping for white-box evaluation, with Opacus's epsilon.

`capture_step` runs one step of a model and optimizer made private by
``opacus.PrivacyEngine.make_private`` and keeps what Opacus computed: the per-sample
gradients (``grad_sample``), the per-sample clip factors min(1, C / (||g_i|| + 1e-6)) of its
flat clipping, the clipped sum (``summed_grad``), the noisy mean it stepped with, and the
parameters before and after. `audit_private_step` audits what the server receives (the
update: per-sample clipping scales each atom by its own factor, which the batch attack's
unknown scale absorbs; the noise is what stops it) and, white-box, each sample's raw and
clipped gradient (a single-input problem each). `private_client_step` builds the Opacus
client for a batch and takes that step. Needs ``pip install 'gradleak[opacus]'``.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from opacus import PrivacyEngine
from opacus.optimizers import DPOptimizer
from opacus.validators.errors import UnsupportedModuleError
from torch import Tensor, nn

from gradleak.client.observation import GradientObservation, strip_wrapper_prefix
from gradleak.client.updates import CLIENT_OPTIMIZERS, ClientUpdate
from gradleak.integrations.audit import (
    DEFAULT_ATTACKS,
    AuditRecord,
    TrainSettings,
    audit_observation,
    audit_update,
)
from gradleak.training.trainer import soft_cross_entropy

#: Opacus's guard against a zero norm in its clip factor (DPOptimizer.clip_and_accumulate).
NORM_EPS = 1e-6
#: Opacus's warnings that say nothing about the audit: the non-secure RNG of experiments,
#: PyTorch's note that the inputs need no gradient, and the RDP order at the edge of its range
#: (for tiny noise, where epsilon is astronomically large either way).
QUIET = (
    "Secure RNG turned off",
    "Full backward hook is firing",
    "Optimal order is the smallest alpha",
)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the warnings of QUIET (every other warning still shows)."""
    with warnings.catch_warnings():
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
        yield


@dataclass(frozen=True)
class PrivateStep:
    """One DP-SGD step as Opacus took it (names without Opacus's ``_module.`` prefix).

    Shapes: ``before``, ``after``, ``sent_gradient`` by parameter name, each the parameter's
    shape (``sent_gradient`` is the noisy mean Opacus stepped with); ``per_sample`` by name,
    (B, *shape); ``clip_factors`` (B,). ``lr`` and ``optimizer`` are the client's.
    """

    before: dict[str, Tensor]
    after: dict[str, Tensor]
    per_sample: dict[str, Tensor]
    clip_factors: Tensor
    clipped_sum: dict[str, Tensor]
    sent_gradient: dict[str, Tensor]
    num_samples: int
    lr: float
    optimizer: str
    noise_multiplier: float
    max_grad_norm: float

    def sample(self, index: int, *, clipped: bool) -> GradientObservation:
        """Sample ``index``'s own gradient (white-box), raw or times its clip factor."""
        factor = float(self.clip_factors[index]) if clipped else 1.0
        gradients = {name: grad[index] * factor for name, grad in self.per_sample.items()}
        return GradientObservation(gradients, self.before, num_samples=1)


def _named(module: nn.Module) -> dict[str, nn.Parameter]:
    return {
        strip_wrapper_prefix(name): p for name, p in module.named_parameters() if p.requires_grad
    }


def capture_step(
    module: nn.Module,
    optimizer: DPOptimizer,
    inputs: Tensor,
    targets: Tensor,
    *,
    lr: float,
    optimizer_name: str = "sgd",
    loss: Callable[[Tensor, Tensor], Tensor] = soft_cross_entropy,
) -> PrivateStep:
    """One step of an Opacus-private ``module`` (a GradSampleModule) and ``optimizer`` (a
    DPOptimizer) on a batch, keeping what Opacus computed. ``loss`` must be mean-reduced (as
    ``make_private(loss_reduction="mean")``). Shapes: ``inputs`` (B, ...), ``targets`` (B, C).
    """
    if not isinstance(optimizer, DPOptimizer):
        raise ValueError(
            f"optimizer must be Opacus's DPOptimizer (from PrivacyEngine.make_private), got "
            f"{type(optimizer).__name__}"
        )
    named = _named(module)
    before = {name: p.detach().clone() for name, p in named.items()}
    optimizer.zero_grad(set_to_none=True)
    loss(module(inputs), targets).backward()
    per_sample = {name: p.grad_sample.detach().clone() for name, p in named.items()}
    norms = torch.stack(
        [grad.reshape(len(grad), -1).norm(2, dim=-1) for grad in per_sample.values()], dim=1
    ).norm(2, dim=1)
    factors = (optimizer.max_grad_norm / (norms + NORM_EPS)).clamp(max=1.0)
    optimizer.step()
    return PrivateStep(
        before=before,
        after={name: p.detach().clone() for name, p in named.items()},
        per_sample=per_sample,
        clip_factors=factors.detach(),
        clipped_sum={name: p.summed_grad.detach().clone() for name, p in named.items()},
        sent_gradient={name: p.grad.detach().clone() for name, p in named.items()},
        num_samples=int(inputs.shape[0]),
        lr=lr,
        optimizer=optimizer_name,
        noise_multiplier=float(optimizer.noise_multiplier),
        max_grad_norm=float(optimizer.max_grad_norm),
    )


def private_client_step(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    update: ClientUpdate,
    *,
    seed: int = 0,
) -> tuple[PrivateStep, PrivacyEngine]:
    """A fresh Opacus client (``PrivacyEngine``, fixed batches of B, flat clipping to
    ``update.max_grad_norm``, ``update.noise_multiplier``) takes one step of ``update``'s
    optimizer on ``inputs`` / ``targets`` (a copy of ``model``; the original is unchanged).
    Returns the step and the engine (its accountant: ``engine.get_epsilon(delta)``)."""
    client = copy.deepcopy(model).train()  # Opacus validates a model in training mode
    dataset = torch.utils.data.TensorDataset(inputs, targets)
    loader = torch.utils.data.DataLoader(dataset, batch_size=len(dataset))
    optimizer = CLIENT_OPTIMIZERS[update.optimizer](list(client.parameters()), update)
    with quiet():
        engine = PrivacyEngine(accountant="rdp")
        try:
            private_model, private_optimizer, _loader = engine.make_private(
                module=client,
                optimizer=optimizer,
                data_loader=loader,
                noise_multiplier=update.noise_multiplier,
                max_grad_norm=update.max_grad_norm,
                poisson_sampling=False,
                noise_generator=torch.Generator().manual_seed(seed),
            )
        except UnsupportedModuleError as error:
            raise ValueError(
                f"Opacus cannot make this model private ({error}); batch norm needs "
                "opacus.validators.ModuleValidator.fix (group norm) first"
            ) from None
        step = capture_step(
            private_model,
            private_optimizer,
            inputs,
            targets,
            lr=update.lr,
            optimizer_name=update.optimizer,
        )
    return step, engine


def audit_private_step(
    step: PrivateStep,
    *,
    family: str = "auto",
    attacks: Iterable[str] = DEFAULT_ATTACKS,
    model: nn.Module | None = None,
    white_box: bool = True,
    round: int = 0,
) -> list[AuditRecord]:
    """Audit the update the client sends (``client`` "sent") and, with ``white_box``, each
    sample's own gradient before ("sample-i raw") and after ("sample-i clipped") clipping."""
    records = audit_update(
        step.before,
        step.after,
        TrainSettings(step.lr, step.optimizer),
        num_samples=step.num_samples,
        round=round,
        client="sent",
        family=family,
        attacks=attacks,
        model=model,
    )
    if white_box:
        for index in range(step.num_samples):
            for clipped, kind in ((False, "raw"), (True, "clipped")):
                records += audit_observation(
                    step.sample(index, clipped=clipped),
                    round=round,
                    client=f"sample-{index} {kind}",
                    family=family,
                    attacks=attacks,
                    model=model,
                )
    return records


__all__ = [
    "PrivateStep",
    "audit_private_step",
    "capture_step",
    "private_client_step",
]
