"""AlexNet in the torchvision layout, with a CIFAR-sized stem for small images.

Shapes: (B, C, H, W) -> (B, num_classes); feature (B, 4096).
"""

from __future__ import annotations

import torch
from torch import nn

from gradleak.models.registry import register

SMALL_IMAGE_THRESHOLD = 64


class AlexNet(nn.Module):
    """torchvision-shaped AlexNet: five convs (64, 192, 384, 256, 256) with three 3x3/2
    max-pools, adaptive average pool to 6x6, then Dropout-Linear(9216, 4096)-ReLU-Dropout-
    Linear(4096, 4096)-ReLU and the final ``classifier`` Linear(4096, num_classes).

    For ``image_size < 64`` the first conv is 3x3 stride 1 padding 1 (instead of 11x11
    stride 4 padding 2): the ImageNet stem shrinks a 32x32 input below the 3x3 kernel of
    the last max-pool. Everything after the first conv is unchanged; the adaptive pool
    still yields 6x6, so the head is identical (9216 -> 4096 -> 4096 -> num_classes).
    Dropout is inactive in eval mode, the mode in which ``build`` returns the model.

    Shapes: (B, in_channels, H, W) -> (B, num_classes); feature (B, 4096).
    """

    classifier_name = "classifier"

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        image_size: int = 224,
        classifier_bias: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.small_stem: bool = image_size < SMALL_IMAGE_THRESHOLD
        if self.small_stem:
            first = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1)
        else:
            first = nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2)
        self.features = nn.Sequential(
            first,
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.head = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
        )
        self.feature_dim: int = 4096
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=classifier_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(self.head(x))


@register("alexnet", default_image_size=224)
def alexnet(
    *, num_classes: int, in_channels: int, image_size: int, classifier_bias: bool
) -> AlexNet:
    """Build AlexNet (CIFAR-sized stem when ``image_size < 64``).

    Shapes: (B, in_channels, image_size, image_size) -> (B, num_classes); feature (B, 4096).
    """
    return AlexNet(num_classes, in_channels, image_size, classifier_bias)
