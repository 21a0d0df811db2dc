"""What the server sees and what only the client knows.

`GradientObservation` is the attack's only input; `ClientSecret` holds the truth and is passed
to metrics and experiments alone, so the type system carries the threat model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gradleak.client.update_rules import UPDATE_RULES, UpdateSettings

#: Prefixes wrappers add to parameter names: Opacus' GradSampleModule, DataParallel / DDP.
WRAPPER_PREFIXES = ("_module.", "module.")
#: An update whose rounding exceeds this fraction of the step (a gradient read from parameters
#: sent in a low precision, e.g. bfloat16) carries too few digits for any label check.
PRECISION_LIMIT = 0.02


def strip_wrapper_prefix(name: str) -> str:
    """``_module.classifier.weight`` -> ``classifier.weight`` (repeatedly)."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, stripped = name[len(prefix) :], True
    return name


def _frozen(tensors: Mapping[str, Tensor | np.ndarray], group: str) -> Mapping[str, Tensor]:
    """Read-only name -> detached tensor; NumPy arrays become tensors, wrapper prefixes go."""
    frozen: dict[str, Tensor] = {}
    for name, value in tensors.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.array(value))
        if not isinstance(value, Tensor):
            raise ValueError(
                f"{group}[{name!r}] must be a torch.Tensor or a NumPy array, got "
                f"{type(value).__name__}"
            )
        if value.is_meta:
            raise ValueError(
                f"{group}[{name!r}] is a meta-device tensor (a shape without values); pass "
                "tensors that hold the observed numbers"
            )
        key = strip_wrapper_prefix(name)
        if key in frozen:
            raise ValueError(f"{group}: {name!r} and another entry both name {key!r}")
        frozen[key] = value.detach()
    return MappingProxyType(frozen)


def _weights(tensors: Mapping[str, Tensor], shown: int = 8) -> str:
    names = sorted(name for name in tensors if name.endswith(".weight"))
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{names[:shown]}{more}"


def find_head(parameters: Mapping[str, Tensor]) -> str:
    """The final linear layer's name: the last 2-D ``.weight`` whose ``.bias``, if any, has
    one entry per output row (parameter mappings keep the module order)."""
    heads = [
        name.removesuffix(".weight")
        for name, value in parameters.items()
        if name.endswith(".weight") and value.dim() == 2
    ]
    for head in reversed(heads):
        bias = parameters.get(f"{head}.bias")
        if bias is None or tuple(bias.shape) == (parameters[f"{head}.weight"].shape[0],):
            return head
    raise ValueError(
        "classifier=None: no 2-D '.weight' parameter (a linear layer) in parameters; "
        f"pass classifier=NAME of the final layer (weights: {_weights(parameters)})"
    )


