"""Raw pixel arrays -> the float tensors every loader returns: [0, 1] scaling, resizing, stats.

Loaders read bytes in their own formats; this module is the one place that decides how those
bytes become ``ImageSet.images``, so every dataset is scaled and resized the same way.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional


def unit_images(pixels: np.ndarray) -> Tensor:
    """Scale 8-bit pixels to float32 in [0, 1].

    Shapes: ``pixels`` (N, C, H, W) uint8 -> (N, C, H, W) float32.
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 4:
        raise ValueError(
            f"pixels must be a uint8 (N, C, H, W) array, got {pixels.dtype} {pixels.shape}"
        )
    # astype copies into a writable array: idx and pickle buffers are read-only.
    return torch.from_numpy(pixels.astype(np.float32) / np.float32(255.0))


def resize_square(images: Tensor, size: int) -> Tensor:
    """Resize square images to ``size`` x ``size`` (bilinear, antialiased when shrinking).

    Antialiasing keeps downsized images free of aliasing; bilinear weights are non-negative,
    so values stay in [0, 1] (the clamp only absorbs rounding).

    Shapes: ``images`` (N, C, H, H) -> (N, C, size, size).
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images must be square (N, C, H, H), got {tuple(images.shape)}")
    if size < 1:
        raise ValueError(f"size must be >= 1 pixel, got {size}")
    if images.shape[-1] == size:
        return images
    resized = functional.interpolate(
        images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return resized.clamp_(0.0, 1.0)


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation over all images and pixels (float64 sums).

    Used for folders of images that have no published statistics. A channel with zero spread
    cannot be standardised, so it is an error rather than a silent division by zero.

    Shapes: ``images`` (N, C, H, W) -> two tuples of length C.
    """
    per_channel = images.transpose(0, 1).reshape(images.shape[1], -1).to(torch.float64)
    mean = per_channel.mean(dim=1)
    std = per_channel.std(dim=1, correction=0)
    if bool((std < 1e-6).any()):
        raise ValueError(
            f"images have no spread in channel(s) {torch.nonzero(std < 1e-6).flatten().tolist()}"
            "; they cannot be normalised (are all images the same colour?)"
        )
    return tuple(float(value) for value in mean), tuple(float(value) for value in std)
