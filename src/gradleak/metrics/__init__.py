"""Metrics: how close an attack came to the client's truth (evaluation only)."""

from gradleak.metrics.labels import label_l1, relative_feature_error

__all__ = ["label_l1", "relative_feature_error"]
