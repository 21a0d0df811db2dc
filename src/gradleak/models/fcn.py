"""FCN-4: the paper's four-layer bias-free fully connected network.

Shapes: (B, C, H, W) -> (B, num_classes); feature (B, 256).
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from gradleak.models.registry import register

HIDDEN_WIDTHS: tuple[int, ...] = (4096, 1024, 256)


class FCN4(nn.Module):
    """Flatten, then bias-free Linear+ReLU x3 (4096, 1024, 256), then the ``classifier``.

    ``hidden_layers`` holds the three hidden ``nn.Linear`` layers in forward order, for
    layer-by-layer analytic inversion. Only ``classifier`` can get a bias (``classifier_bias``).

    Shapes: (B, in_channels, H, W) -> (B, num_classes); feature (B, 256).
    """

    classifier_name = "classifier"

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 64,
        classifier_bias: bool = False,
    ) -> None:
        super().__init__()
        self.input_dim: int = in_channels * image_size * image_size
        dims = (self.input_dim, *HIDDEN_WIDTHS)
        self.hidden_layers = nn.ModuleList(
            nn.Linear(d_in, d_out, bias=False) for d_in, d_out in pairwise(dims)
        )
        self.activation = nn.ReLU()
        self.feature_dim: int = HIDDEN_WIDTHS[-1]
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=classifier_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.flatten(x, 1)
        for layer in self.hidden_layers:
            h = self.activation(layer(h))
        return self.classifier(h)


@register("fcn4", default_image_size=64)
def fcn4(*, num_classes: int, in_channels: int, image_size: int, classifier_bias: bool) -> FCN4:
    """Build FCN-4.

    Shapes: (B, in_channels, image_size, image_size) -> (B, num_classes).
    """
    return FCN4(num_classes, in_channels, image_size, classifier_bias)
