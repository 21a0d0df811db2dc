"""`MatchingSettings`: every optimisation choice of a gradient-matching attack, held once.

DLG and inverting gradients differ only in these values (`dlg.py`, `inverting_gradients.py`
hold their defaults); experiments and the CLI build one and pass it on unchanged.

Paper: Geiping et al., NeurIPS 2020; Zhu et al., NeurIPS 2019.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

DISTANCES = ("euclidean", "cosine")
OPTIMIZERS = ("adam", "lbfgs")
#: A budget (iterations x restarts) from which an attack shows progress unless told not to:
#: about 3 s of LeNet, minutes of the default 4800 x 10 on a larger model.
AUTO_PROGRESS_STEPS = 1000


@dataclass(frozen=True)
class MatchingSettings:
    """Every optimisation choice of one gradient-matching attack, held once.

    The defaults are inverting gradients' Table 3 settings (Geiping et al.; Wang, Liang & He,
    ICLR 2024, Sec. 5.3): cosine distance, Adam at 0.1, 4800 iterations, 10 restarts, TV 1e-2
    (1e-3 suits trained networks). Adam's rate drops 10x at 3/8, 5/8 and 7/8 of the
    iterations; L-BFGS (``optimizer="lbfgs"``, DLG) uses a strong-Wolfe line search and
    ``iterations`` counts its steps. ``tv_weight`` scales total variation, ``feature_weight``
    the relative squared distance of the dummy's last-layer feature to the recovered one.
    ``seed`` draws the random starts; ``progress`` shows a progress bar.

    Paper: Geiping et al., NeurIPS 2020; Zhu et al., NeurIPS 2019.
    Shapes: not applicable.
    """

    distance: str = "cosine"
    optimizer: str = "adam"
    iterations: int = 4800
    restarts: int = 10
    learning_rate: float = 0.1
    tv_weight: float = 1e-2
    feature_weight: float = 0.0
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {self.distance!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("tv_weight", "feature_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


#: The field names of `MatchingSettings`: what an attack accepts as keyword overrides.
SETTING_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(MatchingSettings))


def with_overrides(
    settings: MatchingSettings, overrides: Mapping[str, Any], *, where: str, also: Sequence[str]
) -> MatchingSettings:
    """``settings`` with the named fields replaced; unknown names raise ValueError naming
    ``where`` and listing what is accepted (``also``, then every `MatchingSettings` field)."""
    unknown = sorted(set(overrides) - set(SETTING_FIELDS))
    if unknown:
        accepted = ", ".join((*also, *SETTING_FIELDS))
        raise ValueError(f"{where} got unknown parameters {unknown}; it accepts {accepted}")
    return replace(settings, **overrides) if overrides else settings


def auto_progress(steps: int) -> bool:
    """Whether a run of ``steps`` optimizer steps (iterations x restarts) shows a progress bar
    when nobody chose: a budget of at least `AUTO_PROGRESS_STEPS`, and someone to see it (stderr
    is a terminal, or a Jupyter kernel runs this)."""
    if steps < AUTO_PROGRESS_STEPS:
        return False
    stream = sys.stderr
    terminal = stream is not None and bool(getattr(stream, "isatty", lambda: False)())
    return terminal or "ipykernel" in sys.modules
