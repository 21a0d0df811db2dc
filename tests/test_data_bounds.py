"""Dataset files cannot make the loaders allocate more than the file itself supplies.

Pickle bombs run in one subprocess under a low address-space limit (``RLIMIT_AS``), so a
regression fails with a MemoryError there instead of eating this machine's memory.
"""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_fixtures import cifar10_folder, cifar_batch, image_folder, python2_pickle
from gradleak.data import load, load_embedded

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import _reconstruct

MILLION_IMAGES = (10**6, 3072)


class Reduce:
    """Pickles as ``function(*args)``, then ``BUILD`` with ``state`` when given."""

    def __init__(self, function, args, state=None):
        self.function, self.args, self.state = function, args, state

    def __reduce__(self):
        if self.state is None:
            return self.function, self.args
        return self.function, self.args, self.state


class TamperedDtype:
    """A uint8 dtype whose pickled state claims the object flags (list-pickled items)."""

    def __reduce__(self):
        return np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 0x3F)


def _batch(data) -> bytes:
    return pickle.dumps({b"data": data, b"labels": [0]}, protocol=2)


def _empty_array(state) -> Reduce:
    return Reduce(_reconstruct, (np.ndarray, (0,), b"b"), state)


def _hex_chain(levels: int) -> bytes:
    """``_codecs.encode(..., "hex")`` nested ``levels`` deep: doubles the bytes each level."""
    body = b"C\x04abcd"
    for _ in range(levels):
        body = b"h\x00" + body + b"h\x01\x86R"
    return b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00hexq\x010" + body + b"."


BOMBS = {
    "ndarray-call": _batch(Reduce(np.ndarray, (MILLION_IMAGES, "u1"))),
    "reconstruct-million": _batch(Reduce(_reconstruct, (np.ndarray, MILLION_IMAGES, b"B"))),
    "reconstruct-billion": _batch(Reduce(_reconstruct, (np.ndarray, (10**9, 3072), b"B"))),
    "object-setstate": _batch(_empty_array((1, MILLION_IMAGES, np.dtype(object), False, [0]))),
    "tampered-dtype": _batch(_empty_array((1, MILLION_IMAGES, TamperedDtype(), False, [0]))),
    "short-rawdata": _batch(_empty_array((1, MILLION_IMAGES, np.dtype("u1"), False, b"xy"))),
    "bytes8-length": b"\x80\x04\x8e" + struct.pack("<Q", 2**36) + b"x.",
    "memo-index": b"\x80\x02N" + b"r" + struct.pack("<I", 2**31) + b".",
    "hex-chain": _hex_chain(30),
}

_PROBE = """
import json, resource, sys
from pathlib import Path
from gradleak.data import load

def address_space():
    return int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()

resource.setrlimit(resource.RLIMIT_AS, (address_space() + 2**30, resource.RLIM_INFINITY))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcomes = {}
for name, folder in json.loads(sys.argv[1]).items():
    try:
        outcomes[name] = {"loaded": load("cifar10", Path(folder)).labels.tolist()}
    except Exception as error:
        outcomes[name] = {
            "error": type(error).__name__,
            "message": str(error),
            "cause": type(error.__cause__).__name__,
        }
outcomes["rss_growth_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps(outcomes))
"""


@pytest.fixture(scope="module")
def bomb_outcomes(tmp_path_factory) -> dict:
    """Every bomb as the ``test_batch`` of its own CIFAR-10 folder, all loaded in one child."""
    root = tmp_path_factory.mktemp("bombs")
    folders = {}
    for name, raw in {**BOMBS, "real": None}.items():
        folder = cifar10_folder(root / name)
        if raw is not None:
            (folder / "test_batch").write_bytes(raw)
        folders[name] = str(folder)
    child = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(folders)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_tiny_pickle_bombs_are_refused_without_allocating(bomb_outcomes, name):
    assert len(BOMBS[name]) < 400
    outcome = bomb_outcomes[name]
    assert outcome.get("error") == "ValueError", outcome
    assert f"{name}/cifar-10-batches-py/test_batch" in outcome["message"]
    # Under the 1 GiB headroom an attempted allocation surfaces as a MemoryError.
    assert outcome["cause"] != "MemoryError" and "allocate" not in outcome["message"]


