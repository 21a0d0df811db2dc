"""Metrics: how close an attack came to the client's truth (evaluation only)."""

from gradleak.metrics.images import (
    ImageScores,
    MetricUnavailable,
    lpips,
    mse,
    psnr,
    score_images,
    ssim,
    to_unit_range,
)
from gradleak.metrics.labels import label_l1, relative_feature_error

__all__ = [
    "ImageScores",
    "MetricUnavailable",
    "label_l1",
    "lpips",
    "mse",
    "psnr",
    "relative_feature_error",
    "score_images",
    "ssim",
    "to_unit_range",
]
