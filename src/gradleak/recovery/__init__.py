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
from gradleak.recovery.estimate import LabelEstimate
from gradleak.recovery.families import FAMILIES
from gradleak.recovery.last_layer import DEFAULT_RANK_TOL, NotSingleInputError
from gradleak.recovery.registry import METHODS, build_method

__all__ = [
    "DEFAULT_RANK_TOL",
    "DEFAULT_TOL",
    "FAMILIES",
    "METHODS",
    "LabelEstimate",
    "NotSingleInputError",
    "build_method",
    "recover_from_last_layer",
    "recover_label",
]
