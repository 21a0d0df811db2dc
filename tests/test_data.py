"""Embedded real images read from the installed foolbox package."""

import pytest

from gradleak.data import load_embedded


@pytest.mark.parametrize(
    ("name", "classes", "size"),
    [
        ("embedded-cifar10", 10, 32),
        ("embedded-cifar100", 100, 32),
        ("embedded-imagenet", 1000, 224),
    ],
)
def test_embedded_sets_have_real_images_and_labels(name, classes, size):
    images = load_embedded(name)
    assert images.images.shape == (20, 3, size, size)
    assert images.images.min() >= 0 and images.images.max() <= 1
    assert images.images.std() > 0.1  # real pictures, not blanks
    assert ((images.labels >= 0) & (images.labels < classes)).all()
    assert images.num_classes == classes


def test_cifar10_labels_come_from_the_file_names():
    images = load_embedded("embedded-cifar10")
    assert images.labels[:4].tolist() == [3, 8, 8, 0]


def test_resize_and_normalise():
    images = load_embedded("embedded-imagenet", image_size=64)
    assert images.images.shape[-2:] == (64, 64)
    normalised = images.normalise(images.images)
    assert abs(float(normalised.mean())) < 1.0


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="embedded-cifar10"):
        load_embedded("cifar-11")
