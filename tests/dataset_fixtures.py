"""Fixture writers: small dataset folders in the real file formats (idx, CIFAR pickles, PNGs)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CIFAR10_NAMES = [
    b"airplane",
    b"automobile",
    b"bird",
    b"cat",
    b"deer",
    b"dog",
    b"frog",
    b"horse",
    b"ship",
    b"truck",
]


def write_idx(path: Path, array: np.ndarray, *, magic: int) -> None:
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def fashion_folder(folder: Path, *, counts=(6, 4), gz: bool = True) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    arrays = {}
    for prefix, count in zip(("train", "t10k"), counts, strict=True):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) * 3 % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, magic=2051)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, magic=2049)
        arrays[prefix] = images
        arrays[f"{prefix}-labels"] = labels
    return arrays


def write_pickle(path: Path, value: object) -> None:
    path.write_bytes(pickle.dumps(value, protocol=2))


def cifar_batch(count: int, *, start: int, classes: int, label_key: bytes) -> dict:
    pixels = (np.arange(count * 3072) % 251).astype(np.uint8).reshape(count, 3072)
    pixels[:, :1024], pixels[:, 1024:2048], pixels[:, 2048:] = 10, 20, 30
    pixels[:, 0] = np.arange(start, start + count)  # red (0, 0) tags the sample's position
    return {
        b"batch_label": b"fixture batch",
        label_key: [(start + i) % classes for i in range(count)],
        b"data": pixels,
        b"filenames": [f"img_{start + i}.png".encode() for i in range(count)],
    }


def cifar10_folder(parent: Path) -> Path:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(5):
        batch = cifar_batch(2, start=2 * i, classes=10, label_key=b"labels")
        write_pickle(folder / f"data_batch_{i + 1}", batch)
    write_pickle(folder / "test_batch", cifar_batch(3, start=100, classes=10, label_key=b"labels"))
    write_pickle(folder / "batches.meta", {b"label_names": CIFAR10_NAMES, b"num_vis": 3072})
    return folder


def cifar100_folder(parent: Path) -> Path:
    folder = parent / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, count in (("train", 5), ("test", 4)):
        batch = cifar_batch(count, start=95, classes=100, label_key=b"fine_labels")
        batch[b"coarse_labels"] = [0] * count
        write_pickle(folder / split, batch)
    fine = [f"class{i}".encode() for i in range(100)]
    write_pickle(folder / "meta", {b"fine_label_names": fine, b"coarse_label_names": fine[:20]})
    return folder


def image_folder(root: Path, colours: dict[str, list[tuple[int, int, int]]]) -> Path:
    for class_name, class_colours in colours.items():
        (root / class_name).mkdir(parents=True)
        for i, colour in enumerate(class_colours):
            suffix = ".PNG" if i == 1 else ".png"
            Image.new("RGB", (12, 8), colour).save(root / class_name / f"{i}{suffix}")
    return root


def python2_pickle(value: object) -> bytes:
    """``value`` pickled the way Python 2's cPickle writes protocol 2 (NumPy 1.x era).

    Python 2 ``str`` is written as ``BINSTRING`` (bytes here), arrays through
    ``numpy.core.multiarray._reconstruct`` with ``str`` dtype codes, and every container and
    string is memoised with sequential ``BINPUT`` indices. Handles dict, list, int, bytes and
    C-ordered native NumPy arrays.
    """
    out = [b"\x80\x02"]
    memo = iter(range(2**32))

    def put() -> None:
        index = next(memo)
        out.append(b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index))

    def string(text: bytes) -> None:
        if len(text) < 256:
            out.append(b"U" + bytes([len(text)]) + text)
        else:
            out.append(b"T" + struct.pack("<I", len(text)) + text)
        put()

    def emit(item: object) -> None:
        if isinstance(item, dict):
            out.append(b"}")
            put()
            out.append(b"(")
            for key, entry in item.items():
                emit(key)
                emit(entry)
            out.append(b"u")
        elif isinstance(item, list):
            out.append(b"]")
            put()
            out.append(b"(")
            for entry in item:
                emit(entry)
            out.append(b"e")
        elif isinstance(item, int):
            out.append(b"J" + struct.pack("<i", item))
        elif isinstance(item, bytes):
            string(item)
        elif isinstance(item, np.ndarray):
            out.append(b"cnumpy.core.multiarray\n_reconstruct\n")
            put()
            out.append(b"cnumpy\nndarray\n")
            put()
            out.append(b"K\x00\x85")
            string(b"b")
            out.append(b"\x87R")
            put()
            out.append(b"(K\x01(" + b"".join(b"J" + struct.pack("<i", n) for n in item.shape))
            out.append(b"tcnumpy\ndtype\n")
            put()
            string(item.dtype.str[1:].encode())
            out.append(b"K\x00K\x01\x87R")
            put()
            out.append(b"(K\x03")
            string(item.dtype.str[:1].encode())
            out.append(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89")
            string(item.tobytes())
            out.append(b"tb")
        else:
            raise TypeError(f"python2_pickle cannot write {type(item).__name__}")

    emit(value)
    return b"".join(out) + b"."
