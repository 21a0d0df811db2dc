"""The defenses of the audit (clipping, DP-SGD, top-k, quantization), the Opacus integration
against real Opacus steps, and the privacy-utility sweep."""

import json

import pytest
import torch

import gradleak
from gradleak.cli.main import main
from gradleak.client.updates import ClientUpdate
from gradleak.data import load
from gradleak.defenses import DEFENSES, apply


@pytest.fixture(scope="module")
def step():
    """One single-input LeNet step (C = 100, uniform init) with a smoothed label."""
    images = load("embedded-cifar100")
    model = gradleak.models.build("lenet", num_classes=100, seed=0, init="uniform")
    label = gradleak.labels.smoothing(int(images.labels[0]), 100, 0.1)
    observation, secret = gradleak.simulate_client_step(
        model, images.normalise(images.images[:1]), label
    )
    return model, images, observation, secret


def _l1(estimate, secret) -> float:
    return float((estimate.soft_label - secret.soft_label[0].double()).abs().sum())


def test_clipping_alone_hides_no_label(step):
    """Clipping rescales the gradient by an unknown factor: the fitted scale absorbs it."""
    _model, _images, observation, secret = step
    clipped = apply(observation, "clipping", seed=0, max_grad_norm=1e-3)
    norm = sum(float(g.double().square().sum()) for g in clipped.gradients.values()) ** 0.5
    assert norm == pytest.approx(1e-3, rel=1e-3)
    estimate = gradleak.recover_label(clipped, "smoothing")
    assert estimate.converged and _l1(estimate, secret) < 1e-2


def test_dp_sgd_noise_is_refused_not_guessed(step):
    _model, _images, observation, _secret = step
    noisy = apply(observation, "dp-sgd", seed=0, max_grad_norm=1.0, noise_multiplier=0.01)
    with pytest.raises(ValueError, match="not rank one"):
        gradleak.recover_label(noisy, "smoothing")


def test_dp_sgd_takes_one_input(step):
    model, images, _observation, _secret = step
    labels = torch.eye(100, dtype=torch.float64)[images.labels[:2]]
    batch, _secret = gradleak.simulate_client_step(
        model, images.normalise(images.images[:2]), labels
    )
    with pytest.raises(ValueError, match="num_samples = 1"):
        apply(batch, "dp-sgd", seed=0, max_grad_norm=1.0, noise_multiplier=0.0)


