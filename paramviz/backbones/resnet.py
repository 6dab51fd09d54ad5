"""torchvision ResNet-18 and ResNet-50 ("v1.5": the stride sits on the 3×3 conv).

Tap names, in forward order (ResNet-50 blocks per stage 3, 4, 6, 3; ResNet-18 2, 2, 2, 2)::

    conv1, bn1, relu, maxpool,
    layer1.0, layer1.1, layer1.2, layer1,
    layer2.0, ..., layer2, layer3.0, ..., layer3, layer4.0, ..., layer4,
    avgpool, logits

``layerK.i`` is the output of block i (after its final ReLU); ``layerK`` is the stage's output,
i.e. the same value as its last block. ``avgpool`` is NHWC ``(N, 1, 1, C)``; ``logits`` is (N, C).
Flax variables follow the PyTorch names: ``params/layer3/2/conv1/kernel``,
``batch_stats/layer3/2/bn1/mean``, ``params/layer2/0/downsample/0/kernel``.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import flax.linen as nn

from paramviz.backbones import ops
from paramviz.backbones.architecture import Architecture, StylePreset, register
from paramviz.backbones.base import (
    AdaptiveAvgPool,
    Alias,
    BatchNorm,
    Classifier,
    Conv,
    Dense,
    MaxPool,
    ReLU,
    Step,
    scaled,
)

# variant: (bottleneck blocks?, blocks per stage)
RESNET_VARIANTS = {"resnet18": (False, (2, 2, 2, 2)), "resnet50": (True, (3, 4, 6, 3))}
STAGE_PLANES = (64, 128, 256, 512)


class StepGroup(nn.Module):
    """A Flax container that runs steps in order (e.g. ``downsample`` = conv ``0`` + bn ``1``)."""

    steps: tuple[Step, ...]

    @nn.compact
    def __call__(self, x, redirect):
        for step in self.steps:
            x = step(x, redirect, {})
        return x


class ResidualUnit(nn.Module):
    """One basic or bottleneck block: ``relu(main(x) + shortcut(x))``."""

    main: tuple[Step, ...]
    shortcut: tuple[Step, ...]

    @nn.compact
    def __call__(self, x, redirect):
        y = x
        for step in self.main:
            y = step(y, redirect, {})
        if self.shortcut:
            x = StepGroup(self.shortcut, name="downsample")(x, redirect)
        return ops.relu(y + x, redirect)


class ResidualStage(nn.Module):
    """``layerK``: holds its blocks as submodules ``0``, ``1``, ... (called one block at a time)."""

    @nn.compact
    def __call__(self, x, redirect, block: ResidualBlock):
        unit = ResidualUnit(block.main, block.shortcut, name=str(block.index))
        return unit(x, redirect)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResidualBlock(Step):
    """Block ``index`` of stage ``stage``; its tap name is ``"{stage}.{index}"``."""

    stage: str
    index: int
    main: tuple[Step, ...]
    shortcut: tuple[Step, ...] = ()

    def __call__(self, x, redirect, shared):
        if self.stage not in shared:
            shared[self.stage] = ResidualStage(name=self.stage)
        return shared[self.stage](x, redirect, self)

    def param_refs(self):
        path, torch = (self.stage, str(self.index)), f"{self.stage}.{self.index}"
        refs = [ref.nested(path, torch) for step in self.main for ref in step.param_refs()]
        refs += [
            ref.nested((*path, "downsample"), f"{torch}.downsample")
            for step in self.shortcut
            for ref in step.param_refs()
        ]
        return tuple(refs)


def _conv_bn(index: int, features: int, kernel: int, stride: int = 1) -> list[Step]:
    """``conv{index}`` (no bias, 'same' padding) followed by ``bn{index}``."""
    conv = Conv(
        name=f"conv{index}",
        features=features,
        kernel=kernel,
        stride=stride,
        padding=kernel // 2,
        bias=False,
        torch=f"conv{index}",
    )
    return [conv, BatchNorm(name=f"bn{index}", torch=f"bn{index}")]


def block_layers(bottleneck: bool, planes: int, out: int, stride: int) -> tuple[Step, ...]:
    """The main branch of a block (torchvision ``BasicBlock`` / ``Bottleneck``, stride on 3×3)."""
    relu = ReLU(name="relu")
    if bottleneck:
        return (
            *_conv_bn(1, planes, 1),
            relu,
            *_conv_bn(2, planes, 3, stride),
            relu,
            *_conv_bn(3, out, 1),
        )
    return (*_conv_bn(1, planes, 3, stride), relu, *_conv_bn(2, planes, 3))


def downsample_layers(out: int, stride: int) -> tuple[Step, ...]:
    """torchvision's shortcut projection: 1×1 conv (stride) + batch norm, indices 0 and 1."""
    conv = Conv(name="0", features=out, kernel=1, stride=stride, bias=False, torch="0")
    return (conv, BatchNorm(name="1", torch="1"))


class ResNet(Classifier):
    """torchvision ``resnet18`` / ``resnet50`` (ImageNet input convention)."""

    variant: str = "resnet50"

    def all_steps(self) -> tuple[Step, ...]:
        bottleneck, blocks_per_stage = RESNET_VARIANTS[self.variant]
        expansion = 4 if bottleneck else 1
        channels = scaled(64, self.width)
        steps: list[Step] = [
            Conv(
                name="conv1",
                features=channels,
                kernel=7,
                stride=2,
                padding=3,
                bias=False,
                torch="conv1",
            ),
            BatchNorm(name="bn1", torch="bn1"),
            ReLU(name="relu"),
            MaxPool(name="maxpool", window=3, stride=2, padding=1),
        ]
        stages = zip(blocks_per_stage, STAGE_PLANES, strict=True)
        for number, (blocks, planes) in enumerate(stages, start=1):
            stage = f"layer{number}"
            planes = scaled(planes, self.width)
            out = planes * expansion
            for index in range(blocks):
                stride = 2 if index == 0 and number > 1 else 1
                projects = stride != 1 or channels != out
                steps.append(
                    ResidualBlock(
                        name=f"{stage}.{index}",
                        stage=stage,
                        index=index,
                        main=block_layers(bottleneck, planes, out, stride),
                        shortcut=downsample_layers(out, stride) if projects else (),
                    )
                )
                channels = out
            steps.append(Alias(name=stage))
        steps += [
            AdaptiveAvgPool(name="avgpool", size=(1, 1)),
            Dense(name="logits", features=self.num_classes, torch="fc"),
        ]
        return tuple(steps)


NAKANO_RESNET50 = StylePreset(
    "nakano_resnet50", ("layer1", "layer2", "layer3", "layer4"), ("layer3",)
)
"""Nakano 2019 (Distill) on (robust) ResNet-50: style after each residual stage, content layer3."""

for _priority, _variant in enumerate(("resnet50", "resnet18")):
    register(
        Architecture(
            _variant,
            partial(ResNet, variant=_variant),
            style=NAKANO_RESNET50,
            trainable=True,
            detect_priority=30 + _priority,
        )
    )
