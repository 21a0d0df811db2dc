"""A restricted unpickler for dataset files that are pickles (the CIFAR python folders).

``pickle.load`` runs any callable a file names, so a tampered dataset file could execute code.
This unpickler resolves only the globals that NumPy arrays need to rebuild themselves and
refuses everything else before it is imported or called.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # NumPy 1.x releases without the numpy._core alias
    from numpy.core.multiarray import _reconstruct

#: (module, name) -> object: everything a pickled dict of NumPy arrays, lists, ints and
#: strings can reference. Both NumPy module spellings appear in the wild (1.x and 2.x);
#: ``_codecs.encode`` is how Python 3 writes ``bytes`` under pickle protocols 0-2.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` only returns the objects in ``ALLOWED_GLOBALS``.

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


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` safely, with ``encoding="bytes"`` for Python 2 pickles.

    Any failure (a forbidden global, truncation, garbage) is a ``ValueError`` naming the file.

    Shapes: not applicable.
    """
    with path.open("rb") as stream:
        try:
            return RestrictedUnpickler(stream, encoding="bytes").load()
        except Exception as error:  # untrusted bytes can fail in many ways; all mean "bad file"
            raise ValueError(f"{path}: not a valid dataset pickle ({error})") from error
