"""What the server sees and what only the client knows.

`GradientObservation` is the attack's only input; `ClientSecret` holds the truth and is passed
to metrics and experiments alone, so the type system carries the threat model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor


def _frozen(tensors: Mapping[str, Tensor], group: str) -> Mapping[str, Tensor]:
    for name, value in tensors.items():
        if not isinstance(value, Tensor):
            raise ValueError(
                f"{group}[{name!r}] must be a torch.Tensor, got {type(value).__name__}"
            )
        if value.is_meta:
            raise ValueError(
                f"{group}[{name!r}] is a meta-device tensor (a shape without values); pass "
                "tensors that hold the observed numbers"
            )
    return MappingProxyType({name: value.detach() for name, value in tensors.items()})


def _weights(tensors: Mapping[str, Tensor], shown: int = 8) -> str:
    names = sorted(name for name in tensors if name.endswith(".weight"))
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{names[:shown]}{more}"


@dataclass(frozen=True)
class GradientObservation:
    """The gradient of one client step, keyed by parameter name, and the model state sent.

    Shapes: ``gradients[name]`` has the shape of ``parameters[name]``.
    ``classifier`` names the final ``nn.Linear`` module (its ``.weight`` / ``.bias`` entries).
    ``num_samples`` is what the client claims to have used; the analytic attack needs 1.
    """

    gradients: Mapping[str, Tensor]
    parameters: Mapping[str, Tensor]
    classifier: str
    num_samples: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "gradients", _frozen(self.gradients, "gradients"))
        object.__setattr__(self, "parameters", _frozen(self.parameters, "parameters"))
        weight_key = f"{self.classifier}.weight"
        groups = {"gradients": self.gradients, "parameters": self.parameters}
        missing = [group for group, tensors in groups.items() if weight_key not in tensors]
        if missing:
            present = "; ".join(
                f"weights in {group}: {_weights(groups[group])}" for group in missing
            )
            raise ValueError(
                f"classifier={self.classifier!r}: {weight_key!r} is not in "
                f"{' and not in '.join(missing)}; {present}"
            )
        for name, grad in self.gradients.items():
            if name in self.parameters and grad.shape != self.parameters[name].shape:
                raise ValueError(
                    f"gradients[{name!r}] has shape {tuple(grad.shape)}, expected "
                    f"{tuple(self.parameters[name].shape)} (the parameter's shape)"
                )
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")

    @property
    def weight(self) -> Tensor:
        """Classifier weight W, shape (C, m)."""
        return self.parameters[f"{self.classifier}.weight"]

    @property
    def weight_grad(self) -> Tensor:
        """dL/dW of the classifier, shape (C, m)."""
        return self.gradients[f"{self.classifier}.weight"]

    @property
    def bias(self) -> Tensor | None:
        """Classifier bias b, shape (C,), or None for a bias-free classifier."""
        return self.parameters.get(f"{self.classifier}.bias")

    @property
    def bias_grad(self) -> Tensor | None:
        """dL/db of the classifier, shape (C,), or None."""
        return self.gradients.get(f"{self.classifier}.bias")

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @classmethod
    def from_update(
        cls,
        before: Mapping[str, Tensor],
        after: Mapping[str, Tensor],
        lr: float,
        *,
        classifier: str,
        num_samples: int = 1,
    ) -> GradientObservation:
        """Recover the gradient from one FedSGD update: ``grad = (before - after) / lr``.

        This is what a server actually receives: the client's new parameters after one plain
        SGD step (no momentum, no weight decay) with learning rate ``lr``.
        """
        if not lr > 0:
            raise ValueError(f"lr must be > 0 (the client's SGD learning rate), got {lr}")
        missing = sorted(set(before) ^ set(after))
        if missing:
            raise ValueError(f"before and after must hold the same parameters; differ in {missing}")
        gradients = {
            name: (before[name].to(torch.float64) - after[name].to(torch.float64)) / lr
            for name in before
        }
        return cls(gradients, dict(before), classifier=classifier, num_samples=num_samples)


@dataclass(frozen=True)
class ClientSecret:
    """The truth of one client step. Only `metrics/` and `experiments/` may receive it.

    Shapes: ``inputs`` (B, *input_shape); ``soft_label`` (B, C); ``features`` (B, m), the input of
    the classifier captured by a forward hook. ``family`` and ``family_params`` describe how
    the label was made (for example ``{"target": 3, "eps": 0.2}``).
    """

    inputs: Tensor
    soft_label: Tensor
    features: Tensor
    family: str = "unknown"
    family_params: Mapping[str, Any] = field(default_factory=dict)
