"""Image metrics: PSNR from known MSE, SSIM identical to scikit-image, de-normalisation that
clamps (never wraps), per-image batches, and LPIPS that refuses instead of downloading.

Paper: Wang, Liang & He, ICLR 2024, Sec. 5.3 (PSNR and SSIM on de-normalised images).
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from skimage.metrics import structural_similarity

from gradleak.metrics import (
    ImageScores,
    MetricUnavailable,
    lpips,
    mse,
    psnr,
    score_images,
    ssim,
    to_unit_range,
)
from gradleak.metrics import images as image_metrics

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _random_pair(seed: int, shape=(4, 3, 16, 16)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    truth = torch.rand(shape, generator=generator, dtype=torch.float64)
    noisy = (truth + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    return noisy, truth


def test_psnr_of_known_mse() -> None:
    truth = torch.zeros(3, 8, 8)
    reconstruction = torch.full((3, 8, 8), 0.1)
    assert mse(reconstruction, truth) == pytest.approx(0.01)
    assert psnr(reconstruction, truth) == pytest.approx(20.0)
    assert psnr(torch.full((3, 8, 8), 0.01), truth) == pytest.approx(40.0)


def test_batches_give_one_value_per_image() -> None:
    truth = torch.zeros(3, 1, 8, 8)
    reconstruction = torch.stack([torch.full((1, 8, 8), level) for level in (0.1, 0.01, 0.0)])
    values = psnr(reconstruction, truth)
    assert isinstance(values, torch.Tensor)
    assert values.shape == (3,) and values.dtype == torch.float64
    assert values[:2].tolist() == pytest.approx([20.0, 40.0])
    assert values[2] == math.inf
    assert mse(reconstruction, truth).tolist() == pytest.approx([0.01, 1e-4, 0.0])


def test_identical_images() -> None:
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert psnr(image, image) == math.inf
    assert mse(image, image) == 0.0
    assert ssim(image, image) == pytest.approx(1.0)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_equals_scikit_image(channels: int) -> None:
    reconstruction, truth = _random_pair(1, shape=(3, channels, 20, 24))
    values = ssim(reconstruction, truth)
    expected = [
        structural_similarity(
            a.permute(1, 2, 0).numpy(), b.permute(1, 2, 0).numpy(), channel_axis=-1, data_range=1.0
        )
        for a, b in zip(reconstruction, truth, strict=True)
    ]
    assert values.tolist() == pytest.approx(expected, abs=1e-12)
    assert all(0 < value < 1 for value in values.tolist())
    assert ssim(reconstruction[0], truth[0]) == pytest.approx(expected[0], abs=1e-12)


def test_to_unit_range_denormalises_and_clamps() -> None:
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mean = torch.tensor(MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(3, 1, 1)
    normalised = (images - mean) / std
    assert torch.allclose(to_unit_range(normalised, MEAN, STD), images, atol=1e-12)
    # Out-of-range values clamp to the nearest end: 1.2 stays bright, it does not wrap to 0.2.
    beyond = (torch.tensor([1.2, -0.3, 0.5]).view(3, 1, 1) - mean) / std
    assert to_unit_range(beyond, MEAN, STD).flatten().tolist() == pytest.approx([1.0, 0.0, 0.5])


def test_quantisation_to_8_bit() -> None:
    images = torch.tensor([0.0, 0.5, 0.3012, 1.0]).view(1, 1, 2, 2)
    quantised = to_unit_range(images, (0.0,), (1.0,), quantise=True)
    assert (quantised * 255).flatten().tolist() == pytest.approx([0, 128, 77, 255])
    # A reconstruction within half a level of the truth is exact on 8-bit images.
    close = images + 1e-4
    assert psnr(to_unit_range(close, (0.0,), (1.0,), quantise=True), quantised) == math.inf


@pytest.mark.parametrize(
    ("first", "second", "match"),
    [
        (torch.rand(3, 8, 8), torch.rand(3, 8, 9), "same shape"),
        (torch.rand(8, 8), torch.rand(8, 8), r"\(C, H, W\)"),
        (torch.rand(3, 8, 8) + 1.5, torch.rand(3, 8, 8), "to_unit_range"),
        (torch.rand(3, 8, 8), torch.full((3, 8, 8), math.nan), "truth holds non-finite"),
    ],
)
def test_bad_images_raise(first: torch.Tensor, second: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        psnr(first, second)


def test_ssim_needs_seven_pixels() -> None:
    with pytest.raises(ValueError, match="7 x 7"):
        ssim(torch.rand(3, 6, 6), torch.rand(3, 6, 6))


def test_to_unit_range_checks_statistics() -> None:
    with pytest.raises(ValueError, match="one value per channel"):
        to_unit_range(torch.rand(3, 8, 8), (0.5,), (0.5,))
    with pytest.raises(ValueError, match="std must be > 0"):
        to_unit_range(torch.rand(1, 8, 8), (0.5,), (0.0,))


def test_lpips_refuses_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def without_lpips(name: str, *args, **kwargs):
        if name == "lpips":
            raise ModuleNotFoundError("No module named 'lpips'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(image_metrics.importlib, "import_module", without_lpips)
    image_metrics._lpips_model.cache_clear()
    with pytest.raises(MetricUnavailable, match="pip install lpips"):
        lpips(torch.rand(3, 16, 16), torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="net="):
        lpips(torch.rand(3, 16, 16), torch.rand(3, 16, 16), net="resnet")


def test_lpips_when_available() -> None:
    pytest.importorskip("lpips")
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))
    try:
        same = lpips(image, image)
    except MetricUnavailable as reason:
        pytest.skip(str(reason))
    assert same == pytest.approx(0.0, abs=1e-6)
    assert lpips(image, 1 - image) > same


def test_score_images_denormalises_with_the_datasets_statistics() -> None:
    """A normalised image scored against itself is exact; one 8-bit level of error on every
    pixel gives MSE (1/255)^2 both in float and after rounding to 8 bits."""
    generator = torch.Generator().manual_seed(3)
    unit = (torch.randint(10, 240, (3, 8, 8), generator=generator) / 255).double()
    mean_t, std_t = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    truth = (unit - mean_t) / std_t
    exact = score_images(truth, truth, mean=MEAN, std=STD)
    assert exact == ImageScores(psnr=math.inf, psnr_8bit=math.inf, ssim=pytest.approx(1.0), mse=0)
    shifted = (unit + 1 / 255 - mean_t) / std_t
    scores = score_images(shifted, truth, mean=MEAN, std=STD)
    assert scores.mse == pytest.approx((1 / 255) ** 2, rel=1e-6)
    assert scores.psnr == pytest.approx(20 * math.log10(255), rel=1e-6)
    assert scores.psnr_8bit == pytest.approx(20 * math.log10(255), rel=1e-6)
    assert scores.ssim < 1
