"""VGG-16/19 (torchvision, optionally with batch norm) and the "normalised" VGG-19 of Gatys et al.

Tap names (``VGG``), in forward order::

    conv1_1, relu1_1, conv1_2, relu1_2, pool1,
    conv2_1, relu2_1, conv2_2, relu2_2, pool2,
    conv3_1, relu3_1, ..., relu3_3 (VGG-16) | relu3_4 (VGG-19), pool3,
    conv4_1, ..., pool4, conv5_1, ..., relu5_3 | relu5_4, pool5,
    avgpool, fc6, relu6, fc7, relu7, logits

``vgg16_bn`` adds ``bn1_1``, ``bn1_2``, ... after each conv (before its ReLU). Dropout is absent
(eval mode). ``pooling="avg"`` swaps every max pool for a 2×2 average pool (Gatys et al. 2016).

Tap names (``NormalisedVGG19``): ``preprocess`` (the checkpoint's fixed 1×1 conv, RGB in
[0, 1] → BGR × 255 − Caffe mean), then ``conv1_1, relu1_1, ..., pool4, conv5_1, ..., relu5_4`` as
above; every 3×3 conv is preceded by ``ReflectionPad2d(1)`` and pools use ``ceil_mode=True``.
The PyTorch ``nn.Sequential`` indices of the AdaIN/WCT layout are kept for conversion
(``0`` = preprocess, ``2`` = conv1_1, ``5`` = conv1_2, ``9`` = conv2_1, ...).
"""

from __future__ import annotations

from functools import partial

from paramviz.backbones.architecture import Architecture, StylePreset, register
from paramviz.backbones.base import (
    BatchNorm,
    Classifier,
    Conv,
    ReLU,
    Step,
    TapNetwork,
    classifier_head,
    pool,
    scaled,
)

CONVS_PER_BLOCK = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
VGG_VARIANTS = ("vgg16", "vgg19", "vgg16_bn", "vgg19_bn")


def vgg_trunk(
    convs_per_block: tuple[int, ...],
    *,
    width: float = 1.0,
    batch_norm: bool = False,
    pooling: str = "max",
    reflect: bool = False,
    ceil_mode: bool = False,
    torch_prefix: str = "features.",
    first_index: int = 0,
    final_pool: bool = True,
) -> list[Step]:
    """The 3×3 conv blocks shared by all VGGs, with their ``nn.Sequential`` indices.

    ``reflect`` puts a ``ReflectionPad2d(1)`` module (one index) before each unpadded conv.
    """
    steps: list[Step] = []
    index = first_index
    last_block = len(convs_per_block)
    blocks = zip(convs_per_block, BLOCK_CHANNELS, strict=False)
    for block, (count, channels) in enumerate(blocks, start=1):
        for i in range(1, count + 1):
            if reflect:
                index += 1  # the ReflectionPad2d module
            steps.append(
                Conv(
                    name=f"conv{block}_{i}",
                    features=scaled(channels, width),
                    kernel=3,
                    padding=1,
                    reflect=reflect,
                    torch=f"{torch_prefix}{index}",
                )
            )
            index += 1
            if batch_norm:
                steps.append(BatchNorm(name=f"bn{block}_{i}", torch=f"{torch_prefix}{index}"))
                index += 1
            steps.append(ReLU(name=f"relu{block}_{i}"))
            index += 1
        if block < last_block or final_pool:
            steps.append(pool(pooling, f"pool{block}", 2, 2, ceil_mode=ceil_mode))
            index += 1
    return steps


class VGG(Classifier):
    """torchvision ``vgg16`` / ``vgg19`` / ``vgg16_bn`` / ``vgg19_bn`` (ImageNet input)."""

    variant: str = "vgg19"
    pooling: str = "max"

    def all_steps(self) -> tuple[Step, ...]:
        depth = self.variant.removesuffix("_bn")
        hidden = scaled(4096, self.width)
        trunk = vgg_trunk(
            CONVS_PER_BLOCK[depth],
            width=self.width,
            batch_norm=self.variant.endswith("_bn"),
            pooling=self.pooling,
        )
        torch_layers = ("classifier.0", "classifier.3", "classifier.6")
        return (*trunk, *classifier_head(7, hidden, self.num_classes, torch_layers))


class NormalisedVGG19(TapNetwork):
    """The "normalised" VGG-19 trunk of Gatys et al. / AdaIN / WCT (an ``nn.Sequential``).

    Its own first layer (``preprocess``) maps RGB in [0, 1] to the Caffe input, so the module's
    mean/std default to the identity.
    """

    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    pooling: str = "max"

    def arch_name(self) -> str:
        return "vgg19_normalised"

    def all_steps(self) -> tuple[Step, ...]:
        preprocess = Conv(name="preprocess", features=3, kernel=1, torch="0")
        trunk = vgg_trunk(
            CONVS_PER_BLOCK["vgg19"],
            pooling=self.pooling,
            reflect=True,
            ceil_mode=True,
            torch_prefix="",
            first_index=1,
            final_pool=False,
        )
        return (preprocess, *trunk)

    def input_convention(self) -> dict:
        return {
            **super().input_convention(),
            "preprocess": "layer 'preprocess': fixed 1x1 conv from the checkpoint, "
            "RGB in [0, 1] -> BGR x 255 - Caffe mean",
        }


GATYS_VGG19 = StylePreset(
    name="gatys_vgg19",
    style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    content_layers=("relu4_2",),
    pooling="avg",  # Gatys et al. 2016: average pooling gives smoother images
)
"""Gatys et al. 2016, VGG-19: style relu1_1..relu5_1 (equal weights), content relu4_2, avg-pool."""

# A VGG checkpoint cut before the variants differ fits several: the first computes the same layers.
_DETECT_PRIORITY = {"vgg19": 10, "vgg16": 11, "vgg16_bn": 12, "vgg19_bn": 13}
for _variant in VGG_VARIANTS:
    register(
        Architecture(
            _variant,
            partial(VGG, variant=_variant),
            style=GATYS_VGG19,
            pooling=True,
            trainable=True,
            detect_priority=_DETECT_PRIORITY[_variant],
        )
    )
register(
    Architecture(
        "vgg19_normalised", NormalisedVGG19, style=GATYS_VGG19, pooling=True, detect_priority=90
    )
)
