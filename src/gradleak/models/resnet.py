"""ResNets: CIFAR-style ResNet-18 and ImageNet-style ResNet-18 / ResNet-50.

Shapes: (B, C, H, W) -> (B, num_classes); feature (B, 512) for BasicBlock, (B, 2048) for
Bottleneck.
"""

from __future__ import annotations

import torch
from torch import nn

from gradleak.models.registry import register


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual shortcut.

    Shapes: (B, in_planes, H, W) -> (B, planes, ceil(H/stride), ceil(W/stride)).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), each with BN, plus residual shortcut.

    Shapes: (B, in_planes, H, W) -> (B, 4 * planes, ceil(H/stride), ceil(W/stride)).
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with a CIFAR stem (3x3 conv, stride 1, no max-pool) or an ImageNet stem
    (7x7 conv stride 2 + 3x3/2 max-pool), four stages (64, 128, 256, 512 planes; strides
    1, 2, 2, 2), global average pool, flatten and the final ``classifier``.

    Shapes: (B, in_channels, H, W) -> (B, num_classes); feature (B, 512 * block.expansion).
    """

    classifier_name = "classifier"

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int,
        in_channels: int = 3,
        stem: str = "cifar",
        classifier_bias: bool = False,
    ) -> None:
        super().__init__()
        if stem == "cifar":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
            )
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        else:
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        in_planes = 64
        stages: list[nn.Module] = []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stage: list[nn.Module] = []
            for j in range(blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stage.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim: int = in_planes
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=classifier_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


@register("resnet18", default_image_size=32)
def resnet18(
    *, num_classes: int, in_channels: int, image_size: int, classifier_bias: bool
) -> ResNet:
    """CIFAR-style ResNet-18 (BasicBlock [2, 2, 2, 2], 3x3 stem, no max-pool).

    Shapes: (B, in_channels, image_size, image_size) -> (B, num_classes); feature (B, 512).
    """
    del image_size  # global average pooling makes the network size-agnostic
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, "cifar", classifier_bias)


@register("resnet18-imagenet", default_image_size=224)
def resnet18_imagenet(
    *, num_classes: int, in_channels: int, image_size: int, classifier_bias: bool
) -> ResNet:
    """ImageNet-style ResNet-18 (BasicBlock [2, 2, 2, 2], 7x7/2 stem + max-pool).

    Shapes: (B, in_channels, image_size, image_size) -> (B, num_classes); feature (B, 512).
    """
    del image_size
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, "imagenet", classifier_bias)


@register("resnet50", default_image_size=224)
def resnet50(
    *, num_classes: int, in_channels: int, image_size: int, classifier_bias: bool
) -> ResNet:
    """ImageNet-style ResNet-50 (Bottleneck [3, 4, 6, 3], 7x7/2 stem + max-pool).

    Shapes: (B, in_channels, image_size, image_size) -> (B, num_classes); feature (B, 2048).
    """
    del image_size
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, "imagenet", classifier_bias)
