"""Label and feature recovery from one input's gradient."""

from gradleak.recovery import (  # noqa: F401  (register the methods)
    gradinversion,
    idlg,
    llg,
    nonnegative,
    scalar_search,
)
from gradleak.recovery.analytic import DEFAULT_TOL
from gradleak.recovery.api import recover_from_last_layer, recover_label
from gradleak.recovery.batch import (
    BATCH_METHODS,
    BatchEstimate,
    recover_batch,
    recover_batch_from_last_layer,
)
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.identifiability import (
    Identifiability,
    batch_bound,
    batch_identifiability,
    identifiability,
)
from gradleak.recovery.last_layer import DEFAULT_RANK_TOL, NotSingleInputError
from gradleak.recovery.registry import ATTACK_FAMILIES, METHODS

__all__ = [
    "ATTACK_FAMILIES",
    "BATCH_METHODS",
    "DEFAULT_RANK_TOL",
    "DEFAULT_TOL",
    "METHODS",
    "BatchEstimate",
    "Identifiability",
    "LabelEstimate",
    "NotSingleInputError",
    "batch_bound",
    "batch_identifiability",
    "identifiability",
    "recover_batch",
    "recover_batch_from_last_layer",
    "recover_from_last_layer",
    "recover_label",
]
