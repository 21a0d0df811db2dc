"""Parameter initialisation schemes for the model zoo.

Shapes: not applicable (parameters are modified in place, shapes unchanged).
"""

from __future__ import annotations

import torch
from torch import nn

INITS: tuple[str, ...] = ("default", "uniform")

UNIFORM_BOUND = 0.5


def apply_init(model: nn.Module, init: str) -> nn.Module:
    """Initialise ``model`` in place and return it.

    ``"default"`` keeps PyTorch's constructor init (Kaiming-uniform for conv/linear, ones and
    zeros for BatchNorm affine). ``"uniform"`` draws EVERY parameter (weights and biases,
    BatchNorm affine included) from U(-0.5, 0.5), as in the DLG/iDLG reference code.
    Buffers (e.g. BatchNorm running statistics) are never touched.

    Shapes: not applicable.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; allowed values: {', '.join(INITS)}")
    if init == "uniform":
        with torch.no_grad():
            for param in model.parameters():
                param.uniform_(-UNIFORM_BOUND, UNIFORM_BOUND)
    return model
