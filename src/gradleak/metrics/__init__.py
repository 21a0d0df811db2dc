"""Metrics: how close an attack came to the client's truth (evaluation only)."""

from gradleak.metrics.assignment import BatchImageScores, match_labels, score_batch_images
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
    "BatchImageScores",
    "ImageScores",
    "MetricUnavailable",
    "label_l1",
    "lpips",
    "match_labels",
    "mse",
    "psnr",
    "relative_feature_error",
    "score_batch_images",
    "score_images",
    "ssim",
    "to_unit_range",
]
