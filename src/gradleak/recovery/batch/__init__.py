"""Batch recovery: every sample's soft label and feature from one rank-B gradient, and the
batch's label mass beyond the per-sample bound (docs/batch.md)."""

from gradleak.recovery.batch.api import recover_batch, recover_batch_from_last_layer
from gradleak.recovery.batch.estimate import BatchEstimate
from gradleak.recovery.batch.methods import BATCH_FAMILIES, BATCH_METHODS

__all__ = [
    "BATCH_FAMILIES",
    "BATCH_METHODS",
    "BatchEstimate",
    "recover_batch",
    "recover_batch_from_last_layer",
]
