"""Oracle labels for evaluation only: what an attack would do if it knew the truth.

The paper's Table 3 compares the recovered label with two oracles taken from the client's
secret: its true soft label and the true hard label (one-hot of its largest entry). They
bound what a perfect label recovery can give; no attack may use them.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional

from gradleak.client.observation import ClientSecret


def oracle_soft_label(secret: ClientSecret) -> Tensor:
    """The client's true soft label. Shapes: (C,)."""
    return secret.soft_label[0].clone()


def oracle_hard_label(secret: ClientSecret) -> Tensor:
    """One-hot of the true label's largest entry (the hard-label assumption). Shapes: (C,)."""
    truth = secret.soft_label[0]
    return functional.one_hot(truth.argmax(), truth.shape[-1]).to(truth.dtype)
