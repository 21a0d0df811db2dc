"""Dataset registry: every loader on small fixture folders written in the real file formats."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch

from dataset_fixtures import (
    REAL_FASHION_MNIST,
    cifar10_folder,
    cifar100_folder,
    cifar_batch,
    fashion_folder,
    image_folder,
    write_idx,
    write_pickle,
)
from gradleak.data import FASHION_MNIST_CLASS_NAMES, ImageSet, load, names

# --- registry ---------------------------------------------------------------------------------


def test_names_lists_every_source():
    assert names() == sorted(names())
    expected = {"embedded-cifar10", "embedded-cifar100", "embedded-imagenet", "fashion-mnist"}
    assert expected | {"cifar10", "cifar100", "image-folder"} <= set(names())


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"dataset 'mnist' is unknown.*fashion-mnist"):
        load("mnist")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "valid"}, r"split='valid' is not a split of fashion-mnist.*'train', 'test'"),
        ({"limit": 0}, "limit must be >= 1"),
        ({"image_size": 4}, "image_size must be >= 8"),
    ],
)
def test_arguments_are_validated_before_reading(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        load("fashion-mnist", tmp_path / "absent", **kwargs)


def test_embedded_sets_through_the_registry():
    images = load("embedded-cifar10", limit=3)
    assert images.images.shape == (3, 3, 32, 32)
    assert images.labels.tolist() == [3, 8, 8]
    assert (images.in_channels, images.image_size) == (3, 32)
    with pytest.raises(ValueError, match=r"root must be None for embedded-cifar10"):
        load("embedded-cifar10", "/tmp")
    with pytest.raises(ValueError, match=r"choose one of \('test',\)"):
        load("embedded-imagenet", split="train")


# --- Fashion-MNIST ----------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files(tmp_path, gz):
    arrays = fashion_folder(tmp_path, gz=gz)
    train = load("fashion-mnist", tmp_path, split="train")
    test = load("fashion-mnist", str(tmp_path))
    assert train.images.shape == (6, 1, 28, 28) and test.images.shape == (4, 1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert torch.equal(test.images[:, 0], torch.from_numpy(arrays["t10k"]).float() / 255)
    assert train.labels.tolist() == [0, 3, 6, 9, 2, 5]
    assert (train.mean, train.std) == ((0.2860,), (0.3530,))
    assert train.class_names == FASHION_MNIST_CLASS_NAMES and train.class_names[9] == "Ankle boot"
    assert train.num_classes == 10 and train.in_channels == 1


def test_fashion_mnist_limit_and_resize(tmp_path):
    fashion_folder(tmp_path)
    images = load("fashion-mnist", tmp_path, split="train", limit=2, image_size=14)
    assert images.images.shape == (2, 1, 14, 14)
    assert images.labels.tolist() == [0, 3]
    assert float(images.images.min()) >= 0 and float(images.images.max()) <= 1
    full = load("fashion-mnist", tmp_path, split="train", limit=2)
    # Antialiased 2x shrink keeps the average brightness.
    assert torch.allclose(images.images.mean((2, 3)), full.images.mean((2, 3)), atol=0.02)


def test_normalise_one_channel_batches_and_single_images(tmp_path):
    fashion_folder(tmp_path)
    images = load("fashion-mnist", tmp_path)
    expected = (images.images - 0.2860) / 0.3530
    assert torch.allclose(images.normalise(images.images), expected)
    assert torch.allclose(images.normalise(images.images[0]), expected[0])
    with pytest.raises(ValueError, match=r"images must be \(N, 1, H, W\)"):
        images.normalise(torch.zeros(2, 3, 28, 28))


def test_fashion_mnist_missing_folder_says_what_and_where(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load("fashion-mnist", tmp_path / "nowhere")
    message = str(error.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "dataset-fashion-mnist" in message
    assert "root=PATH" in message and "--data-root" not in message  # the CLI spells its flag


def test_fashion_mnist_missing_file_is_named(tmp_path):
    fashion_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte.gz or t10k-labels"):
        load("fashion-mnist", tmp_path)
    assert load("fashion-mnist", tmp_path, split="train").labels.numel() == 6


def test_fashion_mnist_bad_magic_names_the_file(tmp_path):
    fashion_folder(tmp_path)
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, magic=2049 + 2)
    load("fashion-mnist", tmp_path)  # 2051 is right
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, magic=1234)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: idx magic number is 1234"):
        load("fashion-mnist", tmp_path)


def test_fashion_mnist_count_mismatch_and_truncation(tmp_path):
    fashion_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8), magic=2049)
    with pytest.raises(ValueError, match=r"4 images but .*t10k-labels-idx1-ubyte.gz holds 3"):
        load("fashion-mnist", tmp_path)
    payload = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(payload[:-100]))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: header .*truncated"):
        load("fashion-mnist", tmp_path, split="train")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(payload)[:50])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: not a readable gzip"):
        load("fashion-mnist", tmp_path, split="train")


def test_real_fashion_mnist_package():
    if not (REAL_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"{REAL_FASHION_MNIST} absent (Debian package dataset-fashion-mnist)")
    train, test = load("fashion-mnist", split="train"), load("fashion-mnist")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    # The published statistics are those of these very training images.
    assert abs(float(train.images.mean()) - 0.2860) < 1e-3
    assert abs(float(train.images.std()) - 0.3530) < 1e-3


# --- CIFAR ------------------------------------------------------------------------------------


def test_cifar10_from_the_folder_or_its_parent(tmp_path):
    folder = cifar10_folder(tmp_path)
    train = load("cifar10", tmp_path, split="train")
    test = load("cifar10", folder)
    assert train.images.shape == (10, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    assert train.labels.tolist() == list(range(10))  # batches 1..5 in order
    assert test.labels.tolist() == [0, 1, 2]
    assert train.class_names is not None and train.class_names[9] == "truck"
    assert train.mean == (0.4914, 0.4822, 0.4465) and train.num_classes == 10
    # Row layout: 1024 red, 1024 green, 1024 blue values, each a row-major 32x32 image.
    assert torch.allclose(train.images[:, 0, 0, 0] * 255, torch.arange(10.0))
    assert float(train.images[0, 0, 0, 1]) * 255 == pytest.approx(10)
    assert float(train.images[0, 1, 5, 7]) * 255 == pytest.approx(20)
    assert float(train.images[0, 2, 31, 31]) * 255 == pytest.approx(30)


def test_cifar10_limit_spans_batches_and_resizes(tmp_path):
    cifar10_folder(tmp_path)
    images = load("cifar10", tmp_path, split="train", limit=3, image_size=16)
    assert images.images.shape == (3, 3, 16, 16)
    assert images.labels.tolist() == [0, 1, 2]
    assert float(images.images.min()) >= 0 and float(images.images.max()) <= 1


def test_cifar100_uses_fine_labels(tmp_path):
    cifar100_folder(tmp_path)
    train = load("cifar100", tmp_path, split="train")
    test = load("cifar100", tmp_path / "cifar-100-python", split="test")
    assert train.labels.tolist() == [95, 96, 97, 98, 99] and test.labels.numel() == 4
    assert train.num_classes == 100 and train.class_names is not None
    assert train.class_names[99] == "class99" and train.std == (0.2673, 0.2564, 0.2762)


def test_cifar_pickles_with_str_keys_are_accepted(tmp_path):
    folder = cifar10_folder(tmp_path)
    batch = cifar_batch(2, start=7, classes=10, label_key=b"labels")
    write_pickle(folder / "test_batch", {key.decode(): value for key, value in batch.items()})
    assert load("cifar10", folder).labels.tolist() == [7, 8]


def test_cifar_root_is_required_and_never_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load("cifar10")
    message = str(error.value)
    assert "cifar-10-batches-py" in message and "cifar-10-python.tar.gz" in message
    assert "root=" in message and "Nothing is downloaded" in message
    with pytest.raises(FileNotFoundError, match=r"cifar100: folder .*nowhere not found"):
        load("cifar100", tmp_path / "nowhere")


def test_cifar_missing_batch_is_named(tmp_path):
    folder = cifar10_folder(tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_4 not found in .*cifar-10-batches-py"):
        load("cifar10", tmp_path, split="train")


def test_forbidden_pickle_global_is_refused_without_running(tmp_path):
    folder = cifar10_folder(tmp_path)
    marker = tmp_path / "pwned"
    # The classic exploit: a pickle whose reduce calls os.system.
    exploit = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    (folder / "test_batch").write_bytes(exploit)
    with pytest.raises(ValueError, match=r"test_batch: .*refusing global os.system"):
        load("cifar10", folder)
    assert not marker.exists()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": eval}, protocol=2))
    with pytest.raises(ValueError, match=r"refusing global __builtin__\.eval"):
        load("cifar10", folder)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda batch: batch.pop(b"data"), "has no 'data' entry"),
        (lambda batch: batch.update({b"data": batch[b"data"].astype(np.int16)}), "uint8"),
        (lambda batch: batch[b"labels"].pop(), "3 images but 2 'labels'"),
        (lambda batch: batch.update({b"labels": [0, 1, 10]}), r"labels must lie in 0..9"),
    ],
)
def test_malformed_cifar_batch_names_the_file(tmp_path, change, message):
    folder = cifar10_folder(tmp_path)
    batch = cifar_batch(3, start=0, classes=10, label_key=b"labels")
    change(batch)
    write_pickle(folder / "test_batch", batch)
    with pytest.raises(ValueError, match=f"test_batch: .*{message}"):
        load("cifar10", folder)


def test_truncated_cifar_pickle_names_the_file(tmp_path):
    folder = cifar10_folder(tmp_path)
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"data_batch_2: not a valid dataset pickle"):
        load("cifar10", folder, split="train")


# --- image folders ----------------------------------------------------------------------------

COLOURS = {"dog": [(200, 10, 10), (180, 20, 20)], "cat": [(10, 10, 200)], "bird": [(0, 90, 0)]}


def test_image_folder_sorts_classes_and_measures_statistics(tmp_path):
    root = image_folder(tmp_path / "pets", COLOURS)
    (root / "cat" / "notes.txt").write_text("not an image")
    images = load("image-folder", root, image_size=16)
    assert images.class_names == ("bird", "cat", "dog") and images.num_classes == 3
    assert images.labels.tolist() == [0, 1, 2, 2]
    assert images.images.shape == (4, 3, 16, 16)
    assert images.images[1, :, 3, 3].mul(255).round().tolist() == [10, 10, 200]
    per_channel = images.images.transpose(0, 1).reshape(3, -1).double()
    assert images.mean == pytest.approx(per_channel.mean(1).tolist())
    assert images.std == pytest.approx(per_channel.std(1, correction=0).tolist())
    normalised = images.normalise(images.images).transpose(0, 1).reshape(3, -1)
    assert normalised.mean(1).abs().max() < 1e-5


def test_image_folder_defaults_to_224_and_limits(tmp_path):
    root = image_folder(tmp_path, COLOURS)
    images = load("image-folder", root, split="all", limit=2)
    assert images.images.shape == (2, 3, 224, 224)
    assert images.labels.tolist() == [0, 1] and images.num_classes == 3


def test_image_folder_split_subfolders(tmp_path):
    image_folder(tmp_path / "train", COLOURS)
    image_folder(tmp_path / "test", {"cat": [(1, 2, 3)], "dog": [(4, 5, 6)]})
    assert load("image-folder", tmp_path, split="train", image_size=8).labels.numel() == 4
    test = load("image-folder", tmp_path, image_size=8)
    assert test.class_names == ("cat", "dog") and test.labels.tolist() == [0, 1]
    with pytest.raises(FileNotFoundError, match=r"val not found.*found split folders: \['test'"):
        load("image-folder", tmp_path, split="val")
    with pytest.raises(ValueError, match=r"holds split folders.*choose split="):
        load("image-folder", tmp_path, split="all")


@pytest.mark.parametrize(
    ("layout", "error", "message"),
    [
        ({"cat": [(1, 2, 3)]}, ValueError, r"1 class folder\(s\) \['cat'\]; at least 2"),
        ({"cat": [(1, 2, 3)], "dog": []}, FileNotFoundError, "class folder .*dog holds no images"),
    ],
)
def test_image_folder_rejects_bad_layouts(tmp_path, layout, error, message):
    root = image_folder(tmp_path, {name: c for name, c in layout.items() if c})
    for name in layout:
        (root / name).mkdir(exist_ok=True)
    with pytest.raises(error, match=message):
        load("image-folder", root, split="all")


def test_image_folder_errors_name_the_file_or_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"image-folder needs root.*root=PATH"):
        load("image-folder")
    with pytest.raises(FileNotFoundError, match=r"folder .*missing not found.*<class_name>"):
        load("image-folder", tmp_path / "missing")
    root = image_folder(tmp_path / "broken", COLOURS)
    (root / "cat" / "9.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cat/9.png is not a readable image"):
        load("image-folder", root, image_size=8)


def test_image_set_checks_its_own_shapes():
    with pytest.raises(ValueError, match=r"labels must be \(2,\)"):
        ImageSet("x", torch.zeros(2, 1, 8, 8), torch.zeros(3, dtype=torch.int64), 2, (0.5,), (1.0,))
    with pytest.raises(ValueError, match=r"one entry per channel"):
        ImageSet("x", torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.int64), 2, (0.5,), (1.0,))