def test_top_k_keeps_the_largest_fraction(step):
    _model, _images, observation, _secret = step
    sparse = apply(observation, "top-k", seed=0, fraction=0.1)
    for name, gradient in sparse.gradients.items():
        original = observation.gradients[name]
        kept = int((gradient != 0).sum())
        assert kept <= max(1, -(-original.numel() // 10))
        if kept:
            smallest_kept = gradient[gradient != 0].abs().min()
            assert original[gradient == 0].abs().max() <= smallest_kept


@pytest.mark.parametrize(("dtype", "precision"), [("float16", 2**-11), ("int8", 1 / 254)])
def test_quantization_declares_its_precision(step, dtype, precision):
    _model, _images, observation, _secret = step
    quantized = apply(observation, "quantization", seed=0, dtype=dtype)
    assert quantized.precision == pytest.approx(precision)
    if dtype == "int8":
        weight = quantized.weight_grad.double()
        levels = weight / (observation.weight_grad.double().abs().max() / 127)
        assert torch.allclose(levels, levels.round(), atol=1e-3)


@pytest.mark.parametrize(
    ("key", "params", "message"),
    [
        ("clipping", {"max_grad_norm": 0}, "max_grad_norm"),
        ("dp-sgd", {"max_grad_norm": 1.0, "noise_multiplier": -1}, "noise_scale"),
        ("top-k", {"fraction": 1.5}, "fraction"),
        ("quantization", {"dtype": "int4"}, "dtype"),
    ],
)
def test_bad_defense_parameters_are_named(key, params, message):
    with pytest.raises(ValueError, match=message):
        DEFENSES.build(key, **params)


opacus = pytest.importorskip("opacus", reason="the Opacus extra: pip install -e '.[opacus]'")


def test_dp_sgd_transform_matches_opacus_for_one_input(step):
    """Without noise, the dp-sgd transform of one input's gradient is Opacus's clipped sum."""
    from gradleak.integrations.opacus import private_client_step

    model, images, observation, _secret = step
    inputs = images.normalise(images.images[:1])
    targets = gradleak.labels.smoothing(int(images.labels[0]), 100, 0.1).probabilities[None]
    update = ClientUpdate(lr=0.1, clipping="max-grad-norm", max_grad_norm=0.5)
    private, _engine = private_client_step(model, inputs, targets.float(), update)
    mine = apply(observation, "dp-sgd", seed=0, max_grad_norm=0.5, noise_multiplier=0.0)
    for name, gradient in private.clipped_sum.items():
        assert torch.allclose(mine.gradients[name].float(), gradient, rtol=1e-4, atol=1e-9)


def test_opacus_step_survives_per_sample_clipping_without_noise(step):
    """White box: each sample's clipped gradient still gives its label; the update sent for one
    input too. With noise, the accountant's epsilon is reported and the label is refused."""
    from gradleak.integrations.opacus import audit_private_step, private_client_step

    model, images, _observation, _secret = step
    inputs = images.normalise(images.images[:2])
    targets = torch.stack(
        [gradleak.labels.smoothing(int(c), 100, 0.1).probabilities for c in images.labels[:2]]
    ).float()
    update = ClientUpdate(lr=0.1, clipping="max-grad-norm", max_grad_norm=1.0)
    private, _engine = private_client_step(model, inputs, targets, update)
    norms = torch.stack(
        [g.reshape(2, -1).norm(dim=1) for g in private.per_sample.values()], dim=1
    ).norm(dim=1)
    assert torch.allclose(private.clip_factors, (1.0 / (norms + 1e-6)).clamp(max=1.0))
    records = audit_private_step(private, family="smoothing")
    white_box = [r for r in records if r.client.startswith("sample-")]
    assert len(white_box) == 4 and all(r.leaked for r in white_box)
    for record in white_box:
        index = int(record.client.split()[0].removeprefix("sample-"))
        found = torch.tensor(record.labels[0], dtype=torch.float64)
        assert float((found - targets[index].double()).abs().sum()) < 1e-2
    noisy = ClientUpdate(lr=0.1, clipping="max-grad-norm", max_grad_norm=1.0, noise_multiplier=1.0)
    private, engine = private_client_step(model, inputs[:1], targets[:1], noisy)
    assert 0 < engine.get_epsilon(1e-5) < float("inf")
    (sent,) = [r for r in audit_private_step(private, white_box=False)]
    assert not sent.leaked and sent.reason


def test_estimates_serialise_to_strict_json(step):
    _model, _images, observation, _secret = step
    estimate = gradleak.recover_label(observation, "smoothing")
    refused = gradleak.recover_label(apply(observation, "top-k", seed=0, fraction=0.1), "hard")
    for value in (estimate, refused):
        text = json.dumps(value.to_dict(), allow_nan=False)
        assert json.loads(text)["converged"] == value.converged


def test_sweep_command_writes_table_and_figures(tmp_path, capsys):
    """A tiny real sweep (Opacus training included): every file, and a refusal, not a guess,
    under noise."""
    out = tmp_path / "sweep"
    code = main(
        [
            "audit", "sweep", "--defense", "dp-sgd", "--noise-multiplier", "0,1",
            "--max-grad-norm", "1", "--dataset", "fashion-mnist", "--samples", "3",
            "--train-size", "128", "--epochs", "1", "--out", str(out),
        ]
    )  # fmt: skip
    if code == 2 and "Fashion-MNIST" in capsys.readouterr().err:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    assert code == 0
    table = (out / "sweep.md").read_text()
    assert "noise_multiplier=0 | 3 | 1.00 | 0 |" in table
    assert "noise_multiplier=1 | 3 | 0.00 | 0 |" in table
    for name in ("sweep.csv", "leakage-vs-epsilon.png", "leakage-vs-accuracy.png"):
        assert (out / name).stat().st_size > 0
    assert (out / "leakage-vs-noise-multiplier.png").exists()


def test_sweep_refuses_unknown_parameter_before_work(tmp_path, capsys):
    code = main(["audit", "sweep", "--defense", "top-k", "--max-grad-norm", "1",
                 "--out", str(tmp_path / "x")])  # fmt: skip
    assert code == 2
    assert "top-k has no parameter" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
