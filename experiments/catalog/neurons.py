"""``neurons``: activation maximisation of channels and class logits, standard vs robust weights,
without and with Lucid's priors.

Engstrom et al. (2019, "Adversarial robustness as a prior for learned representations") find that
a robust network's features can be visualised by plain gradient ascent on pixels, where a standard
network needs Lucid's priors (decorrelated Fourier image, transforms) to give anything but
high-frequency patterns. Each cell is one batched render of several units of one backbone under
one prior, saved as a labelled contact sheet.

Per sheet: the spectral metrics (means over tiles), the *transfer robustness* (objective under
held-out transforms relative to its plain value,
:func:`paramviz.experiments.metrics.transfer_robustness`, for the sum over the sheet's units) and,
for logits, the top-5 recognition rate by an independent classifier
(:func:`paramviz.experiments.backbone_sets.recognition_judge`: a standard network of another
architecture with the same classes, else the pair twin) and by the network itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from paramviz import rng
from paramviz.backbones import style_preset
from paramviz.experiments import backbone_sets, metrics, priors, style_job
from paramviz.experiments.registry import (
    Cell,
    CellOutput,
    Experiment,
    RunContext,
    Settings,
    register,
)
from paramviz.experiments.runner import cell_id

PRIORS = ("pixel", "fourier+decorrelate+transforms", "maco+transforms")
QUICK_PRIORS = ("fourier+decorrelate+transforms",)  # the pixel prior differs only in settings
# (size px, Adam steps, units per sheet). Lucid: 128 px, 512 steps; the texture nets saw 32 px
# crops and a 2-core CPU renders their sheets in minutes at 64 px and 128 steps.
BUDGETS = {"imagenet": (128, 512, 6), "small": (64, 128, 4), "testbed": (128, 256, 4)}
QUICK_BUDGET = (32, 4, 2)
RELU_REDIRECT_STEPS = 16  # Lucid
HELD_OUT_DRAWS = 16


def channel_layer(context: RunContext, name: str) -> str:
    """A mid-depth layer to visualise: the backbone's content layer (ResNet layer3, VGG
    relu4_2, AlexNet relu4, the VGG trunk's relu3_1)."""
    return style_preset(context.backbone(name))[1][0]


def units_of(context: RunContext, name: str, count: int) -> dict[str, list[str]]:
    """``{"channels": [...], "logits": [...]}``: the first channels of the channel layer and
    classes spread evenly over the classifier (no logits for a trunk)."""
    member = context.backbone_set.member(name)
    layer = channel_layer(context, name)
    units = {"channels": [f"{layer}:{c}" for c in range(count)]}
    if member.num_classes:
        classes = np.linspace(0, member.num_classes - 1, count).round().astype(int)
        units["logits"] = [f"logit:{k}" for k in dict.fromkeys(classes.tolist())]
    return units


def settings(context: RunContext) -> Settings:
    quick, set_name = context.quick, context.backbone_set.name
    names = list(context.backbone_set.names)
    size, steps, count = QUICK_BUDGET if quick else BUDGETS[set_name]
    judges = {}
    for name in names:
        judge = backbone_sets.recognition_judge(
            context.backbone_set, context.backbone_set.member(name)
        )
        judges[name] = judge.name if judge else None
    return {
        "weights_set": set_name,
        "quick": quick,
        "seed": context.options.seed,
        "backbones": names,
        "size": size,
        "steps": steps,
        "optimizer": "adam",
        "learning_rate": priors.LEARNING_RATE,
        "relu_redirect_steps": 1 if quick else RELU_REDIRECT_STEPS,
        "priors": priors.prior_settings(QUICK_PRIORS if quick else PRIORS),
        "units": {name: units_of(context, name, count) for name in names},
        "recognition_judges": judges,
        "held_out_draws": 4 if quick else HELD_OUT_DRAWS,
        "top_k": 5,
    }


def plan(settings: Settings) -> list[Cell]:
    """Backbone × prior × unit kind (channels, logits)."""
    return [
        Cell(
            id=cell_id(kind, backbone, prior),
            group=kind,
            backbone=backbone,
            prior=prior,
            optimizer=settings["optimizer"],
            seed=settings["seed"],
            spec={"units": units},
        )
        for backbone in settings["backbones"]
        for prior in settings["priors"]
        for kind, units in settings["units"][backbone].items()
    ]


