"""``neurons``: activation maximisation of channels and class logits, standard vs robust weights,
without and with Lucid's priors.

Engstrom et al. (2019, "Adversarial robustness as a prior for learned representations") find that
a robust network's features can be visualised by plain gradient ascent on pixels, where a standard
network needs Lucid's priors (decorrelated Fourier image, transforms) to give anything but
high-frequency patterns. Each cell is one batched render of several units of one backbone under
one prior, saved as a labelled contact sheet.

Per sheet: the spectral metrics (means over tiles) and the *transfer robustness* (objective under
held-out transforms relative to its plain value,
:func:`paramviz.experiments.metrics.transfer_robustness`, for the sum over the sheet's units).

Class pictures: the top-5 rate of the target class by independent classifiers
(:func:`paramviz.experiments.backbone_sets.recognition_judges`: the real set's Lite1 and Lite2,
else a standard network of another architecture), at the picture's own size and under
held-out transforms, and by the network itself. Sibling networks share non-robust features, so
each network first gets an ``adversarial`` cell (:mod:`paramviz.experiments.recognition`): the
same judges' rate on small targeted PGD examples made on the rendered network from natural
photographs. A class picture counts as recognised only above that rate
(``top5_above_adversarial``).

Channel pictures (:mod:`paramviz.experiments.sanity`, after Geirhos et al. 2024): each unit's
picture beside the natural crops that drive the unit most, and how the network processes the
picture along the path to the unit, against those crops (``path_similarity``), with the
ceiling of other natural drivers (``path_natural``) and the floor of unrelated crops
(``path_unrelated``); ``path_normalised`` maps floor to 0 and ceiling to 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from paramviz import rng
from paramviz.backbones import style_preset
from paramviz.experiments import backbone_sets, metrics, priors, recognition, sanity, style_job
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
from paramviz.experiments.runner import cell_id, cell_paths
from paramviz.io import read_json

PRIORS = ("pixel", "fourier+decorrelate+transforms", "maco+transforms")
QUICK_PRIORS = ("fourier+decorrelate+transforms",)  # the pixel prior differs only in settings
# (size px, Adam steps, units per sheet). Lucid: 128 px, 512 steps; the texture nets saw 32 px
# crops and a 2-core CPU renders their sheets in minutes at 64 px and 128 steps.
BUDGETS = {
    "imagenet": (128, 512, 6),
    "small": (64, 128, 4),
    "testbed": (128, 256, 4),
    "real": (128, 256, 4),
}
QUICK_BUDGET = (32, 4, 2)
RELU_REDIRECT_STEPS = 16  # Lucid
HELD_OUT_DRAWS = 16
ADVERSARIAL = "adversarial"
ADVERSARIAL_PICTURES = ("astronaut", "coffee", "rocket", "camera")
ADVERSARIAL_EPS = 1.0
"""L2 radius at 128 px (scaled with the side): an RMS change of about 1/255 per pixel, far
below what a person sees."""
ADVERSARIAL_STEPS = 20
CROPS = 256  # natural crops ranked per channel (sanity check and the crops beside the pictures)
QUICK_CROPS = 24
CROPS_SHOWN = 3
PATH_TOP_K = 4


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
        member = context.backbone_set.member(name)
        judges[name] = [
            j.name for j in backbone_sets.recognition_judges(context.backbone_set, member)
        ]
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
        "adversarial": {
            "pictures": list(ADVERSARIAL_PICTURES[: 2 if quick else None]),
            "threat": dataclasses.asdict(
                Threat("l2", ADVERSARIAL_EPS * size / 128, ADVERSARIAL_STEPS)
            ),
        },
        "crops": {"count": QUICK_CROPS if quick else CROPS, "seed": context.options.seed},
        "path_top_k": 2 if quick else PATH_TOP_K,
    }


def plan(settings: Settings) -> list[Cell]:
    """Per backbone with logits, its adversarial baseline; then backbone × prior × unit kind
    (channels, logits)."""
    baselines = [
        Cell(
            id=cell_id(ADVERSARIAL, backbone),
            group=ADVERSARIAL,
            backbone=backbone,
            prior="pgd",
            optimizer="pgd",
            seed=settings["seed"],
            spec={"units": units["logits"]},
        )
        for backbone in settings["backbones"]
        if (units := settings["units"][backbone]).get("logits")
        and settings["recognition_judges"][backbone]
    ]
    return baselines + [
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
    if cell.group == ADVERSARIAL:
        return adversarial_cell(context, settings, cell)
    return unit_cell(context, settings, cell)


def unit_cell(context: RunContext, settings: Settings, cell: Cell) -> CellOutput:
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
    periods = metrics.stride_periods(backbone, layers, size)
    values |= metrics.spectral_metrics(images, periods)
    details |= {"stopped_reason": result.stopped_reason, "checkerboard_periods": list(periods)}
    member = context.backbone_set.member(cell.backbone)
    labels = unit_labels(units, member.class_names)
    if cell.group == "logits":
        values |= class_recognition(context, settings, cell, images, units, details)
        return CellOutput(outputs.picture(images, labels), values, {}, labels, details)
    sheet, sheet_labels, path_values = beside_natural_crops(context, settings, cell, images, labels)
    return CellOutput(sheet, values | path_values, {}, sheet_labels, details)


def classes_of(units: list[str]) -> list[int]:
    return [int(unit.partition(":")[2]) for unit in units]


def judged_rates(
    context: RunContext,
    settings: Settings,
    judges: list[str],
    images: np.ndarray,
    classes: list[int],
) -> dict[str, float]:
    """Per judge, the top-k rate of ``classes`` on the pictures as they are (``top5_<judge>``)
    and under the held-out transforms (``top5_<judge>_held_out``, over their draws), and the
    judges' means (``top5_independent``, ``top5_independent_held_out``)."""
    k, draws = settings["top_k"], settings["held_out_draws"]
    moved = np.concatenate(
        [
            np.asarray(metrics.HELD_OUT(jax.random.fold_in(rng.key(settings["seed"]), i), images))
            for i in range(draws)
        ]
    )
    values = {}
    for judge in judges:
        net = context.backbone(judge)
        values[f"top5_{judge}"] = metrics.top_k_recognised(net, images, classes, k).rate
        values[f"top5_{judge}_held_out"] = metrics.top_k_recognised(
            net, moved, classes * draws, k
        ).rate
    for suffix in ("", "_held_out"):
        rates = [values[f"top5_{judge}{suffix}"] for judge in judges]
        values[f"top5_independent{suffix}"] = float(np.mean(rates))
    return values


