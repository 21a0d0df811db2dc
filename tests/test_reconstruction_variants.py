"""The Table 3 variants: labels resolved before the attack, the secret never passed on, and
each variant exactly the attack call it stands for."""

import pytest
import torch

import gradleak
from gradleak.client.observation import ClientSecret
from gradleak.experiments import variants
from gradleak.experiments.oracles import oracle_hard_label, oracle_soft_label
from gradleak.experiments.variants import (
    CNN_VARIANTS,
    FCN_VARIANTS,
    VARIANTS,
    Variant,
    run_variant,
    variant_labels,
)
from gradleak.reconstruction import MatchingSettings

MEAN, STD = (0.5,), (0.25,)
SETTINGS = MatchingSettings(iterations=3, restarts=1, tv_weight=1e-3, feature_weight=0.5, seed=4)
BUDGET = {"settings": SETTINGS, "dlg_iterations": 2, "image_mean": MEAN, "image_std": STD}


@pytest.fixture(scope="module")
def client():
    model = gradleak.models.build("lenet", num_classes=6, in_channels=1, image_size=8, seed=0)
    generator = torch.Generator().manual_seed(1)
    inputs = (torch.rand(1, 1, 8, 8, generator=generator) - 0.5) / 0.25
    observation, secret = gradleak.simulate_client_step(
        model, inputs, gradleak.labels.smoothing(4, 6, 0.3)
    )
    estimate = gradleak.recover_label(observation, family="smoothing")
    assert estimate.converged
    return model, observation, secret, estimate


def test_registry_names_are_the_table_rows():
    assert VARIANTS.keys() == [
        "oracle-soft", "oracle-hard", "dlg", "ours", "ours-feature", "analytic-fc"
    ]  # fmt: skip
    assert set(CNN_VARIANTS) | set(FCN_VARIANTS) == set(VARIANTS)
    assert [name for name in VARIANTS if VARIANTS[name].needs_secret] == [
        "oracle-soft",
        "oracle-hard",
    ]
    assert VARIANTS["ours-feature"] == Variant("inverting-gradients", "recovered", feature=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"attack": "magic", "label_source": "recovered"}, "attack 'magic' is unknown"),
        ({"attack": "dlg", "label_source": "truth"}, "label source 'truth' is unknown"),
        ({"attack": "dlg", "label_source": "joint", "budget": "big"}, "budget 'big' is unknown"),
        ({"attack": "dlg", "label_source": "oracle-soft", "feature": True}, "recovered"),
    ],
)
def test_a_bad_variant_names_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        Variant(**fields)


def test_labels_are_resolved_before_the_attack(client):
    _, _, secret, estimate = client
    resolved = {
        name: variant_labels(VARIANTS[name], estimate=estimate, secret=secret) for name in VARIANTS
    }
    torch.testing.assert_close(resolved["oracle-soft"], oracle_soft_label(secret))
    torch.testing.assert_close(resolved["oracle-hard"], oracle_hard_label(secret))
    assert resolved["dlg"] is None
    for name in ("ours", "ours-feature", "analytic-fc"):
        assert resolved[name] is estimate
    with pytest.raises(ValueError, match="'oracle-hard' needs the client's secret"):
        variant_labels(VARIANTS["oracle-hard"], estimate=estimate, secret=None)


def test_no_attack_receives_the_secret(client, monkeypatch):
    model, observation, secret, estimate = client
    calls = {}

    def spy(observation, model, attack, *, labels, **params):
        calls[attack, labels is None] = (labels, params)
        return gradleak.reconstruct(observation, model, attack, labels=labels, **params)

    monkeypatch.setattr(variants, "reconstruct", spy)
    for name in CNN_VARIANTS:
        run_variant(name, observation, model, estimate=estimate, secret=secret, **BUDGET)
    passed = [labels for labels, _ in calls.values()]
    passed += [value for _, params in calls.values() for value in params.values()]
    assert not any(isinstance(value, ClientSecret) for value in passed)
    assert calls["dlg", True][1] == {"iterations": 2, "seed": 4, "progress": False}


@pytest.mark.parametrize("name", ["oracle-soft", "oracle-hard", "ours", "ours-feature", "dlg"])
def test_each_variant_is_exactly_its_attack_call(client, name):
    """The variant reproduces the direct public call bit for bit (same seed, same budget)."""
    model, observation, secret, estimate = client
    result = run_variant(name, observation, model, estimate=estimate, secret=secret, **BUDGET)
    if name == "dlg":
        direct = gradleak.reconstruct(observation, model, "dlg", iterations=2, seed=4)
    else:
        labels = {
            "oracle-soft": oracle_soft_label(secret),
            "oracle-hard": oracle_hard_label(secret),
        }.get(name, estimate)
        direct = gradleak.reconstruct(
            observation, model, "inverting-gradients", labels=labels, iterations=3, restarts=1,
            tv_weight=1e-3, seed=4, image_mean=MEAN, image_std=STD,
            feature_weight=0.5 if name == "ours-feature" else 0.0,
        )  # fmt: skip
    torch.testing.assert_close(result.inputs, direct.inputs, rtol=0, atol=0)
    assert result.history == direct.history and result.attack == direct.attack


def test_the_feature_term_changes_only_ours_feature(client):
    model, observation, secret, estimate = client
    ours, feature = (
        run_variant(name, observation, model, estimate=estimate, secret=secret, **BUDGET)
        for name in ("ours", "ours-feature")
    )
    assert ours.history != feature.history
