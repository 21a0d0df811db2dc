"""Exact float64 last-layer problems built by hand, with no model: the ground truth for tests.

z = W x + b, p = softmax(z), dL/dW = (p - y) x^T, dL/db = p - y (soft-label cross-entropy).
Not a test module (pytest collects only ``test_*.py``); the test files import it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gradleak import labels

FEATURE_SIGNS = ("mixed", "positive", "negative")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


@dataclass(frozen=True)
class Problem:
    """One input's exact last-layer gradient and its truth.

    Shapes: W, G (C, m); x (m,); y, p (C,); b (C,) or None.
    """

    weight: np.ndarray
    weight_grad: np.ndarray
    features: np.ndarray
    label: np.ndarray
    probs: np.ndarray
    bias: np.ndarray | None = None

    @property
    def bias_grad(self) -> np.ndarray | None:
        return None if self.bias is None else self.probs - self.label

    @property
    def num_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def row(self) -> int:
        """The row of dL/dW with the largest norm (argmax |p_i - y_i|), ties broken as `prepare`.

        With two classes |p_0 - y_0| = |p_1 - y_1|, so the tie is real and the sign of t
        depends on which row is taken; compute the norms the way the package does.
        """
        return int(np.argmax(np.einsum("ij,ij->i", self.weight_grad, self.weight_grad)))

    @property
    def inv_scale(self) -> float:
        """The true t = 1 / mu = p_r - y_r."""
        return float(self.probs[self.row] - self.label[self.row])

    def last_layer(self) -> tuple:
        """(weight, weight_grad, bias, bias_grad) for `recover_from_last_layer`."""
        return self.weight, self.weight_grad, self.bias, self.bias_grad

    def last_layer_kwargs(self) -> dict[str, np.ndarray | None]:
        """The same four arrays keyed by `recover_from_last_layer`'s argument names."""
        return {
            "weight": self.weight,
            "weight_grad": self.weight_grad,
            "bias": self.bias,
            "bias_grad": self.bias_grad,
        }


def gradient_problem(
    weight: np.ndarray,
    features: np.ndarray,
    label: np.ndarray,
    bias: np.ndarray | None = None,
) -> Problem:
    """The exact float64 gradient of -sum y log softmax(W x + b) at (W, x, b, y)."""
    weight = np.asarray(weight, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    logits = weight @ features + (0.0 if bias is None else bias)
    probs = softmax(logits)
    weight_grad = np.outer(probs - label, features)
    return Problem(weight, weight_grad, features, label, probs, bias)


def random_features(rng: np.random.Generator, m: int, sign: str = "mixed") -> np.ndarray:
    features = rng.normal(size=m)
    if sign == "positive":
        return np.abs(features) + 0.01
    if sign == "negative":
        return -np.abs(features) - 0.01
    assert sign == "mixed"
    return features


def random_problem(
    label: np.ndarray,
    m: int,
    *,
    seed: int,
    logit_scale: float = 1.0,
    bias: bool = False,
    sign: str = "mixed",
) -> Problem:
    """W ~ N(0, logit_scale^2 / m), x ~ N(0, 1) (signed as asked), b ~ N(0, 1) when ``bias``."""
    rng = np.random.default_rng(seed)
    num_classes = label.shape[0]
    weight = rng.normal(size=(num_classes, m)) * logit_scale / np.sqrt(m)
    features = random_features(rng, m, sign)
    bias_vector = rng.normal(size=num_classes) if bias else None
    return gradient_problem(weight, features, label, bias_vector)


def near_label_problem(label: np.ndarray, m: int, *, seed: int, noise: float) -> Problem:
    """A problem where p is close to y: W x = log y + noise, so |t| = |p_r - y_r| is tiny.

    W = (log y + noise) x^T / |x|^2 + Q with Q x = 0, so W is not itself rank one.
    """
    rng = np.random.default_rng(seed)
    features = rng.normal(size=m)
    logits = np.log(label) + noise * rng.normal(size=label.shape[0])
    orthogonal = rng.normal(size=(label.shape[0], m))
    orthogonal -= np.outer(orthogonal @ features, features) / (features @ features)
    weight = np.outer(logits, features) / (features @ features) + orthogonal
    return gradient_problem(weight, features, label)


def smoothing_vector(target: int, num_classes: int, eps: float) -> np.ndarray:
    return labels.smoothing(target, num_classes, eps, dtype=torch.float64).probabilities.numpy()


def mixup_vector(a: int, b: int, lam: float, num_classes: int, eps: float = 0.0) -> np.ndarray:
    return labels.mixup(a, b, lam, num_classes, eps, dtype=torch.float64).probabilities.numpy()


def one_hot_vector(target: int, num_classes: int) -> np.ndarray:
    return labels.one_hot(target, num_classes, dtype=torch.float64).probabilities.numpy()


def l1(estimate: torch.Tensor | np.ndarray, truth: np.ndarray) -> float:
    estimate = estimate.numpy() if isinstance(estimate, torch.Tensor) else estimate
    return float(np.abs(estimate - truth).sum())


def relative_error(estimate: torch.Tensor | np.ndarray, truth: np.ndarray) -> float:
    estimate = estimate.numpy() if isinstance(estimate, torch.Tensor) else estimate
    return float(np.linalg.norm(estimate - truth) / np.linalg.norm(truth))
