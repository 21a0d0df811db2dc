"""DLG-style LeNet: three sigmoid conv layers and one linear classifier.

Shapes: (B, C, H, W) -> (B, num_classes); feature (B, 12 * ceil(H/4) * ceil(W/4)).
"""

from __future__ import annotations

import torch
from torch import nn

from gradleak.models.registry import register

_WIDTH = 12


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class LeNet(nn.Module):
    """LeNet from the DLG/iDLG code: Conv-Sigmoid x3 (strides 2, 2, 1), flatten, Linear.

    Convolutions keep their bias; the final ``classifier`` is bias-free unless requested.
    ``feature_dim`` is 768 for 32x32 inputs and 588 for 28x28 inputs.

    Shapes: (B, in_channels, H, W) -> (B, num_classes); feature (B, feature_dim).
    """

    classifier_name = "classifier"

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 32,
        classifier_bias: bool = False,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, _WIDTH, kernel_size=5, stride=2, padding=2),
            nn.Sigmoid(),
            nn.Conv2d(_WIDTH, _WIDTH, kernel_size=5, stride=2, padding=2),
            nn.Sigmoid(),
            nn.Conv2d(_WIDTH, _WIDTH, kernel_size=5, stride=1, padding=2),
            nn.Sigmoid(),
        )
        side = image_size
        for stride in (2, 2, 1):
            side = _conv_out(side, kernel=5, stride=stride, padding=2)
        self.feature_dim: int = _WIDTH * side * side
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=classifier_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@register("lenet", default_image_size=32)
def lenet(*, num_classes: int, in_channels: int, image_size: int, classifier_bias: bool) -> LeNet:
    """Build the DLG LeNet.

    Shapes: (B, in_channels, image_size, image_size) -> (B, num_classes).
    """
    return LeNet(num_classes, in_channels, image_size, classifier_bias)
