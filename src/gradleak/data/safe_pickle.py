"""A restricted, bounded unpickler for dataset files that are pickles (the CIFAR python folders).

``pickle.load`` runs any callable a file names, so a tampered dataset file could execute code;
and even NumPy's own reconstruction callables let a 200-byte file ask for gigabytes (an empty
array of any shape, an object array filled before its items are read). This module therefore:

- scans the opcodes first, so every length the file declares is backed by bytes it holds and
  memo indices never skip ahead (CPython allocates both before reading);
- admits only stand-ins for the globals a pickled dict of NumPy arrays names: arrays start
  empty and take shape only from raw bytes in the file, of exactly the declared size, with a
  plain numeric or string dtype rebuilt from its code; ``_codecs.encode`` only turns ``str``
  into latin1 bytes.

What comes back is bounded by a small multiple of the file's size.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy 1.x releases without the numpy._core alias
    from numpy.core.multiarray import _reconstruct

#: Dtype kinds an array in a dataset pickle may have: bool, integers, floats, complex, strings.
PLAIN_KINDS = frozenset("biufcSU")
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


class _StandIn:
    """Base of what ``find_class`` hands out: holds no state, so ``BUILD`` cannot change it."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"refusing to set state on {self}")


class _ArrayType(_StandIn):
    """``numpy.ndarray``: only a marker for ``_reconstruct``; calling it would allocate."""

    __slots__ = ()

    def __str__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: Any) -> Any:
        raise pickle.UnpicklingError(
            "numpy.ndarray is not callable in a dataset pickle: arrays are rebuilt by "
            "_reconstruct from their own bytes"
        )


_ARRAY_TYPE = _ArrayType()


class _Reconstruct(_StandIn):
    """``_reconstruct(ndarray, shape, dtype)``: starts an empty array, as NumPy's pickles do."""

    __slots__ = ()

    def __str__(self) -> str:
        return "numpy _reconstruct"

    def __call__(self, subtype: Any, shape: Any, dtype: Any) -> CheckedArray:
        if subtype is not _ARRAY_TYPE:
            raise pickle.UnpicklingError(
                f"_reconstruct may only build numpy.ndarray, got {subtype}"
            )
        if not _is_shape(shape) or math.prod(shape) != 0:
            raise pickle.UnpicklingError(
                f"_reconstruct may only start an empty array, got shape {shape!r}; an array's "
                "size must come from the bytes that follow it"
            )
        return _reconstruct(CheckedArray, (0,), b"b")


class _Dtype(_StandIn):
    """``numpy.dtype(code, align, copy)`` for a plain type code (``"u1"``, ``b"<i8"``)."""

    __slots__ = ()

    def __str__(self) -> str:
        return "numpy.dtype"

    def __call__(self, code: Any, align: Any = False, copy: Any = False) -> np.dtype:
        if not isinstance(code, str | bytes) or len(code) > 16:
            raise pickle.UnpicklingError(f"numpy.dtype needs a short type code, got {code!r}")
        # A copy, never NumPy's shared instance: the BUILD that follows sets state on it.
        dtype = np.dtype(code.decode("ascii") if isinstance(code, bytes) else code, copy=True)
        _require_plain(dtype)
        return dtype


class _Latin1Encode(_StandIn):
    """``_codecs.encode(text, "latin1")``: how Python 3 writes ``bytes`` at protocols 0-2."""

    __slots__ = ()

    def __str__(self) -> str:
        return "_codecs.encode"

    def __call__(self, text: Any, encoding: Any = None) -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError(
                "_codecs.encode may only turn str into latin1 bytes, got "
                f"{type(text).__name__} with encoding {encoding!r}"
            )
        return text.encode("latin-1")


class CheckedArray(np.ndarray):
    """An array being unpickled: its ``__setstate__`` admits only state the file pays for.

    ``load_pickle`` turns these back into plain ``numpy.ndarray`` views before returning.

    Shapes: whatever the file declares, holding exactly prod(shape) * itemsize raw bytes.
    """

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("array state must be (version, shape, dtype, order, raw)")
        shape, dtype, fortran, raw = state[-4:]
        if not _is_shape(shape):
            raise pickle.UnpicklingError(f"array shape must be non-negative ints, got {shape!r}")
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"array dtype must be a numpy.dtype, got {dtype!r}")
        clean = _require_plain(dtype)
        if not isinstance(raw, bytes | bytearray):
            raise pickle.UnpicklingError(
                f"array data must be raw bytes, got {type(raw).__name__} ({clean} arrays are "
                "not pickled as lists)"
            )
        needed = math.prod(shape) * clean.itemsize
        if len(raw) != needed:
            raise pickle.UnpicklingError(
                f"array of shape {tuple(shape)} and dtype {clean} needs {needed} bytes but the "
                f"file supplies {len(raw)}"
            )
        super().__setstate__((1, tuple(shape), clean, bool(fortran), raw))


