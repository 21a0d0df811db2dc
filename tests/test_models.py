"""Tests for the gradleak.models zoo: registry, shapes, classifier convention, init, seeding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradleak.models import build, default_input_shape, names, register
from gradleak.recovery import METHODS

EXPECTED_NAMES = {"lenet", "resnet18", "resnet18-imagenet", "resnet50", "alexnet", "fcn4"}
# Smaller-than-default images keep the heavy models fast; the rest use their default shape.
TEST_IMAGE_SIZE = {"resnet18-imagenet": 64, "resnet50": 64, "alexnet": 64, "fcn4": 16}
EXPECTED_FEATURE_DIM = {
    "lenet": 768,
    "resnet18": 512,
    "resnet18-imagenet": 512,
    "resnet50": 2048,
    "alexnet": 4096,
    "fcn4": 256,
}


def _input(name: str, batch: int = 2, image_size: int | None = None) -> torch.Tensor:
    channels, height, _ = default_input_shape(name)
    size = image_size or TEST_IMAGE_SIZE.get(name, height)
    return torch.rand(batch, channels, size, size)


def test_all_expected_models_registered() -> None:
    assert set(names()) >= EXPECTED_NAMES
    assert names() == sorted(names())


def test_default_input_shapes() -> None:
    assert default_input_shape("lenet") == (3, 32, 32)
    assert default_input_shape("resnet18") == (3, 32, 32)
    assert default_input_shape("resnet18-imagenet") == (3, 224, 224)
    assert default_input_shape("resnet50") == (3, 224, 224)
    assert default_input_shape("alexnet") == (3, 224, 224)
    assert default_input_shape("fcn4") == (3, 64, 64)


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
@pytest.mark.parametrize("classifier_bias", [False, True])
def test_forward_shape_and_classifier_convention(name: str, classifier_bias: bool) -> None:
    model = build(
        name,
        num_classes=7,
        classifier_bias=classifier_bias,
        image_size=TEST_IMAGE_SIZE.get(name),
        seed=0,
    )
    assert not model.training
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier_name == "classifier"
    assert isinstance(model.feature_dim, int)
    assert model.feature_dim == model.classifier.in_features == EXPECTED_FEATURE_DIM[name]
    assert model.classifier.out_features == 7
    assert (model.classifier.bias is not None) is classifier_bias
    param_names = dict(model.named_parameters())
    assert "classifier.weight" in param_names
    assert ("classifier.bias" in param_names) is classifier_bias
    with torch.no_grad():
        out = model(_input(name))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_classifier_input_is_flattened_feature() -> None:
    model = build("resnet18", num_classes=5, seed=1)
    seen: list[torch.Tensor] = []
    model.classifier.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0]))
    with torch.no_grad():
        model(_input("resnet18"))
    assert seen[0].shape == (2, model.feature_dim)


def test_lenet_feature_dims() -> None:
    rgb = build("lenet", num_classes=10)
    assert rgb.feature_dim == 768
    gray = build("lenet", num_classes=10, in_channels=1, image_size=28)
    assert gray.feature_dim == 588
    assert gray(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    convs = [m for m in rgb.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 and all(c.bias is not None for c in convs)
    assert any(isinstance(m, nn.Sigmoid) for m in rgb.modules())


@pytest.mark.parametrize("name", ["resnet18", "resnet18-imagenet"])
def test_resnet_on_grayscale_28(name: str) -> None:
    model = build(name, num_classes=10, in_channels=1, image_size=28)
    with torch.no_grad():
        out = model(torch.rand(2, 1, 28, 28))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


def test_resnet_convs_bias_free_and_batchnorm() -> None:
    model = build("resnet18", num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.bias is None for c in convs)
    assert convs[0].kernel_size == (3, 3) and convs[0].stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    imagenet = build("resnet18-imagenet", num_classes=10)
    first = next(m for m in imagenet.modules() if isinstance(m, nn.Conv2d))
    assert first.kernel_size == (7, 7) and first.stride == (2, 2)


def test_alexnet_small_stem_on_32x32() -> None:
    model = build("alexnet", num_classes=10, image_size=32)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_fcn4_layers_bias_free_and_hidden_layers_exposed() -> None:
    model = build("fcn4", num_classes=10, image_size=8)
    widths = [(layer.in_features, layer.out_features) for layer in model.hidden_layers]
    assert widths == [(3 * 8 * 8, 4096), (4096, 1024), (1024, 256)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 4 and all(m.bias is None for m in linears)
    with_bias = build("fcn4", num_classes=10, image_size=8, classifier_bias=True)
    assert with_bias.classifier.bias is not None
    assert all(layer.bias is None for layer in with_bias.hidden_layers)


def test_fcn4_default_input_dim() -> None:
    assert build("fcn4", num_classes=10).hidden_layers[0].in_features == 12288


@pytest.mark.parametrize("name", ["lenet", "resnet18", "fcn4"])
def test_uniform_init_covers_every_parameter(name: str) -> None:
    model = build(
        name,
        num_classes=10,
        init="uniform",
        seed=3,
        classifier_bias=True,
        image_size=TEST_IMAGE_SIZE.get(name),
    )
    for pname, param in model.named_parameters():
        assert param.abs().max() <= 0.5, pname
        if param.numel() >= 64:
            assert param.abs().max() > 0.4, pname


def test_uniform_init_reaches_batchnorm_affine() -> None:
    model = build("resnet18", num_classes=10, init="uniform", seed=4)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    for bn in bns:
        assert bn.weight.abs().max() <= 0.5 and bn.bias.abs().max() <= 0.5
        assert not torch.all(bn.weight == 1.0) and bn.bias.abs().max() > 0.0
        assert torch.all(bn.running_mean == 0.0) and torch.all(bn.running_var == 1.0)


def test_default_init_differs_from_uniform() -> None:
    model = build("lenet", num_classes=10, seed=0)
    assert model.classifier.weight.abs().max() < 0.1  # Kaiming-uniform bound 1/sqrt(768)


@pytest.mark.parametrize("init", ["default", "uniform"])
def test_seed_is_deterministic(init: str) -> None:
    first = build("resnet18", num_classes=10, init=init, seed=11).state_dict()
    second = build("resnet18", num_classes=10, init=init, seed=11).state_dict()
    other = build("resnet18", num_classes=10, init=init, seed=12).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["classifier.weight"], other["classifier.weight"])


def test_seed_does_not_touch_global_rng() -> None:
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    build("lenet", num_classes=10, init="uniform", seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    assert torch.equal(torch.rand(4), expected)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match="lenet") as info:
        build("vgg16", num_classes=10)
    assert "vgg16" in str(info.value) and "resnet50" in str(info.value)
    with pytest.raises(ValueError, match="choose one of"):
        default_input_shape("vgg16")


@pytest.mark.parametrize("num_classes", [1, 0, -3])
def test_num_classes_below_two(num_classes: int) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build("lenet", num_classes=num_classes)


def test_unknown_init() -> None:
    with pytest.raises(ValueError, match="init") as info:
        build("lenet", num_classes=10, init="bogus")
    assert "uniform" in str(info.value) and "default" in str(info.value)


def test_register_rejects_duplicates_and_bad_names() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register("lenet", default_image_size=32)
    with pytest.raises(ValueError, match="kebab-case"):
        register("Bad_Name", default_image_size=32)
    assert "Bad_Name" not in names()


def test_registry_summaries_are_plain_first_sentences() -> None:
    """--help texts: one sentence per entry, no RST literals, no sentence cut at a line end."""
    for key, text in METHODS.describe():
        assert text and "``" not in text and not text.endswith((".", ",")), (key, text)
