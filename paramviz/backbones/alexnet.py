"""torchvision AlexNet (the 64-192-384-256-256 "one weird trick" variant).

Tap names, in forward order::

    conv1, relu1, pool1, conv2, relu2, pool2, conv3, relu3, conv4, relu4, conv5, relu5, pool5,
    avgpool, fc6, relu6, fc7, relu7, logits

Pools are 3×3 stride 2 max pools (floor mode); ``avgpool`` is ``AdaptiveAvgPool2d(6)``, so any
input of at least 63×63 pixels works. Dropout is absent (eval mode).
"""

from __future__ import annotations

from paramviz.backbones.architecture import Architecture, StylePreset, register
from paramviz.backbones.base import (
    Classifier,
    Conv,
    MaxPool,
    ReLU,
    Step,
    classifier_head,
    scaled,
)

# (name, output channels, kernel, stride, padding, torchvision index, pool after)
_CONVS = (
    ("conv1", 64, 11, 4, 2, 0, "pool1"),
    ("conv2", 192, 5, 1, 2, 3, "pool2"),
    ("conv3", 384, 3, 1, 1, 6, None),
    ("conv4", 256, 3, 1, 1, 8, None),
    ("conv5", 256, 3, 1, 1, 10, "pool5"),
)


class AlexNet(Classifier):
    """torchvision ``alexnet`` (ImageNet input convention)."""

    variant: str = "alexnet"

    def all_steps(self) -> tuple[Step, ...]:
        steps: list[Step] = []
        for name, channels, kernel, stride, padding, index, pool_name in _CONVS:
            steps.append(
                Conv(
                    name=name,
                    features=scaled(channels, self.width),
                    kernel=kernel,
                    stride=stride,
                    padding=padding,
                    torch=f"features.{index}",
                )
            )
            steps.append(ReLU(name=name.replace("conv", "relu")))
            if pool_name:
                steps.append(MaxPool(name=pool_name, window=3, stride=2))
        hidden = scaled(4096, self.width)
        torch_layers = ("classifier.1", "classifier.4", "classifier.6")
        return (*steps, *classifier_head(6, hidden, self.num_classes, torch_layers))


ENGSTROM_ALEXNET = StylePreset("engstrom_alexnet", ("relu1", "relu2", "relu3", "relu4"), ("relu4",))
"""Engstrom et al. (Distill 2019): AlexNet transfers style with ``conv_1 ... conv_4`` (their ReLU
outputs); the content layer is not stated, the last of them is used."""

register(Architecture("alexnet", AlexNet, style=ENGSTROM_ALEXNET, detect_priority=20))