def class_recognition(
    context: RunContext,
    settings: Settings,
    cell: Cell,
    images: np.ndarray,
    units: list[str],
    details: dict[str, Any],
) -> dict[str, float]:
    """Top-k rates of the rendering network and the independent judges, and how far the
    judges' rate lies above their rate on the network's adversarial examples."""
    classes = classes_of(units)
    own = metrics.top_k_recognised(
        context.backbone(cell.backbone), images, classes, settings["top_k"]
    )
    values = {"top5_self": own.rate}
    judges = settings["recognition_judges"][cell.backbone]
    details["recognition_judges"] = judges
    if not judges:
        return values
    values |= judged_rates(context, settings, judges, images, classes)
    baseline = adversarial_record(context, cell.backbone).metrics
    for suffix in ("", "_held_out"):
        values[f"top5_above_adversarial{suffix}"] = (
            values[f"top5_independent{suffix}"] - baseline[f"top5_independent{suffix}"]
        )
    return values


def adversarial_record(context: RunContext, backbone: str) -> CellRecord:
    """The finished adversarial-baseline cell of ``backbone`` (planned before its pictures)."""
    path = cell_paths(context.run_dir / NEURONS.name, cell_id(ADVERSARIAL, backbone))[1]
    return CellRecord.from_json(read_json(path))


