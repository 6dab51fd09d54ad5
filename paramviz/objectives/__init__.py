"""Objectives: the scalar that :func:`paramviz.render.render` maximises (Lucid's convention).

Objectives combine with ``+ - * /`` (scalars or other objectives) and :meth:`Objective.sum`, so
``channel("conv4_1", 12) - 1e2 * diversity("conv4_1")`` reads like Lucid. Conventions follow Lucid:
activation objectives and the :func:`diversity` / regulariser *penalties* are positive and users
subtract the penalties; :func:`style` and :func:`content` already return the *negative* loss, so
adding them to an objective minimises the loss. Strings name objectives too (:mod:`.parse`).

One concept per module, all re-exported here: :mod:`.core` (the value, its algebra, the building
blocks), :mod:`.activation`, :mod:`.regularisers`, :mod:`.style`, :mod:`.parse`.
"""

from paramviz.backbones.alexnet import ENGSTROM_ALEXNET
from paramviz.backbones.architecture import StylePreset
from paramviz.backbones.resnet import NAKANO_RESNET50
from paramviz.backbones.vgg import GATYS_VGG19
from paramviz.objectives.activation import (
    channel,
    deepdream,
    direction,
    diversity,
    logit,
    neuron,
)
from paramviz.objectives.core import (
    IMAGE,
    INPUT,
    MAIN,
    PSEUDO_LAYERS,
    Features,
    Layers,
    Objective,
    on_layer,
)
from paramviz.objectives.parse import as_objective, batch_objective, expand, parse, spec_layers
from paramviz.objectives.regularisers import L1, L2, blur, lucid_blur, total_variation
from paramviz.objectives.style import (
    SMOOTHING,
    aligned_content,
    content,
    content_targets,
    gram,
    normalised_style_transfer,
    on_first_image,
    relative_weights,
    smooth,
    style,
    style_targets,
    style_transfer_objective,
    with_reference,
)

__all__ = [
    "ENGSTROM_ALEXNET",
    "GATYS_VGG19",
    "IMAGE",
    "INPUT",
    "L1",
    "L2",
    "MAIN",
    "NAKANO_RESNET50",
    "PSEUDO_LAYERS",
    "SMOOTHING",
    "Features",
    "Layers",
    "Objective",
    "StylePreset",
    "aligned_content",
    "as_objective",
    "batch_objective",
    "blur",
    "channel",
    "content",
    "content_targets",
    "deepdream",
    "direction",
    "diversity",
    "expand",
    "gram",
    "logit",
    "lucid_blur",
    "neuron",
    "normalised_style_transfer",
    "on_first_image",
    "on_layer",
    "parse",
    "relative_weights",
    "smooth",
    "spec_layers",
    "style",
    "style_targets",
    "style_transfer_objective",
    "total_variation",
    "with_reference",
]
