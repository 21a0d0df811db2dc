"""Safe model checkpoints: a safetensors file of weights plus a JSON sidecar for people.

``lenet-fashion-mnist.safetensors`` holds the state dict (parameters and buffers, no pickle:
loading never executes code) and, in its header metadata, ``format``, ``version`` and the
card as JSON (architecture, training facts, versions). ``lenet-fashion-mnist.json`` beside it
repeats the card, indented, so it can be read without any tool. `load` needs only the
safetensors file; the sidecar is documentation (a sidecar that disagrees with the header is
reported as a warning). Both files are written atomically (`gradleak.output_files`).
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import nn

from gradleak.models.registry import Architecture, build_architecture
from gradleak.output_files import atomic_target, check_new_file, write_atomic
from gradleak.tagged_files import check_existing_file, metadata_field, read_tagged
from gradleak.version import __version__

logger = logging.getLogger(__name__)

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
    sidecar unless ``overwrite=True``. Each file is written beside its name and moved over
    it, so an interrupted save leaves no half-written file.

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
    meta = [name for name, value in model.state_dict().items() if value.is_meta]
    if meta:
        raise ValueError(
            f"model has {len(meta)} meta-device tensors (first {meta[0]!r}): shapes without "
            "values cannot be saved; load or train its weights first"
        )
    check_new_file(path, name="path", overwrite=overwrite)
    sidecar = check_new_file(sidecar_path(path), name="sidecar", overwrite=overwrite)
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
    metadata = {"format": FORMAT, "version": VERSION, "card": text}
    with atomic_target(path) as partial:
        try:
            save_file(tensors, str(partial), metadata=metadata)
        except SafetensorError as error:
            raise OSError(f"cannot write path {path}: {error}") from error
    write_atomic(sidecar, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def architecture_from_card(path: Path, card: dict[str, Any]) -> Architecture:
    """The card's ``architecture``, checked key by key against `Architecture` (also read from
    observation files, which record the model they were taken from); errors name ``path``."""
    described = card.get("architecture")
    if not isinstance(described, dict):
        raise ValueError(
            f"{path}: the header card has no 'architecture' object (card keys: {sorted(card)}, "
            f"architecture={described!r})"
        )
    known = {field.name for field in fields(Architecture)}
    required = {
        field.name
        for field in fields(Architecture)
        if field.default is MISSING and field.default_factory is MISSING
    }
    unknown, missing = sorted(set(described) - known), sorted(required - set(described))
    if unknown or missing:
        raise ValueError(
            f"{path}: the header card's architecture has unknown keys {unknown} and lacks "
            f"{missing}; expected the keys {sorted(known)}"
        )
    hints = get_type_hints(Architecture)
    for key, value in described.items():
        wanted = hints[key]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise ValueError(
                f"{path}: the header card's architecture {key}={value!r} must be a "
                f"{wanted.__name__}"
            )
    return Architecture(**described)


def _card(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    text = metadata_field(path, metadata, "card")
    try:
        card = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the header card is not JSON ({error})") from error
    if not isinstance(card, dict):
        raise ValueError(
            f"{path}: the header card must be a JSON object, got a {type(card).__name__}"
        )
    return card


def _compare_sidecar(path: Path, card: dict[str, Any]) -> None:
    """Warn when the JSON sidecar is unreadable or says something else than the header card."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return
    try:
        written = json.loads(sidecar.read_text())
    except (OSError, ValueError) as error:
        logger.warning(
            "checkpoint sidecar %s is unreadable (%s); using the card in the header of %s",
            sidecar,
            error,
            path,
        )
        return
    if written != card:
        differ = sorted(
            key
            for key in set(card) | set(written if isinstance(written, dict) else {})
            if not isinstance(written, dict) or written.get(key) != card.get(key)
        )
        logger.warning(
            "checkpoint sidecar %s disagrees with the card in the header of %s (in %s); "
            "using the header's card",
            sidecar,
            path,
            differ,
        )


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the model stored at ``path`` (eval mode) and return it with its card.

    Shapes: the model maps (B, in_channels, image_size, image_size) to (B, num_classes).
    """
    path = check_existing_file(
        Path(path),
        name="checkpoint",
        hint=f"; create one with `gradleak train --out {path}`",
    )
    state, metadata = read_tagged(path, file_format=FORMAT, version=VERSION)
    card = _card(path, metadata)
    architecture = architecture_from_card(path, card)
    _compare_sidecar(path, card)
    try:
        model = build_architecture(architecture, seed=0)
    except ValueError as error:
        raise ValueError(f"{path}: the header card's {architecture}: {error}") from error
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
