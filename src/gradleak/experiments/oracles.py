"""Oracle labels for evaluation only: what an attack would do if it knew the truth.

The paper's Table 3 compares the recovered label with two oracles taken from the client's
secret: its true soft label and the true hard label (one-hot of its largest entry). They
bound what a perfect label recovery can give; no attack may use them.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional

from gradleak.client.observation import ClientSecret


def _truth(secret: ClientSecret) -> Tensor:
    """The true labels: (C,) for one input, (B, C) for a batch."""
    labels = secret.soft_label
    return labels[0] if labels.shape[0] == 1 else labels


def oracle_soft_label(secret: ClientSecret) -> Tensor:
    """The client's true soft label(s). Shapes: (C,) for one input, (B, C) for a batch."""
    return _truth(secret).clone()


def oracle_hard_label(secret: ClientSecret) -> Tensor:
    """One-hot of each true label's largest entry (the hard-label assumption).

    Shapes: (C,) for one input, (B, C) for a batch."""
    truth = _truth(secret)
    return functional.one_hot(truth.argmax(dim=-1), truth.shape[-1]).to(truth.dtype)
