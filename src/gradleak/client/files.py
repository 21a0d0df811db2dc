"""A safe file format for observations: one safetensors file, no pickle.

Layout: tensors keyed ``gradient/<parameter name>`` and ``parameter/<parameter name>``; the
header's string metadata holds ``format = "gradleak-observation"``, ``version = "1"``,
``classifier`` and ``num_samples``. Any tool that reads safetensors can read it; loading never
executes code. ``classifier_only=True`` keeps just the final layer, which is all the label
recovery needs.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file

from gradleak.client.observation import GradientObservation
from gradleak.tagged_files import read_tagged

FORMAT = "gradleak-observation"
VERSION = "1"


def save_observation(
    observation: GradientObservation,
    path: str | Path,
    *,
    classifier_only: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``observation`` to ``path`` (.safetensors). Refuses to replace a file unless asked."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
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
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def load_observation(path: str | Path) -> GradientObservation:
    """Read an observation written by `save_observation`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"observation file {path} does not exist")
    tensors, metadata = read_tagged(path, file_format=FORMAT, version=VERSION)
    groups: dict[str, dict] = {"gradient": {}, "parameter": {}}
    for key, value in tensors.items():
        kind, _, name = key.partition("/")
        if kind not in groups:
            raise ValueError(f"{path}: unexpected tensor key {key!r}")
        groups[kind][name] = value
    return GradientObservation(
        gradients=groups["gradient"],
        parameters=groups["parameter"],
        classifier=metadata["classifier"],
        num_samples=int(metadata["num_samples"]),
    )
