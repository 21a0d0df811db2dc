"""Flower's records as the audit reads them: the one ArrayRecord / ConfigRecord / MetricRecord of
a message, and an ArrayRecord as parameters by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from flwr.app import ArrayRecord, MetricRecord
from torch import Tensor

T = TypeVar("T")

#: The MetricRecord key of a reply's sample count (Flower's strategies weight by it).
NUM_EXAMPLES = "num-examples"


def single(records: Mapping[str, T], kind: str, where: str) -> T:
    """The one record of ``kind`` in a message's ``records`` (ValueError naming the count)."""
    if len(records) != 1:
        raise ValueError(
            f"the {where} message carries {len(records)} {kind}s "
            f"({', '.join(map(repr, records)) or 'none'}); the audit reads exactly one"
        )
    return next(iter(records.values()))


def state(record: ArrayRecord) -> dict[str, Tensor]:
    """Parameters (and buffers) by name, as torch tensors."""
    return dict(record.to_torch_state_dict())


def num_examples(metrics: MetricRecord) -> int:
    """A reply's ``num-examples`` (KeyError when absent, ValueError when not a count >= 1)."""
    if NUM_EXAMPLES not in metrics:
        raise KeyError(f"the reply's MetricRecord has no {NUM_EXAMPLES!r}")
    value = metrics[NUM_EXAMPLES]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{NUM_EXAMPLES} must be an integer >= 1, got {value!r}")
    return value
