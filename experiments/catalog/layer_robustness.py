"""``layer-robustness``: Engstrom et al.'s R(f) for the first layers/stages of every backbone.

How R(f) is measured (ball, radius, attack, pictures) is :mod:`paramviz.experiments.robustness`.
Layers: each backbone's style layers (ResNet stages, VGG ``relu*_1``, AlexNet ``relu1-4``), the
networks as trained (VGG max pools, not the style experiments' average pools).

Published values (read off Engstrom et al.'s figure, first four layers): standard ResNet-50 ≈ 0.54,
0.45, 0.45, 0.58; AlexNet ≈ 0.06, 0.12, 0.37, 0.50; VGG-16 ≈ 0.06, 0.11, 0.16, 0.21; robust
ResNet-50 ≈ 0.07, 0.07, 0.06, 0.05 (Engstrom et al., "A Discussion of 'Adversarial Examples
Are Not Bugs, They Are Features': Adversarially Robust Neural Style Transfer", Distill 2019,
the figure of layer robustnesses).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from paramviz import rng
from paramviz.experiments import robustness, style_job
from paramviz.experiments.attacks import Threat
from paramviz.experiments.records import CellRecord
from paramviz.experiments.registry import (
    Cell,
    CellOutput,
    Experiment,
    RunContext,
    Settings,
    register,
)
from paramviz.experiments.runner import cell_id

NAME = "layer-robustness"
COLUMNS = ("R", "attacked_distance", "pair_distance", "perturbation_l2")
QUICK_LAYERS = 2
SHOWN = 3  # pictures on each cell's sheet: clean, attacked, amplified perturbation
SHEET_TILE = 96  # px: small pictures are enlarged (nearest neighbour) to about this on sheets

PUBLISHED: dict[str, tuple[float, ...]] = {
    "resnet50": (0.54, 0.45, 0.445, 0.58),
    "alexnet": (0.06, 0.12, 0.37, 0.50),
    "vgg16": (0.055, 0.11, 0.16, 0.21),
    "resnet50-robust-l2-eps3": (0.07, 0.065, 0.062, 0.05),
}
"""R(f) of the first four layers read off Engstrom et al.'s figure (Distill 2019)."""


def attack_settings(context: RunContext) -> Settings:
    """The R(f) attack and pictures: set defaults, overridden by the run options (flags)."""
    options, backbone_set = context.options, context.backbone_set
    steps = options.robustness_steps or (
        robustness.QUICK_STEPS if context.quick else robustness.STEPS
    )
    eps = options.robustness_eps if options.robustness_eps is not None else backbone_set.robust_eps
    threat = Threat("l2", eps, steps, options.robustness_step_size)
    names = (
        robustness.PICTURES[: robustness.QUICK_PICTURES] if context.quick else robustness.PICTURES
    )
    return {
        "pictures": list(names),
        "size": backbone_set.robustness_size,
        "norm": "l2",
        "eps": eps,
        "steps": steps,
        "step_size": threat.step_length,
        "attack": threat.describe(),
        "seed": options.seed,
    }


def measure(
    context: RunContext, backbone_name: str, layer: str, attack: Settings
) -> robustness.Attack:
    """The PGD attack on ``layer`` of ``backbone_name`` over the settings' pictures."""
    backbone = context.backbone(backbone_name)
    size = attack["size"]
    backbone.check_layers([layer], (size, size))
    return robustness.attack_layer(
        backbone,
        jnp.asarray(robustness.robustness_pictures(tuple(attack["pictures"]), size)),
        rng.key(attack["seed"]),
        attack["eps"],
        attack["step_size"],
        layer=layer,
        steps=attack["steps"],
    )


def settings(context: RunContext) -> Settings:
    names = list(context.backbone_set.names)
    table = style_job.layer_table(context, names, None)
    count = QUICK_LAYERS if context.quick else None
    return {
        "weights_set": context.backbone_set.name,
        "quick": context.quick,
        "backbones": names,
        "layers": {name: table[name]["style"][:count] for name in names},
        **attack_settings(context),
        "definition": "R(f) = mean_x ||f(PGD(x)) - f(x)||_2 / mean_{i<j} ||f(x_i) - f(x_j)||_2",
    }


def plan(settings: Settings) -> list[Cell]:
    return [
        Cell(
            id=cell_id(backbone, layer),
            group=backbone,
            backbone=backbone,
            prior="none",
            optimizer="pgd",
            seed=settings["seed"],
            spec={"layer": layer},
        )
        for backbone in settings["backbones"]
        for layer in settings["layers"][backbone]
    ]


def attack_sheet(
    attack: robustness.Attack, clean: np.ndarray, names: list[str]
) -> tuple[np.ndarray, list]:
    """Clean, attacked and perturbation (amplified to the full range) for the first pictures."""
    from paramviz import outputs

    shown = min(SHOWN, len(clean))
    adversarial = np.asarray(attack.adversarial[:shown])
    delta = adversarial - clean[:shown]
    scale = 0.5 / max(float(np.max(np.abs(delta))), 1e-12)
    tiles, labels = [], []
    for i in range(shown):
        tiles += [clean[i], adversarial[i], 0.5 + scale * delta[i]]
        labels += [names[i], "attacked", "x'-x (amplified)"]
    zoom = max(1, SHEET_TILE // clean.shape[1])  # pixel-exact enlargement of small pictures
    tiles = np.repeat(np.repeat(np.stack(tiles), zoom, axis=1), zoom, axis=2)
    return outputs.contact_sheet(tiles, labels, columns=3), labels


def run_cell(context: RunContext, settings: Settings, cell: Cell) -> CellOutput:
    attack = measure(context, cell.backbone, cell.spec["layer"], settings)
    names = settings["pictures"]
    picture, labels = attack_sheet(
        attack, robustness.robustness_pictures(tuple(names), settings["size"]), names
    )
    values = {
        "R": robustness.robustness_ratio(attack),
        "attacked_distance": float(np.mean(np.asarray(attack.moved))),
        "pair_distance": robustness.mean_pairwise_distance(attack.features),
        "perturbation_l2": float(np.mean(np.asarray(attack.radius))),
    }
    return CellOutput(picture, values, {}, labels, {"layer": cell.spec["layer"]})


def rows(settings: Settings, records: list[CellRecord]) -> list[dict[str, Any]]:
    """The R(f) table, with the published value where Engstrom et al. give one."""
    table = []
    for record in records:
        layer = record.spec["layer"]
        position = settings["layers"][record.backbone].index(layer)
        published = PUBLISHED.get(record.backbone, ())
        table.append(
            {
                "backbone": record.backbone,
                "layer": layer,
                "R": record.metrics.get("R"),
                "eps": settings["eps"],
                "steps": settings["steps"],
                "published_R": published[position] if position < len(published) else None,
            }
        )
    return table


LAYER_ROBUSTNESS_CLAIM = (
    "R(f): how far a small pixel ball moves each layer",
    "Engstrom et al. (2019): a standard ResNet-50's layers are far less robust "
    "(R ≈ 0.45-0.58) than VGG's and AlexNet's early layers (R ≈ 0.06-0.2) or a robust "
    "ResNet-50's (R ≈ 0.05-0.07), which is why its style transfer fails.",
)
LAYER_ROBUSTNESS = register(
    Experiment(NAME, *LAYER_ROBUSTNESS_CLAIM, COLUMNS, settings, plan, run_cell, rows, order=50)
)  # fmt: skip
