"""Checks of what a config case names against the registries, data and files it will run.

A case that names an unknown family, a model its checkpoint does not hold or a class count
its dataset does not have must fail when the config loads, not silently run something else.
Each check raises ValueError (FileNotFoundError for a missing checkpoint) whose message
starts with the offending key and says what is allowed; `config.resolve` adds the config
file and the case.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from gradleak import data, defenses, models
from gradleak.data import EMBEDDED, FASHION_MNIST_CLASS_NAMES
from gradleak.data.cifar import CIFAR10, CIFAR100
from gradleak.data.registry import MIN_IMAGE_SIZE
from gradleak.families import FAMILIES
from gradleak.training import TrainingFacts

#: Label families a client can send (and a trial can draw).
CLIENT_FAMILIES: tuple[str, ...] = tuple(FAMILIES)

#: Class counts known without loading; absent (image-folder) ones are checked at first load
#: (`suites.resources.client_setting`).
CLASS_COUNTS: dict[str, int] = {
    **{name: entry[1] for name, entry in EMBEDDED.items()},
    "fashion-mnist": len(FASHION_MNIST_CLASS_NAMES),
    CIFAR10.name: CIFAR10.num_classes,
    CIFAR100.name: CIFAR100.num_classes,
}

HOW_TO_TRAIN = (
    "create it with scripts/train-benchmark-models.sh (the benchmark checkpoints) or "
    "`gradleak train --model {model} --dataset {dataset} --augment KIND:VALUE --out {path}`"
)


def check_choice(key: str, value: str, allowed: Iterable[str]) -> None:
    """``value`` must be one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{key} = {value!r} is unknown; choose one of {', '.join(allowed)}")


def check_client_setting(case: Any) -> None:
    """The fields every suite's case shares: model, init, dataset, num_classes, label_family,
    checkpoint, data_root and image_size."""
    check_choice("model", case.model, models.names())
    check_choice("dataset", case.dataset, data.names())
    splits = data.spec(case.dataset).splits
    if "test" not in splits:
        raise ValueError(f"dataset = {case.dataset!r} has no test split (only {splits})")
    check_choice("label_family", case.label_family, CLIENT_FAMILIES)
    if case.num_classes < 2:
        raise ValueError(f"num_classes = {case.num_classes} must be >= 2")
    known = CLASS_COUNTS.get(case.dataset)
    if known is not None and case.num_classes != known:
        raise ValueError(
            f"num_classes = {case.num_classes} but dataset {case.dataset!r} has {known} "
            f"classes; set num_classes = {known}"
        )
    if case.image_size and case.image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image_size = {case.image_size} must be 0 (the dataset's) or >= {MIN_IMAGE_SIZE}"
        )
    if case.data_root and not Path(case.data_root).is_dir():
        raise ValueError(f"data_root = {case.data_root!r} is not a folder")
    if case.checkpoint:
        check_checkpoint(case)
    else:
        check_choice("init", case.init, models.INITS)


def check_checkpoint(case: Any) -> None:
    """The checkpoint exists, is a gradleak checkpoint, and its card agrees with the case."""
    path = Path(case.checkpoint)
    if not path.is_file():
        hint = HOW_TO_TRAIN.format(model=case.model, dataset=case.dataset, path=path)
        raise FileNotFoundError(
            f"checkpoint = {case.checkpoint!r} does not exist (relative to {Path.cwd()}); {hint}"
        )
    try:
        card = models.load_checkpoint(path).card
        training = TrainingFacts.from_card(card.get("training", {}), where=str(path))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"checkpoint = {case.checkpoint!r}: {error}") from None
    architecture = card["architecture"]
    if architecture["name"] != case.model:
        raise ValueError(
            f"model = {case.model!r} but checkpoint {path} holds a {architecture['name']!r}; "
            f"set model = {architecture['name']!r}"
        )
    if architecture["num_classes"] != case.num_classes:
        raise ValueError(
            f"num_classes = {case.num_classes} but checkpoint {path} has "
            f"{architecture['num_classes']} classes"
        )
    if training.dataset != case.dataset:
        raise ValueError(
            f"dataset = {case.dataset!r} but checkpoint {path} was trained on "
            f"{training.dataset!r} (its card's training.dataset)"
        )
    if case.image_size and case.image_size != architecture["image_size"]:
        raise ValueError(
            f"image_size = {case.image_size} but checkpoint {path} takes "
            f"{architecture['image_size']}-pixel images; set image_size = 0"
        )
    expected = f"trained {training.augmentation}"
    if case.init != expected:
        raise ValueError(
            f"init = {case.init!r} but checkpoint {path} is trained; init must be {expected!r}"
        )


def check_defense(defense: str, params: Mapping[str, Any]) -> None:
    """``defense`` is empty (then ``params`` too) or registered and built from ``params``
    (noise scales are relative to each gradient's RMS, as the suite applies them)."""
    if not defense:
        if params:
            raise ValueError(
                f"defense_params = {dict(params)} needs a defense; set defense to one of "
                f"{', '.join(defenses.DEFENSES)}"
            )
        return
    check_choice("defense", defense, defenses.DEFENSES)
    try:
        defenses.DEFENSES.build(defense, **relative_noise(params))
    except (ValueError, TypeError) as error:
        raise ValueError(f"defense_params = {dict(params)} for {defense}: {error}") from None


def relative_noise(params: Mapping[str, Any]) -> dict[str, Any]:
    """The suite's defense parameters: noise relative to each tensor's RMS unless told."""
    return {"relative": True, **params}
