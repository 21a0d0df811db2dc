"""A batch's last layer, validated once: the float64 matrices and what is declared about them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor

from gradleak.recovery.batch.subspace import singular_values
from gradleak.recovery.last_layer import SCALE_MODES, as_array

#: How the client's loss combines the batch: "mean" (PyTorch's default) or "sum".
REDUCTIONS = ("mean", "sum")


@dataclass(frozen=True)
class BatchProblem:
    """Shapes: ``weight``, ``weight_grad`` (C, m); ``bias``, ``bias_grad`` (C,) or None.

    ``input_eps`` is the machine epsilon of the coarser input dtype; ``singular`` the singular
    values of Ĝ = [dL/dW, dL/db] (or dL/dW); ``noise`` = sigma_(B+1) / sigma_1, what the
    gradient measurably carries; ``precision`` = max(input_eps, noise), what its digits allow.
    """

    weight: np.ndarray
    weight_grad: np.ndarray
    bias: np.ndarray | None
    bias_grad: np.ndarray | None
    num_samples: int
    reduction: str
    scale: str
    input_eps: float
    singular: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def has_bias(self) -> bool:
        return self.bias is not None

    @property
    def augmented(self) -> tuple[np.ndarray, np.ndarray]:
        """[W, b] and Ĝ = [dL/dW, dL/db] (or W and dL/dW without a bias)."""
        if self.bias is None:
            return self.weight, self.weight_grad
        return (
            np.hstack([self.weight, self.bias[:, None]]),
            np.hstack([self.weight_grad, self.bias_grad[:, None]]),
        )

    @property
    def noise(self) -> float:
        """sigma_(B+1) / sigma_1: how far the gradient measurably is from rank B (0 when it has
        no more singular values). Float32 rounding spread over C x m entries puts this near a
        tenth of the dtype's epsilon; added noise raises it."""
        tail = self.singular[self.num_samples] if self.singular.size > self.num_samples else 0.0
        return float(tail / self.singular[0])

    @property
    def precision(self) -> float:
        return max(self.input_eps, self.noise)


def _eps(*values) -> float:
    return max(float(np.finfo(value.dtype).eps) for value in values if value is not None)


def batch_problem(
    weight: Tensor | np.ndarray,
    weight_grad: Tensor | np.ndarray,
    bias=None,
    bias_grad=None,
    *,
    num_samples: int,
    reduction: str = "mean",
    scale: str = "unknown",
) -> BatchProblem:
    """Validate the inputs (errors name the argument and the allowed range) and reduce them."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r}: choose one of {', '.join(REDUCTIONS)}")
    if scale not in SCALE_MODES:
        raise ValueError(f"scale={scale!r}: choose one of {', '.join(SCALE_MODES)}")
    if (bias is None) != (bias_grad is None):
        raise ValueError("pass both bias and bias_grad, or neither")
    arrays = [as_array("weight", weight, 2), as_array("weight_grad", weight_grad, 2)]
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(
            f"weight {arrays[0].shape} and weight_grad {arrays[1].shape} must have one shape"
        )
    num_classes = arrays[0].shape[0]
    if bias is not None:
        arrays += [as_array("bias", bias, 1), as_array("bias_grad", bias_grad, 1)]
        for name, value in zip(("bias", "bias_grad"), arrays[2:], strict=True):
            if value.shape != (num_classes,):
                raise ValueError(f"{name} must have shape ({num_classes},), got {value.shape}")
    input_eps = _eps(*arrays)
    weight64, grad64 = (value.astype(np.float64) for value in arrays[:2])
    bias64 = arrays[2].astype(np.float64) if bias is not None else None
    bias_grad64 = arrays[3].astype(np.float64) if bias is not None else None
    stacked = grad64 if bias is None else np.hstack([grad64, bias_grad64[:, None]])
    return BatchProblem(
        weight=weight64,
        weight_grad=grad64,
        bias=bias64,
        bias_grad=bias_grad64,
        num_samples=num_samples,
        reduction=reduction,
        scale=scale,
        input_eps=input_eps,
        singular=singular_values(stacked),
    )