#: (module, name) -> stand-in: everything a pickled dict of NumPy arrays, lists, ints and
#: strings references. Both NumPy module spellings appear in the wild (1.x and 2.x).
ALLOWED_GLOBALS: dict[tuple[str, str], _StandIn] = {
    ("numpy.core.multiarray", "_reconstruct"): _Reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _Reconstruct(),
    ("numpy", "ndarray"): _ARRAY_TYPE,
    ("numpy", "dtype"): _Dtype(),
    ("_codecs", "encode"): _Latin1Encode(),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` only returns the stand-ins in ``ALLOWED_GLOBALS``.

    Feed it bytes that ``check_opcodes`` accepted; ``load_pickle`` does both.

    Shapes: not applicable.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: dataset pickles may only reference "
                "NumPy array reconstruction"
            ) from None


def check_opcodes(pickled: bytes) -> None:
    """Refuse a pickle that declares bytes it lacks or memo slots it skips (``ValueError``).

    CPython allocates a counted string's declared length, and grows the memo to twice a put's
    index, before reading on; real picklers number memo entries 0, 1, 2, ... in order.

    Shapes: not applicable.
    """
    memoised = 0
    # genops reads each counted argument from memory, so a false length fails here cheaply.
    for opcode, argument, position in pickletools.genops(io.BytesIO(pickled)):
        if opcode.name in _MEMO_PUTS:
            if argument > memoised:
                raise ValueError(
                    f"memo index {argument} at byte {position} skips ahead of the {memoised} "
                    "objects memoised so far"
                )
            memoised += argument == memoised
        elif opcode.name == "MEMOIZE":
            memoised += 1
        elif opcode.name == "FRAME" and argument > len(pickled) - position:
            raise ValueError(f"frame of {argument} bytes at byte {position} overruns the file")


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` safely, with ``encoding="bytes"`` for Python 2 pickles.

    Any failure (a forbidden global, a size the file does not back, truncation, garbage) is a
    ``ValueError`` naming the file.

    Shapes: not applicable.
    """
    pickled = path.read_bytes()
    try:
        check_opcodes(pickled)
        value = RestrictedUnpickler(io.BytesIO(pickled), encoding="bytes").load()
        return _plain_arrays(value, set())
    except Exception as error:  # untrusted bytes can fail in many ways; all mean "bad file"
        raise ValueError(f"{path}: not a valid dataset pickle ({error})") from error


def _is_shape(shape: Any) -> bool:
    return isinstance(shape, tuple | list) and all(
        isinstance(side, int) and not isinstance(side, bool) and side >= 0 for side in shape
    )


def _require_plain(dtype: np.dtype) -> np.dtype:
    """The dtype rebuilt from its type code, or an error if the pickle's one is not plain."""
    if dtype.subdtype is not None:
        raise pickle.UnpicklingError(f"sub-array dtype {dtype} is refused")
    if dtype.fields is not None:
        raise pickle.UnpicklingError(f"structured dtype {dtype} is refused")
    clean = np.dtype(dtype.str)
    if dtype.flags != clean.flags or dtype.itemsize != clean.itemsize:
        raise pickle.UnpicklingError(
            f"dtype {dtype} carries flags {dtype.flags:#x} and itemsize {dtype.itemsize}; a "
            f"plain {clean} has flags {clean.flags:#x} and itemsize {clean.itemsize}"
        )
    if clean.kind not in PLAIN_KINDS:
        raise pickle.UnpicklingError(
            f"dtype {clean} is refused (object and other non-plain arrays); allowed kinds: "
            f"{''.join(sorted(PLAIN_KINDS))}"
        )
    return clean


def _plain_arrays(value: Any, seen: set[int]) -> Any:
    """``value`` with every ``CheckedArray`` replaced by a plain ``numpy.ndarray`` view."""
    if isinstance(value, CheckedArray):
        return value.view(np.ndarray)
    if id(value) in seen:
        return value
    if isinstance(value, list):
        seen.add(id(value))
        value[:] = [_plain_arrays(item, seen) for item in value]
    elif isinstance(value, dict):
        seen.add(id(value))
        for key in value:
            value[key] = _plain_arrays(value[key], seen)
    elif isinstance(value, tuple):
        return tuple(_plain_arrays(item, seen) for item in value)
    return value
