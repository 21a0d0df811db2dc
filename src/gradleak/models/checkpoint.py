"""Safe model checkpoints: a safetensors file of weights plus a JSON sidecar for people.

``lenet-fashion-mnist.safetensors`` holds the state dict (parameters and buffers, no pickle:
loading never executes code) and, in its header metadata, ``format``, ``version`` and the
card as JSON (architecture, training facts, versions). ``lenet-fashion-mnist.json`` beside it
repeats the card, indented, so it can be read without any tool. `load` needs only the
safetensors file; the sidecar is documentation.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from gradleak.models.registry import Architecture, build
from gradleak.tagged_files import read_tagged

FORMAT = "gradleak-checkpoint"
VERSION = "1"
SUFFIX = ".safetensors"


@dataclass(frozen=True)
class Checkpoint:
    """A rebuilt model (eval mode) and its card: ``architecture`` plus training facts."""

    model: nn.Module
    card: dict[str, Any]


def sidecar_path(path: str | Path) -> Path:
    """The JSON card beside a checkpoint: ``x.safetensors`` -> ``x.json``."""
    return Path(path).with_suffix(".json")


def _versions() -> dict[str, str]:
    from gradleak import __version__

    return {
        "gradleak": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    *,
    training: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (built by `gradleak.models.build`) and its card to ``path``.

    ``training`` holds what produced the weights (dataset, augmentation, test accuracy, seed,
    epochs...): any JSON-serialisable mapping. Refuses to replace an existing checkpoint or
    sidecar unless ``overwrite=True``; the weights are written to a temporary file first, so
    an interrupted save leaves no half-written checkpoint.

    Shapes: not applicable.
    """
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ValueError(f"path must end in {SUFFIX}, got {str(path)!r}")
    architecture = getattr(model, "architecture", None)
    if not isinstance(architecture, Architecture):
        raise ValueError(
            "model has no .architecture; build it with gradleak.models.build(...) so the "
            "checkpoint can rebuild it"
        )
    sidecar = sidecar_path(path)
    existing = [str(p) for p in (path, sidecar) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{' and '.join(existing)} exist(s); pass overwrite=True (CLI: --overwrite) to "
            "replace, or choose another path"
        )
    card = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": asdict(architecture),
        "training": dict(training or {}),
        "versions": _versions(),
    }
    text = json.dumps(card, sort_keys=True)
    tensors = {name: value.detach().contiguous() for name, value in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    try:
        save_file(tensors, partial, metadata={"format": FORMAT, "version": VERSION, "card": text})
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    sidecar.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the model stored at ``path`` (eval mode) and return it with its card.

    Shapes: the model maps (B, in_channels, image_size, image_size) to (B, num_classes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; create one with `gradleak train --out {path}`"
        )
    state, metadata = read_tagged(path, file_format=FORMAT, version=VERSION)
    card = json.loads(metadata["card"])
    architecture = Architecture(**card["architecture"])
    model = build(
        architecture.name,
        num_classes=architecture.num_classes,
        in_channels=architecture.in_channels,
        image_size=architecture.image_size,
        classifier_bias=architecture.classifier_bias,
        seed=0,
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit {architecture}: {error}") from error
    return Checkpoint(model=model.eval(), card=card)


def load(path: str | Path) -> nn.Module:
    """The model stored at ``path``, rebuilt and in eval mode (`load_checkpoint` keeps the card).

    Shapes: the model maps (B, in_channels, image_size, image_size) to (B, num_classes).
    """
    return load_checkpoint(path).model
