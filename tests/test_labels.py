"""Soft-label constructors: the documented vectors, their recorded parameters, argument checks."""

from __future__ import annotations

import pytest
import torch

from gradleak import labels
from gradleak.labels import SoftLabel


def _sums_to_one(label: SoftLabel) -> None:
    total = float(label.probabilities.double().sum())
    assert abs(total - 1.0) < 1e-6
    assert bool((label.probabilities >= 0).all())


@pytest.mark.parametrize("target", [0, 3, 9])
def test_one_hot_vector_and_params(target: int) -> None:
    label = labels.one_hot(target, 10)
    expected = torch.zeros(10, dtype=label.probabilities.dtype)
    expected[target] = 1.0
    assert torch.equal(label.probabilities, expected)
    assert label.family == "hard"
    assert dict(label.params) == {"target": target}
    assert label.num_classes == 10
    assert label.probabilities.shape == (10,)
    _sums_to_one(label)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_argument_is_honoured(dtype: torch.dtype) -> None:
    made = [
        labels.one_hot(1, 4, dtype=dtype),
        labels.smoothing(1, 4, 0.1, dtype=dtype),
        labels.mixup(0, 1, 0.5, 4, dtype=dtype),
    ]
    defaults = [labels.one_hot(1, 4), labels.smoothing(1, 4, 0.1), labels.mixup(0, 1, 0.5, 4)]
    for label, default in zip(made, defaults, strict=True):
        assert label.probabilities.dtype == dtype
        assert default.probabilities.dtype.is_floating_point
        assert torch.allclose(label.probabilities.double(), default.probabilities.double())


@pytest.mark.parametrize(("num_classes", "eps"), [(2, 0.5), (3, 0.1), (10, 0.2), (100, 0.05)])
def test_smoothing_vector_and_params(num_classes: int, eps: float) -> None:
    target = num_classes - 1
    label = labels.smoothing(target, num_classes, eps, dtype=torch.float64)
    probs = label.probabilities
    assert probs.shape == (num_classes,)
    assert abs(float(probs[target]) - (1 - eps + eps / num_classes)) < 1e-15
    others = torch.cat([probs[:target], probs[target + 1 :]])
    assert torch.allclose(others, torch.full_like(others, eps / num_classes), rtol=0, atol=1e-15)
    assert abs(float(probs.sum()) - 1.0) < 1e-12
    assert label.family == "smoothing"
    assert dict(label.params) == {"target": target, "eps": eps}
    _sums_to_one(labels.smoothing(target, num_classes, eps))


def test_smoothing_edge_values() -> None:
    assert torch.equal(
        labels.smoothing(2, 5, 0.0).probabilities, labels.one_hot(2, 5).probabilities
    )
    uniform = labels.smoothing(2, 5, 1.0, dtype=torch.float64).probabilities
    assert torch.allclose(uniform, torch.full((5,), 0.2, dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize(
    ("a", "b", "lam", "num_classes", "eps"),
    [(0, 1, 0.5, 4, 0.0), (3, 1, 0.3, 10, 0.1), (7, 2, 0.9, 8, 0.25), (1, 0, 0.05, 2, 0.0)],
)
def test_mixup_vector_and_params(a: int, b: int, lam: float, num_classes: int, eps: float) -> None:
    label = labels.mixup(a, b, lam, num_classes, eps, dtype=torch.float64)
    probs = label.probabilities
    share = eps / num_classes
    assert abs(float(probs[a]) - ((1 - eps) * (1 - lam) + share)) < 1e-15
    assert abs(float(probs[b]) - ((1 - eps) * lam + share)) < 1e-15
    rest = [i for i in range(num_classes) if i not in (a, b)]
    assert all(abs(float(probs[i]) - share) < 1e-15 for i in rest)
    assert abs(float(probs.sum()) - 1.0) < 1e-12
    assert label.family == "mixup"
    assert dict(label.params) == {"a": a, "b": b, "lam": lam, "eps": eps}
    _sums_to_one(labels.mixup(a, b, lam, num_classes, eps))


def test_mixup_default_eps_is_zero_and_lam_edges() -> None:
    label = labels.mixup(0, 3, 0.25, 5)
    assert label.params["eps"] == 0.0
    expected = torch.tensor([0.75, 0.0, 0.0, 0.25, 0.0], dtype=label.probabilities.dtype)
    assert torch.allclose(label.probabilities, expected, atol=1e-7)
    assert torch.equal(labels.mixup(0, 3, 0.0, 5).probabilities, labels.one_hot(0, 5).probabilities)
    assert torch.equal(labels.mixup(0, 3, 1.0, 5).probabilities, labels.one_hot(3, 5).probabilities)


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (lambda: labels.one_hot(10, 10), "target"),
        (lambda: labels.one_hot(-1, 10), "target"),
        (lambda: labels.one_hot(0, 1), "num_classes"),
        (lambda: labels.smoothing(5, 5, 0.1), "target"),
        (lambda: labels.smoothing(-1, 5, 0.1), "target"),
        (lambda: labels.smoothing(0, 5, -0.01), "eps"),
        (lambda: labels.smoothing(0, 5, 1.01), "eps"),
        (lambda: labels.smoothing(0, 1, 0.1), "num_classes"),
        (lambda: labels.mixup(0, 0, 0.5, 5), "a == b"),
        (lambda: labels.mixup(5, 1, 0.5, 5), r"\ba must"),
        (lambda: labels.mixup(1, 5, 0.5, 5), r"\bb must"),
        (lambda: labels.mixup(-1, 1, 0.5, 5), r"\ba must"),
        (lambda: labels.mixup(0, 1, -0.1, 5), "lam"),
        (lambda: labels.mixup(0, 1, 1.5, 5), "lam"),
        (lambda: labels.mixup(0, 1, 0.5, 5, eps=-0.5), "eps"),
        (lambda: labels.mixup(0, 1, 0.5, 5, eps=2.0), "eps"),
        (lambda: labels.mixup(0, 1, 0.5, 1), "num_classes"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        make()


def test_soft_label_is_frozen() -> None:
    label = labels.one_hot(0, 3)
    with pytest.raises(AttributeError):
        label.family = "smoothing"  # type: ignore[misc]
