"""A safe file format for observations: one safetensors file, no pickle.

Layout: tensors keyed ``gradient/<parameter name>`` and ``parameter/<parameter name>``; the header's
string metadata holds ``format = "gradleak-observation"``, ``version = "1"``, ``classifier`` and
``num_samples``, and when set ``precision``, ``sign_only`` and ``not_identifiable`` (what
`GradientObservation.from_update` learned from the update), and when the writer knew them
``architecture`` (the model's `Architecture` as JSON) and ``dataset`` (the images' dataset name), so
an attack can rebuild the model without being told (files written before these keys still load,
`SavedObservation` then holds None and ""). Any tool that reads safetensors can read it; loading
never executes code. ``classifier_only=True`` keeps just the final layer, which is all the label
recovery needs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import save_file

from gradleak.client.observation import GradientObservation
from gradleak.models.checkpoint import architecture_from_card
from gradleak.models.registry import Architecture
from gradleak.output_files import atomic_target, check_new_file
from gradleak.tagged_files import check_existing_file, metadata_field, read_tagged

FORMAT = "gradleak-observation"
VERSION = "1"


@dataclass(frozen=True)
class SavedObservation:
    """An observation read from a file, with the model and dataset it records (None and "" in a
    file that does not say: one written before these keys, or without them)."""

    observation: GradientObservation
    architecture: Architecture | None
    dataset: str


def save_observation(
    observation: GradientObservation,
    path: str | Path,
    *,
    classifier_only: bool = False,
    overwrite: bool = False,
    architecture: Architecture | None = None,
    dataset: str = "",
) -> Path:
    """Write ``observation`` to ``path`` (.safetensors). Refuses to replace a file unless asked.

    ``architecture`` (the model's, e.g. ``model.architecture``) and ``dataset`` (the images'
    name) go into the header when given, so `load_saved_observation` can name them.

    The file is written beside ``path`` and moved over it (`gradleak.output_files`), so an
    interrupted save leaves the old file or the new one, never a torn one.
    """
    path = check_new_file(path, name="path", overwrite=overwrite)
    prefix = f"{observation.classifier}."
    keep = (lambda name: name.startswith(prefix)) if classifier_only else (lambda name: True)
    tensors = {
        f"{kind}/{name}": value.contiguous()
        for kind, group in (
            ("gradient", observation.gradients),
            ("parameter", observation.parameters),
        )
        for name, value in group.items()
        if keep(name)
    }
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "classifier": observation.classifier,
        "num_samples": str(observation.num_samples),
    }
    if observation.precision is not None:
        metadata["precision"] = repr(observation.precision)
    if observation.sign_only:
        metadata["sign_only"] = "true"
    if observation.not_identifiable:
        metadata["not_identifiable"] = observation.not_identifiable
    if architecture is not None:
        metadata["architecture"] = json.dumps(asdict(architecture), sort_keys=True)
    if dataset:
        metadata["dataset"] = dataset
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_target(path) as partial:
        try:
            save_file(tensors, str(partial), metadata=metadata)
        except SafetensorError as error:
            raise OSError(f"cannot write path {path}: {error}") from error
    return path


def load_observation(path: str | Path) -> GradientObservation:
    """Read an observation written by `save_observation`."""
    return load_saved_observation(path).observation


def _architecture(path: Path, metadata: dict[str, str]) -> Architecture | None:
    text = metadata.get("architecture")
    if text is None:
        return None
    try:
        described = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: metadata architecture is not JSON ({error})") from error
    return architecture_from_card(path, {"architecture": described})


def load_saved_observation(path: str | Path) -> SavedObservation:
    """Read an observation written by `save_observation` with the model and dataset it names."""
    path = check_existing_file(Path(path), name="observation file")
    tensors, metadata = read_tagged(path, file_format=FORMAT, version=VERSION)
    groups: dict[str, dict] = {"gradient": {}, "parameter": {}}
    for key, value in tensors.items():
        kind, _, name = key.partition("/")
        if kind not in groups:
            raise ValueError(f"{path}: unexpected tensor key {key!r}")
        groups[kind][name] = value
    classifier = metadata_field(path, metadata, "classifier")
    num_samples = metadata_field(path, metadata, "num_samples")
    if not num_samples.isdecimal():
        raise ValueError(
            f"{path}: metadata num_samples={num_samples!r} is not an integer (expected >= 1)"
        )
    precision = metadata.get("precision")
    try:
        precision = None if precision is None else float(precision)
    except ValueError:
        raise ValueError(f"{path}: metadata precision={precision!r} is not a number") from None
    sign_only = metadata.get("sign_only", "false")
    if sign_only not in ("true", "false"):
        raise ValueError(f"{path}: metadata sign_only={sign_only!r} must be 'true' or 'false'")
    architecture = _architecture(path, metadata)
    try:
        observation = GradientObservation(
            gradients=groups["gradient"],
            parameters=groups["parameter"],
            classifier=classifier,
            num_samples=int(num_samples),
            precision=precision,
            sign_only=sign_only == "true",
            not_identifiable=metadata.get("not_identifiable", ""),
        )
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    if architecture is not None and architecture.num_classes != observation.num_classes:
        raise ValueError(
            f"{path}: metadata architecture has {architecture.num_classes} classes, the "
            f"classifier's gradient {observation.num_classes}"
        )
    return SavedObservation(observation, architecture, metadata.get("dataset", ""))
