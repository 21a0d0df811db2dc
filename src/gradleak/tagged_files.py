"""Read safetensors files that gradleak tagged with a ``format`` and ``version`` in the header.

Shared by observation files and model checkpoints: one place checks that a file is what it
claims to be before anything uses its tensors. Loading never executes code.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open
from torch import Tensor


def check_existing_file(path: Path, *, name: str, hint: str = "") -> Path:
    """``path`` if it is an existing file; else FileNotFoundError or IsADirectoryError.

    ``name`` is how messages call the file (``observation file``, ``checkpoint``); ``hint``
    is appended to the does-not-exist message (how to create one).
    """
    if path.is_dir():
        raise IsADirectoryError(f"{name} {path} is a folder; expected a .safetensors file")
    if not path.is_file():
        raise FileNotFoundError(f"{name} {path} does not exist{hint}")
    return path


def metadata_field(path: Path, metadata: dict[str, str], key: str) -> str:
    """The header metadata ``key`` of ``path``; ValueError naming the file if it is absent."""
    if key not in metadata:
        raise ValueError(
            f"{path}: the header has no '{key}' metadata (found {sorted(metadata)}); the file "
            "was not written by gradleak or was edited"
        )
    return metadata[key]


def read_tagged(
    path: Path, *, file_format: str, version: str
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and header metadata of ``path``; errors name the file and what was expected.

    Shapes: tensors as stored.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as error:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"{path} is not a safetensors file: {error}") from error
    kind = file_format.removeprefix("gradleak-")
    if metadata.get("format") != file_format:
        raise ValueError(
            f"{path} is not a gradleak {kind} (metadata format={metadata.get('format')!r}, "
            f"expected {file_format!r})"
        )
    if metadata.get("version") != version:
        raise ValueError(
            f"{path} has {kind} format version {metadata.get('version')!r}; this gradleak "
            f"reads version {version}"
        )
    return tensors, metadata
