"""Image errors between a reconstruction and the client's input: MSE, PSNR, SSIM, LPIPS.

Every metric takes images already in [0, 1] (``data_range`` 1); `to_unit_range` brings
normalised model inputs there with the dataset's own statistics and clamps them, never wraps
(the official code wraps out-of-range values and uses CIFAR statistics for every dataset).
A (C, H, W) pair gives a float; an (N, C, H, W) batch gives a float64 tensor of N values.

Paper: Wang, Liang & He, ICLR 2024, Sec. 5.3 and Table 3 (PSNR, SSIM as scikit-image computes).
Shapes: images (C, H, W) or (N, C, H, W), same shape for both arguments.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: Values this far outside [0, 1] are rounding, not a forgotten de-normalisation.
_RANGE_SLACK = 1e-6
#: The ImageNet backbones ``lpips`` loads through torchvision, by checkpoint file name.
_LPIPS_BACKBONES = {
    "alex": "alexnet-owt-7be5be79.pth",
    "vgg": "vgg16-397923af.pth",
    "squeeze": "squeezenet1_1-b8a52dc0.pth",
}


class MetricUnavailable(RuntimeError):  # noqa: N818 - reads as the condition it reports
    """An optional metric cannot run here; the message says what to install."""


def to_unit_range(
    inputs: Tensor, mean: Sequence[float], std: Sequence[float], *, quantise: bool = False
) -> Tensor:
    """De-normalise ``inputs`` (x * std + mean per channel), clamp to [0, 1], in float64.

    ``quantise=True`` rounds to 8-bit levels, round(x * 255) / 255, as a saved image would be.
    Shapes: (C, H, W) or (N, C, H, W) -> same; ``mean``, ``std`` (C,).
    """
    if inputs.dim() not in (3, 4):
        raise ValueError(f"inputs must be (C, H, W) or (N, C, H, W), got {tuple(inputs.shape)}")
    channels = inputs.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"mean and std need one value per channel ({channels}), got {len(mean)} and {len(std)}"
        )
    if any(not s > 0 for s in std):
        raise ValueError(f"std must be > 0 per channel, got {list(std)}")
    values = inputs.detach().to(torch.float64)
    shape = (channels, 1, 1)
    mean_t = torch.tensor(list(mean), dtype=torch.float64, device=values.device).view(shape)
    std_t = torch.tensor(list(std), dtype=torch.float64, device=values.device).view(shape)
    unit = (values * std_t + mean_t).clamp(0.0, 1.0)
    return torch.round(unit * 255.0) / 255.0 if quantise else unit


def _pair(reconstruction: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """Validate both images and return them as (N, C, H, W) float64."""
    if reconstruction.shape != truth.shape:
        raise ValueError(
            f"reconstruction and truth must have the same shape, got "
            f"{tuple(reconstruction.shape)} and {tuple(truth.shape)}"
        )
    if reconstruction.dim() not in (3, 4):
        raise ValueError(
            f"images must be (C, H, W) or (N, C, H, W), got {tuple(reconstruction.shape)}"
        )
    pair = []
    for name, image in (("reconstruction", reconstruction), ("truth", truth)):
        values = image.detach().to(torch.float64)
        if not torch.isfinite(values).all():
            raise ValueError(f"{name} holds non-finite values")
        if values.min() < -_RANGE_SLACK or values.max() > 1 + _RANGE_SLACK:
            raise ValueError(
                f"{name} must lie in [0, 1], got [{float(values.min()):.4g}, "
                f"{float(values.max()):.4g}]: pass normalised inputs through to_unit_range first"
            )
        pair.append((values if values.dim() == 4 else values.unsqueeze(0)).clamp(0.0, 1.0))
    return pair[0], pair[1]


def _result(values: Tensor, single: bool) -> float | Tensor:
    return float(values[0]) if single else values


def mse(reconstruction: Tensor, truth: Tensor) -> float | Tensor:
    """Mean squared error per image.

    Shapes: (C, H, W) pair -> float; (N, C, H, W) pair -> (N,) float64.
    """
    first, second = _pair(reconstruction, truth)
    return _result(((first - second) ** 2).mean(dim=(1, 2, 3)), reconstruction.dim() == 3)


def psnr(reconstruction: Tensor, truth: Tensor) -> float | Tensor:
    """Peak signal-to-noise ratio in dB, 10 log10(1 / MSE), for images in [0, 1].

    Identical images (MSE exactly 0) give ``math.inf``, not a cap: an exact reconstruction is
    reported as exact, and means over samples should use medians or count infinities apart.
    Shapes: (C, H, W) pair -> float; (N, C, H, W) pair -> (N,) float64.
    """
    first, second = _pair(reconstruction, truth)
    errors = ((first - second) ** 2).mean(dim=(1, 2, 3))
    values = torch.where(
        errors > 0, -10.0 * torch.log10(errors.clamp_min(1e-300)), torch.full_like(errors, math.inf)
    )
    return _result(values, reconstruction.dim() == 3)


def ssim(reconstruction: Tensor, truth: Tensor) -> float | Tensor:
    """Structural similarity exactly as ``skimage.metrics.structural_similarity`` computes it.

    Defaults of scikit-image (7 x 7 uniform window, K1 0.01, K2 0.03), ``data_range=1.0``,
    channels as ``channel_axis``; images need sides of at least 7 pixels.
    Shapes: (C, H, W) pair -> float; (N, C, H, W) pair -> (N,) float64.
    """
    # Imported on first use: scikit-image adds ~0.3 s to the import of code that never needs it.
    from skimage.metrics import structural_similarity

    first, second = _pair(reconstruction, truth)
    if min(first.shape[-2:]) < 7:
        raise ValueError(
            f"ssim needs images of at least 7 x 7 pixels (scikit-image's window), got "
            f"{tuple(first.shape[-2:])}"
        )
    values = [
        structural_similarity(
            a.permute(1, 2, 0).cpu().numpy(),
            b.permute(1, 2, 0).cpu().numpy(),
            channel_axis=-1,
            data_range=1.0,
        )
        for a, b in zip(first, second, strict=True)
    ]
    return _result(torch.tensor(np.asarray(values), dtype=torch.float64), reconstruction.dim() == 3)


@dataclass(frozen=True)
class ImageScores:
    """How close one reconstruction came to the truth, on de-normalised images in [0, 1].

    ``psnr_8bit`` compares both images rounded to 8-bit levels: ``inf`` means the saved image
    would equal the truth exactly (the paper's "exact" reconstructions).
    Paper: Wang, Liang & He, ICLR 2024, Table 3. Shapes: scalars.
    """

    psnr: float
    psnr_8bit: float
    ssim: float
    mse: float


def score_images(
    reconstruction: Tensor, truth: Tensor, *, mean: Sequence[float], std: Sequence[float]
) -> ImageScores:
    """PSNR (float and 8-bit), SSIM and MSE of one normalised image against the truth, both
    de-normalised with the dataset's ``mean``/``std`` and clamped to [0, 1] (`to_unit_range`).

    Shapes: ``reconstruction``, ``truth`` (C, H, W) normalised; ``mean``, ``std`` (C,).
    """
    unit = to_unit_range(reconstruction, mean, std)
    true_unit = to_unit_range(truth, mean, std)
    eight_bit = to_unit_range(reconstruction, mean, std, quantise=True)
    true_eight_bit = to_unit_range(truth, mean, std, quantise=True)
    return ImageScores(
        psnr=psnr(unit, true_unit),
        psnr_8bit=psnr(eight_bit, true_eight_bit),
        ssim=ssim(unit, true_unit),
        mse=mse(unit, true_unit),
    )


@functools.cache
def _lpips_model(net: str):
    try:
        lpips_package = importlib.import_module("lpips")
    except ImportError as error:
        raise MetricUnavailable(
            "LPIPS needs the optional 'lpips' package and torchvision (`pip install lpips`), "
            "with its ImageNet backbone already in the torch hub cache; gradleak never downloads"
        ) from error
    checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / _LPIPS_BACKBONES[net]
    if not checkpoint.is_file():
        raise MetricUnavailable(
            f"LPIPS({net}) needs its torchvision backbone at {checkpoint}; gradleak never "
            "downloads: copy that file there to enable LPIPS"
        )
    model = lpips_package.LPIPS(net=net, verbose=False)
    return model.eval()


def lpips(reconstruction: Tensor, truth: Tensor, *, net: str = "alex") -> float | Tensor:
    """Learned perceptual distance (Zhang et al., CVPR 2018); lower is closer.

    Optional: raises `MetricUnavailable` (saying how to enable it) when the ``lpips`` package
    is not installed or its backbone weights are not cached locally: nothing is downloaded.
    ``net`` is "alex", "vgg" or "squeeze".
    Shapes: (C, H, W) pair -> float; (N, C, H, W) pair -> (N,) float64; C must be 3.
    """
    if net not in _LPIPS_BACKBONES:
        raise ValueError(f"net={net!r} is unknown; choose one of {sorted(_LPIPS_BACKBONES)}")
    first, second = _pair(reconstruction, truth)
    if first.shape[1] != 3:
        raise ValueError(f"lpips needs RGB images (3 channels), got {first.shape[1]}")
    model = _lpips_model(net)
    with torch.no_grad():
        values = model(first.float() * 2 - 1, second.float() * 2 - 1).flatten().double()
    return _result(values, reconstruction.dim() == 3)