def test_a_real_batch_loads_under_the_same_limit(bomb_outcomes):
    assert bomb_outcomes["real"] == {"loaded": [0, 1, 2]}
    assert bomb_outcomes["rss_growth_kib"] < 200 * 1024


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_empty_array((1, (2, 3072), np.dtype(object), False, [0] * 6144)), "object"),
        (_empty_array((1, (2, 3072), TamperedDtype(), False, [0] * 6144)), "flags"),
        (_empty_array((1, (2, 3072), np.dtype("u1"), False, b"xy")), r"6144 bytes.*supplies 2"),
        (_empty_array((1, (2,), np.dtype("(3072,)u1"), False, b"x" * 6144)), "V3072 is refused"),
        (Reduce(_reconstruct, (np.ndarray, (2, 3072), b"B")), r"\(2, 3072\)"),
        (Reduce(np.ndarray, ((2, 3072), "u1")), "not callable"),
    ],
)
def test_small_forged_arrays_are_refused_with_the_reason(tmp_path, data, message):
    folder = cifar10_folder(tmp_path)
    (folder / "test_batch").write_bytes(_batch(data))
    with pytest.raises(ValueError, match=f"test_batch: .*{message}"):
        load("cifar10", folder)
    assert np.dtype("u1").flags == 0  # a forged dtype state never reaches NumPy's shared uint8


def test_codec_calls_other_than_latin1_strings_are_refused(tmp_path):
    folder = cifar10_folder(tmp_path)
    (folder / "test_batch").write_bytes(_hex_chain(1))
    with pytest.raises(ValueError, match=r"test_batch: .*latin1.*'hex'"):
        load("cifar10", folder)


def test_memo_indices_may_not_skip_ahead(tmp_path):
    folder = cifar10_folder(tmp_path)
    (folder / "test_batch").write_bytes(b"\x80\x02N" + b"r" + struct.pack("<I", 1000) + b".")
    with pytest.raises(ValueError, match=r"test_batch: .*memo index 1000"):
        load("cifar10", folder)


def test_python2_numpy_pickles_still_load(tmp_path):
    folder = cifar10_folder(tmp_path)
    batch = cifar_batch(300, start=4, classes=10, label_key=b"labels")
    raw = python2_pickle(batch)
    assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw
    (folder / "test_batch").write_bytes(raw)
    images = load("cifar10", folder)
    assert images.labels.tolist() == [(4 + i) % 10 for i in range(300)]
    assert images.images[:, 0, 0, 0].mul(255).round().tolist() == [
        (4 + i) % 256 for i in range(300)
    ]


def test_python3_pickles_of_protocols_2_to_4_still_load(tmp_path):
    folder = cifar10_folder(tmp_path)
    batch = cifar_batch(3, start=1, classes=10, label_key=b"labels")
    batch[b"data"] = np.asfortranarray(batch[b"data"])
    for protocol in (2, 3, 4):
        (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
        images = load("cifar10", folder)
        assert images.labels.tolist() == [1, 2, 3]
        assert images.images[:, 0, 0, 0].mul(255).round().tolist() == [1, 2, 3]


# --- decompression bombs ----------------------------------------------------------------------


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit greyscale PNG of ``width`` x ``height`` black pixels: tiny on disk."""
    row = bytes(1 + (width + 7) // 8)
    deflate = zlib.compressobj(9)
    rows_per_piece = max(1, 2**20 // len(row))
    pieces = [
        deflate.compress(row * min(rows_per_piece, height - start))
        for start in range(0, height, rows_per_piece)
    ]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(pieces) + deflate.flush())
        + _chunk(b"IEND", b"")
    )
    return path


def test_decompression_bomb_in_an_image_folder_is_refused(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": [(1, 2, 3)], "dog": [(4, 5, 6)]})
    bomb = bomb_png(root / "dog" / "bomb.png", 30000, 30000)
    assert bomb.stat().st_size < 200_000
    limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match=rf"dog/bomb.png .*decompression bomb.*{limit} pixels"):
        load("image-folder", root, image_size=8)
    assert limit == Image.MAX_IMAGE_PIXELS  # PIL's guard stays on


def test_images_between_the_limit_and_twice_it_are_refused_too(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    root = image_folder(tmp_path / "pets", {"cat": [(1, 2, 3)], "dog": [(4, 5, 6)]})
    bomb_png(root / "cat" / "big.png", 150, 100)  # 15000 pixels: PIL only warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"cat/big.png .*decompression bomb.*10000 pixels"):
            load("image-folder", root, image_size=8)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)
    assert load("image-folder", root, image_size=8).labels.tolist() == [0, 0, 1]


def test_embedded_images_share_the_guarded_reader(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match=r"cifar10_.*\.png .*decompression bomb.*100 pixels"):
        load_embedded("embedded-cifar10")