def unit_labels(units: list[str], class_names: tuple[str, ...] | None) -> list[str]:
    """Tile labels: the unit, with the class name for logits when the weights carry names."""
    labels = []
    for unit in units:
        kind, _, index = unit.partition(":")
        if kind == "logit" and class_names:
            labels.append(f"{index} {class_names[int(index)].rsplit('/', 1)[-1]}")
        else:
            labels.append(unit)
    return labels


def run_cell(context: RunContext, settings: Settings, cell: Cell) -> CellOutput:
    from paramviz import objectives, outputs, render

    size = settings["size"]
    backbone = context.backbone(cell.backbone)
    objective, units = objectives.batch_objective(cell.spec["units"])
    layers = sorted({layer for _, layer in objective.layers} - objectives.PSEUDO_LAYERS)
    backbone.check_layers(layers, (size, size))
    prior = priors.prior_of(settings, cell.prior)
    result = render.render(
        objective,
        priors.image_param(prior, cell.seed, len(units), size),
        backbone,
        transforms=prior.transforms,
        steps=settings["steps"],
        optimizer=cell.optimizer,
        learning_rate=settings["learning_rate"],
        seed=cell.seed,
        relu_redirect_steps=settings["relu_redirect_steps"],
        progress=context.options.progress,
    )
    images = result.image
    robustness = metrics.transfer_robustness(
        objective,
        backbone,
        images,
        rng.key(cell.seed),
        n=settings["held_out_draws"],
    )
    values = {
        "transfer_robustness": robustness.ratio,
        "transfer_robustness_worst": robustness.worst,
    }
    details: dict[str, Any] = {"final_loss": result.final_loss, "steps_run": result.steps_run}
    if cell.group == "logits":
        values |= recognition(context, settings, cell, images, units, details)
    periods = metrics.stride_periods(backbone, layers, size)
    values |= metrics.spectral_metrics(images, periods)
    details |= {"stopped_reason": result.stopped_reason, "checkerboard_periods": list(periods)}
    member = context.backbone_set.member(cell.backbone)
    labels = unit_labels(units, member.class_names)
    return CellOutput(outputs.picture(images, labels), values, {}, labels, details)


def recognition(
    context: RunContext,
    settings: Settings,
    cell: Cell,
    images: np.ndarray,
    units: list[str],
    details: dict[str, Any],
) -> dict[str, float]:
    """Top-k rates of the rendering network and of the independent judge (if there is one)."""
    classes = [int(unit.partition(":")[2]) for unit in units]
    k = settings["top_k"]
    own = metrics.top_k_recognised(context.backbone(cell.backbone), images, classes, k)
    values = {"top5_self": own.rate}
    judge = settings["recognition_judges"][cell.backbone]
    details["recognition_judge"] = judge
    if judge is not None:
        other = metrics.top_k_recognised(context.backbone(judge), images, classes, k)
        values["top5_independent"] = other.rate
        details["independent_ranks"] = other.ranks.tolist()
    return values


def rows(settings: Settings, records) -> list[dict]:
    """Means per backbone × prior × unit kind (one sheet each: the cells themselves)."""
    return style_job.mean_rows(records, ("backbone", "prior", "group"), COLUMNS)


COLUMNS = (
    "transfer_robustness",
    "top5_independent",
    "top5_self",
    "high_frequency_ratio",
    "spectrum_slope",
    "checkerboard",
)

NEURONS_CLAIM = (
    "Activation maximisation: channels and logits, standard vs robust, priors on/off",
    "Engstrom et al. (2019): robust networks' features and classes can be visualised "
    "by plain pixel gradient ascent and are recognisable, where standard networks need priors; "
    "Lucid: priors make standard networks' visualisations interpretable.",
)
NEURONS = register(
    Experiment("neurons", *NEURONS_CLAIM, COLUMNS,
               settings, plan, run_cell, rows, order=30)
)  # fmt: skip