@dataclass(frozen=True)
class GradientObservation:
    """The gradient of one client step, keyed by parameter name, and the model state sent.

    Shapes: ``gradients[name]`` has the shape of ``parameters[name]`` (torch tensors or NumPy
    arrays; ``_module.`` / ``module.`` prefixes of Opacus and DataParallel are dropped).
    ``classifier`` names the final linear layer (its ``.weight`` / ``.bias`` entries); None
    finds it (`find_head`). ``num_samples`` is what the client claims to have used; the
    analytic attack needs 1. ``precision`` is the gradient's relative precision when it is
    coarser than its dtype (a gradient read back from an update: `from_update`).
    ``sign_only`` marks a gradient of which only the signs are informative (an Adam step);
    ``not_identifiable``, when set, is why no label can be read from it: every method refuses.
    """

    gradients: Mapping[str, Tensor]
    parameters: Mapping[str, Tensor]
    classifier: str | None = None
    num_samples: int = 1
    precision: float | None = None
    sign_only: bool = False
    not_identifiable: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "gradients", _frozen(self.gradients, "gradients"))
        object.__setattr__(self, "parameters", _frozen(self.parameters, "parameters"))
        classifier = (
            find_head(self.parameters)
            if self.classifier is None
            else strip_wrapper_prefix(self.classifier)
        )
        object.__setattr__(self, "classifier", classifier)
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
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int):
            raise ValueError(f"num_samples must be an integer >= 1, got {self.num_samples!r}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.precision is not None and not self.precision > 0:
            raise ValueError(f"precision must be > 0 or None, got {self.precision}")

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
        before: Mapping[str, Tensor | np.ndarray],
        after: Mapping[str, Tensor | np.ndarray],
        lr: float,
        *,
        optimizer: str = "sgd",
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
        fresh_optimizer: bool = True,
        classifier: str | None = None,
        num_samples: int = 1,
        local_steps: int = 1,
    ) -> GradientObservation:
        """Read the gradient back from what a server receives: the parameters before and
        after the client's update, and the optimizer settings of its train config.

        ``optimizer`` is a key of `UPDATE_RULES` ("sgd", "adam", "adamw"): SGD (momentum,
        Nesterov, weight decay) is undone exactly; Adam keeps only signs (``sign_only``, not
        identifiable). ``fresh_optimizer=False`` (state from earlier steps) and
        ``local_steps > 1`` are not identifiable for one input's recovery: recorded in
        ``not_identifiable``, so every method refuses with that reason. ``precision`` is the
        classifier's rounding in the parameters' dtype over the size of its step,
        eps * ||after|| / ||before - after||.
        """
        settings = UpdateSettings(lr, momentum, nesterov, weight_decay, fresh_optimizer)
        rule = UPDATE_RULES[optimizer]
        if isinstance(local_steps, bool) or not isinstance(local_steps, int) or local_steps < 1:
            raise ValueError(f"local_steps must be an integer >= 1, got {local_steps!r}")
        before, after = _frozen(before, "before"), _frozen(after, "after")
        differ = sorted(set(before) ^ set(after))
        if differ:
            raise ValueError(f"before and after must hold the same parameters; differ in {differ}")
        for name in before:
            if before[name].shape != after[name].shape:
                raise ValueError(
                    f"after[{name!r}] has shape {tuple(after[name].shape)}, before has "
                    f"{tuple(before[name].shape)}"
                )
        delta = {
            name: before[name].to(torch.float64) - after[name].to(torch.float64) for name in before
        }
        head = find_head(before) if classifier is None else strip_wrapper_prefix(classifier)
        undone = rule(before, delta, settings)
        precision = _update_precision(head, after, delta)
        reasons = [undone.not_identifiable] if undone.not_identifiable else []
        if local_steps > 1:
            reasons.append(
                f"local_steps={local_steps}: the update sums {local_steps} gradients taken at "
                "different parameters; one input's recovery needs one step"
            )
        if precision is not None and precision > PRECISION_LIMIT:
            reasons.append(
                f"the classifier's update is {precision:.1e} of its rounding: parameters sent in "
                f"{after[f'{head}.weight'].dtype} keep too few digits of a step this small"
            )
        return cls(
            undone.gradients,
            dict(before),
            classifier=head,
            num_samples=num_samples,
            precision=precision,
            sign_only=undone.sign_only,
            not_identifiable="; ".join(reasons),
        )


def _update_precision(
    head: str, after: Mapping[str, Tensor], delta: Mapping[str, Tensor]
) -> float | None:
    """eps * ||after|| / ||delta|| over the classifier's tensors: the relative error that the
    rounding of the sent parameters leaves in the difference (None if it did not move)."""
    names = [name for name in (f"{head}.weight", f"{head}.bias") if name in after]
    if f"{head}.weight" not in after:
        raise ValueError(
            f"classifier={head!r}: {head}.weight is not in the update (weights: {_weights(after)})"
        )
    eps = max(
        float(torch.finfo(after[name].dtype).eps) if after[name].is_floating_point() else 0.0
        for name in names
    )
    step = sum(float(delta[name].square().sum()) for name in names) ** 0.5
    size = sum(float(after[name].to(torch.float64).square().sum()) for name in names) ** 0.5
    if step == 0:
        raise ValueError(
            f"the classifier {head!r} did not change (before == after): the update carries no "
            "gradient of it (a frozen head, lr too small for the parameters' dtype, or no sample)"
        )
    return max(eps, eps * size / step) if eps > 0 else None


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
