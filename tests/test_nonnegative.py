"""The non-negative-labels-only method: Theorem 1 leaves a whole range of scalars admissible."""

import pytest

import gradleak
from gradleak.data import load_embedded
from gradleak.recovery import METHODS


@pytest.mark.parametrize("family", ["smoothing", "mixup", "hard"])
def test_non_negativity_alone_does_not_identify_the_label(family):
    images = load_embedded("embedded-cifar10")
    model = gradleak.models.build("resnet18", num_classes=10, seed=0)
    label = {
        "smoothing": gradleak.labels.smoothing(3, 10, 0.2),
        "mixup": gradleak.labels.mixup(3, 5, 0.3, 10),
        "hard": gradleak.labels.one_hot(3, 10),
    }[family]
    observation, _ = gradleak.simulate_client_step(model, images.normalise(images.images[0]), label)
    estimate = gradleak.recover_label(observation, "auto", method="nonnegative")
    assert not estimate.converged and "not identified" in estimate.reason
    assert estimate.diagnostics["admissible_fraction"] > 0.1
    assert estimate.diagnostics["label_spread_l1"] > 1.0
    # The family-aware search pins the same gradient's label exactly.
    assert gradleak.recover_label(observation, family, scale="known").converged


@pytest.mark.parametrize(("field", "value"), [("grid_points", 2), ("agree_l1", 0.0)])
def test_nonnegative_settings_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        METHODS.build("nonnegative", **{field: value})
