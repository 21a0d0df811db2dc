"""JSON-ready values: what estimates and audit records hold, as standard JSON can carry it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import Tensor


def plain(value: Any) -> Any:
    """Tensors and arrays become nested lists, NumPy scalars Python ones, dataclasses dicts,
    and NaN or infinite floats None (standard JSON has neither), recursively through mappings
    and sequences."""
    if isinstance(value, Tensor | np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return fields_dict(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def fields_dict(instance: Any) -> dict[str, Any]:
    """Every dataclass field of ``instance`` as `plain` values."""
    return {name: plain(getattr(instance, name)) for name in instance.__dataclass_fields__}
