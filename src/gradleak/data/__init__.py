"""Datasets from local folders and installed packages: one ``load(name, root, ...)`` for all.

Nothing downloads: embedded images ship in foolbox, Fashion-MNIST comes from the Debian package
``dataset-fashion-mnist``, CIFAR and image folders from a folder the user passes as ``root``.
"""

from gradleak.data.embedded import EMBEDDED, ImageSet, load_embedded
from gradleak.data.fashion_mnist import CLASS_NAMES as FASHION_MNIST_CLASS_NAMES
from gradleak.data.registry import DatasetSpec, load, names, spec

__all__ = [
    "EMBEDDED",
    "FASHION_MNIST_CLASS_NAMES",
    "DatasetSpec",
    "ImageSet",
    "load",
    "load_embedded",
    "names",
    "spec",
]
