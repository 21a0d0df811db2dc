"""Reader for the idx format of MNIST-style datasets (plain or gzipped files).

The format is a big-endian header: a 4-byte magic number whose low byte is the number of
dimensions and whose third byte is the element type (0x08 = unsigned byte), then one 4-byte
size per dimension, then the raw elements. Images files use magic 2051 (3 dimensions: count,
rows, columns), label files 2049 (1 dimension: count).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

#: Magic number of an unsigned-byte idx file with 3 dimensions (images) and 1 (labels).
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

_HEADER_FIELD = np.dtype(">u4")


def read_idx(path: Path, *, magic: int) -> np.ndarray:
    """Read an unsigned-byte idx file, checking its magic number and its exact length.

    A gzip file (``.gz`` suffix) is decompressed in memory. A wrong magic number, a truncated
    or over-long payload, or a corrupt gzip stream is a ``ValueError`` naming the file.

    Shapes: returns a uint8 array of the header's dimensions, e.g. (N, 28, 28) or (N,).
    """
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise ValueError(f"magic must be {IMAGES_MAGIC} or {LABELS_MAGIC}, got {magic}")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: not a readable gzip file ({error})") from error
    ndim = magic & 0xFF
    header_size = 4 * (1 + ndim)
    if len(raw) < header_size:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an idx header")
    header = np.frombuffer(raw, dtype=_HEADER_FIELD, count=1 + ndim)
    if int(header[0]) != magic:
        raise ValueError(
            f"{path}: idx magic number is {int(header[0])}, expected {magic} "
            f"({'images' if magic == IMAGES_MAGIC else 'labels'} file)"
        )
    shape = tuple(int(size) for size in header[1:])
    expected = header_size + math.prod(shape)
    if len(raw) != expected:
        raise ValueError(
            f"{path}: header announces shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw)} bytes (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)
