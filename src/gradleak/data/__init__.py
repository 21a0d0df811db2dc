"""Datasets that need no download."""

from gradleak.data.embedded import EMBEDDED, ImageSet, load_embedded

__all__ = ["EMBEDDED", "ImageSet", "load_embedded"]