def adversarial_cell(context: RunContext, settings: Settings, cell: Cell) -> CellOutput:
    """The judges' top-k rate on small targeted PGD examples made on the rendered network
    (:func:`paramviz.experiments.recognition.adversarial_baseline`): the rate at which they
    "recognise" a class from features no person sees."""
    from paramviz import outputs
    from paramviz.experiments import robustness

    size, spec = settings["size"], settings["adversarial"]
    pictures = robustness.robustness_pictures(tuple(spec["pictures"]), size)
    classes = classes_of(cell.spec["units"])
    judges = settings["recognition_judges"][cell.backbone]
    baseline = recognition.adversarial_baseline(
        context.backbone(cell.backbone),
        {judge: context.backbone(judge) for judge in judges},
        pictures,
        classes,
        Threat(**spec["threat"]),
        rng.key(cell.seed),
        settings["top_k"],
    )
    examples, targets = baseline.examples, baseline.classes.tolist()
    values = {"top5_self": baseline.own_rate}
    values |= judged_rates(context, settings, judges, examples, targets)
    values |= {f"top5_{judge}_clean": rate for judge, rate in baseline.clean_rates.items()}
    member = context.backbone_set.member(cell.backbone)
    labels = [
        f"{name} -> {label}"
        for name in spec["pictures"]
        for label in unit_labels(cell.spec["units"], member.class_names)
    ]
    details = {"threat": baseline.threat, "recognition_judges": judges}
    return CellOutput(
        outputs.contact_sheet(examples, labels, columns=len(classes)), values, {}, labels, details
    )


def beside_natural_crops(
    context: RunContext, settings: Settings, cell: Cell, images: np.ndarray, labels: list[str]
) -> tuple[np.ndarray, list[str], dict[str, float]]:
    """Each channel's picture beside the natural crops that drive it most, and the path check
    of :mod:`paramviz.experiments.sanity` (means over the units)."""
    from paramviz import outputs

    backbone = context.backbone(cell.backbone)
    crops = sanity.natural_crops(
        settings["size"], settings["crops"]["count"], settings["crops"]["seed"]
    )
    units = [
        (layer, int(channel))
        for layer, _, channel in (u.rpartition(":") for u in cell.spec["units"])
    ]
    checks = sanity.check_units(backbone, units, images, crops, settings["path_top_k"])
    tiles, sheet_labels = [], []
    for image, label, check in zip(images, labels, checks, strict=True):
        tiles += [image, *crops.images[check.drivers[:CROPS_SHOWN]]]
        sheet_labels += [label] + [f"crop {n + 1}" for n in range(CROPS_SHOWN)]
    similarity, natural, unrelated = (
        float(np.mean(values))
        for values in zip(
            *[(c.pictures.mean(), c.natural, c.unrelated) for c in checks], strict=True
        )
    )
    values = {
        "path_similarity": similarity,
        "path_natural": natural,
        "path_unrelated": unrelated,
        # on the units' means: one unit whose natural drivers look like unrelated crops would
        # otherwise divide by almost nothing and decide the mean alone
        "path_normalised": (similarity - unrelated) / (natural - unrelated),
    }
    sheet = outputs.contact_sheet(np.stack(tiles), sheet_labels, columns=1 + CROPS_SHOWN)
    return sheet, sheet_labels, values


def rows(settings: Settings, records) -> list[dict]:
    """Means per backbone × prior × unit kind (one sheet each: the cells themselves)."""
    return style_job.mean_rows(records, ("backbone", "prior", "group"), COLUMNS)


COLUMNS = (
    "transfer_robustness",
    "top5_independent",
    "top5_independent_held_out",
    "top5_above_adversarial",
    "top5_above_adversarial_held_out",
    "top5_self",
    "path_similarity",
    "path_natural",
    "path_unrelated",
    "path_normalised",
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
