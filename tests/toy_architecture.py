"""A toy architecture registered from outside paramviz: one module, no edit anywhere else.

``ToyNet`` is two conv blocks and a linear head, with PyTorch names ``body.0``, ``body.3`` and
``head`` (the ``nn.Module`` in :func:`torch_twin` has the same layout). Importing this module
registers it as ``toynet``; ``PARAMVIZ_PLUGINS=toy_architecture`` does so for the command line.
"""

from __future__ import annotations

from paramviz.backbones import Architecture, StylePreset, TapNetwork, register
from paramviz.backbones.base import AdaptiveAvgPool, Conv, Dense, MaxPool, ReLU, Step, scaled


class ToyNet(TapNetwork):
    """conv1 → relu1 → pool1 → conv2 → relu2 → avgpool → logits."""

    num_classes: int = 10
    width: float = 1.0

    def arch_name(self) -> str:
        return "toynet"

    def all_steps(self) -> tuple[Step, ...]:
        return (
            Conv(
                name="conv1", features=scaled(16, self.width), kernel=3, padding=1, torch="body.0"
            ),
            ReLU(name="relu1"),
            MaxPool(name="pool1", window=2, stride=2),
            Conv(
                name="conv2", features=scaled(32, self.width), kernel=3, padding=1, torch="body.3"
            ),
            ReLU(name="relu2"),
            AdaptiveAvgPool(name="avgpool", size=(1, 1)),
            Dense(name="logits", features=self.num_classes, torch="head"),
        )


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
            a, b = scaled(16, width), scaled(32, width)
            self.body = nn.Sequential(
                nn.Conv2d(3, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            )  # fmt: skip
            self.head = nn.Linear(b, num_classes)

        def forward(self, x):
            return self.head(torch.flatten(self.body(x), 1))

    return Twin()
