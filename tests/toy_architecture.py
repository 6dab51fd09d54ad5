"""A toy architecture registered from outside paramviz: one module, no edit anywhere else.

``ToyNet`` is two conv blocks and a linear head, with PyTorch names ``body.0``, ``body.3`` and
``head`` (the ``nn.Module`` in :func:`torch_twin` has the same layout). Importing this module
registers it as ``toynet``; ``PARAMVIZ_PLUGINS=toy_architecture`` does so for the command line.
"""

from __future__ import annotations

from paramviz.backbones import Architecture, StylePreset, base, register


class ToyNet(base.Classifier):
    """conv1 → relu1 → pool1 → conv2 → relu2 → avgpool → logits."""

    num_classes: int = 10
    variant: str = "toynet"

    def all_steps(self) -> tuple[base.Step, ...]:
        return (
            self.conv("conv1", 16, "body.0"),
            base.ReLU(name="relu1"),
            base.MaxPool(name="pool1", window=2, stride=2),
            self.conv("conv2", 32, "body.3"),
            base.ReLU(name="relu2"),
            base.AdaptiveAvgPool(name="avgpool", size=(1, 1)),
            base.Dense(name="logits", features=self.num_classes, torch="head"),
        )

    def conv(self, name: str, channels: int, torch: str) -> base.Conv:
        features = base.scaled(channels, self.width)
        return base.Conv(name=name, features=features, kernel=3, padding=1, torch=torch)


register(
    Architecture(
        "toynet",
        ToyNet,
        style=StylePreset("toy", style_layers=("relu1", "relu2"), content_layers=("relu2",)),
        trainable=True,
    )
)


def torch_twin(width: float = 1.0, num_classes: int = 10):
    """The same network in PyTorch, with the same parameter names."""
    import torch
    from torch import nn

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            a, b = base.scaled(16, width), base.scaled(32, width)
            self.body = nn.Sequential(
                nn.Conv2d(3, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            )  # fmt: skip
            self.head = nn.Linear(b, num_classes)

        def forward(self, x):
            return self.head(torch.flatten(self.body(x), 1))

    return Twin()
