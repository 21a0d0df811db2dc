"""Label families (hard, smoothing, mixup): one module each, one registry for all.

Every consumer (label makers, trial draws, the recovery's constraints, training targets, the
identifiability count, CLI and configs) goes through `FAMILIES`; an unknown key is an error
that lists the known ones, never a silent default.
"""

from gradleak.families import hard, mixup, smoothing  # noqa: F401  (register the families)
from gradleak.families.base import FAMILIES, LabelFamily, SoftLabel
from gradleak.families.trials import draw_trial

__all__ = ["FAMILIES", "LabelFamily", "SoftLabel", "draw_trial"]
