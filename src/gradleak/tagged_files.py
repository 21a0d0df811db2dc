"""Read safetensors files that gradleak tagged with a ``format`` and ``version`` in the header.

Shared by observation files and model checkpoints: one place checks that a file is what it
claims to be before anything uses its tensors. Loading never executes code.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open
from torch import Tensor


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
