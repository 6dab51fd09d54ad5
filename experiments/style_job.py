"""One style-transfer or texture cell: its layers, its normalised objective, its render and the
numbers its picture gets. The style experiments (style grid, texture grid, content vs style net,
single-layer style) each plan cells and make them through :func:`run_style_job`.

Choices, and why:

* **Content under transforms.** Content loss compares activations position by position, but the
  transforms pad, shift, scale and rotate the picture. As in Lucid's style-transfer notebook the
  content picture is appended to the batch and transformed by the *same* draw
  (:func:`paramviz.objectives.with_reference`); the content term compares the two transformed
  images and the style term reads only the rendered one.
* **One pipeline.** A cell is prepared by :func:`paramviz.tasks.prepare_style`, as ``paramviz
  style`` is: the same layer and size checks, memory budget, fixed-size handling and objective,
  with the content loss on another network where the experiment asks for one.
* **One objective.** :func:`paramviz.tasks.style_objective`, the one ``paramviz style`` and
  ``paramviz texture`` optimise: each style layer's L1 Gram loss divided by its target's mean
  ``|G|``, each content layer's squared error by its target's mean square, so every layer and
  every network starts on the same footing; a prior may add SWAG's smoothing.
* **Judges.** :mod:`paramviz.experiments.judges`: never the network that made the picture.
* **Layers.** Each architecture's own preset (:func:`paramviz.backbones.style_preset`: Gatys for
  VGG, Nakano for ResNet, Engstrom et al.'s ``conv_1 ... conv_4`` for AlexNet; partial nets keep
  what they have).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paramviz import tasks
from paramviz.backbones import style_preset
from paramviz.experiments import calibration, judges, metrics
from paramviz.experiments.pictures import CONTENT_STYLE_PAIRS
from paramviz.experiments.priors import LEARNING_RATE, Prior, image_param, prior_of
from paramviz.experiments.records import CellRecord
from paramviz.experiments.registry import Cell, CellOutput, RunContext, Settings
from paramviz.io import read_image

# ------------------------------------------------------------------------------------- layers


def layer_table(
    context: RunContext, names: Sequence[str], pooling: str | None
) -> dict[str, dict[str, Any]]:
    """``{backbone: {"style": [...], "content": [...]}}`` for settings.json."""
    table = {}
    for name in names:
        style, content = style_preset(context.backbone(name, pooling))
        table[name] = {"style": style, "content": content}
    return table


def style_settings_of(
    settings: Settings, prior: Prior, content_weight: float | None = None
) -> tasks.StyleSettings:
    """The :class:`~paramviz.tasks.StyleSettings` a cell optimises with (as the CLI would)."""
    return tasks.StyleSettings(
        style_weight=settings["style_weight"],
        content_weight=settings["content_weight"] if content_weight is None else content_weight,
        style_loss=settings["style_loss"],
        smoothing=prior.smoothing,
    )


# ------------------------------------------------------------------------------------- render


@dataclasses.dataclass(frozen=True)
class StyleCell:
    """One style transfer (``content_picture`` None: texture synthesis).

    ``content_net`` None: the style network also carries the content loss. ``style_layers``
    None: the settings' layer table; ``content_weight`` None: the settings'. ``calibrate``: also
    measure the group's calibration pictures (``other_picture`` stands in for a texture's
    missing content).
    """

    style_net: str
    style_picture: str
    prior: str
    optimizer: str
    seed: int
    content_picture: str | None = None
    content_net: str | None = None
    style_layers: tuple[str, ...] | None = None
    content_weight: float | None = None
    calibrate: bool = False
    other_picture: str | None = None

    @classmethod
    def from_cell(cls, cell: Cell, **overrides: Any) -> StyleCell:
        """The job of a cell whose spec names its pictures (and, optionally, its networks)."""
        spec = cell.spec
        job = cls(
            style_net=spec.get("style_net", cell.backbone),
            content_net=spec.get("content_net"),
            style_picture=spec["style"],
            content_picture=spec.get("content"),
            prior=cell.prior,
            optimizer=cell.optimizer,
            seed=cell.seed,
            content_weight=spec.get("content_weight"),
            calibrate=bool(spec.get("calibrate", False)),
            other_picture=spec.get("other"),
        )
        return dataclasses.replace(job, **overrides)


@dataclasses.dataclass(frozen=True)
class StyleBudget:
    """Picture size, optimiser steps and number of content/style pairs of a style experiment."""

    size: int
    adam_steps: int
    lbfgs_steps: int
    pairs: int


STYLE_BUDGETS = {
    "imagenet": StyleBudget(size=256, adam_steps=300, lbfgs_steps=100, pairs=3),
    "small": StyleBudget(size=96, adam_steps=150, lbfgs_steps=30, pairs=1),
    "testbed": StyleBudget(size=128, adam_steps=300, lbfgs_steps=150, pairs=3),
    "real": StyleBudget(size=128, adam_steps=300, lbfgs_steps=100, pairs=3),
}
"""``imagenet``: Gatys/Nakano-like sizes and step counts (L-BFGS converges in 100-300 steps in
neural-style's and the PyTorch tutorial's published runs); ``small``: what a 2-core CPU renders
for the whole grid in minutes (the texture nets were trained on 32 px crops, so 96 px already
spans three of their receptive fields); ``testbed``: the test bed's protocol floor (128 px, Adam
300 or L-BFGS 150 steps, 3 pairs); ``real``: the same at the twins' training size, with the
L-BFGS steps the whole comparison's hour allows."""
QUICK_STYLE_BUDGET = StyleBudget(size=32, adam_steps=3, lbfgs_steps=2, pairs=1)
CONTENT_WEIGHT = 1.0


def style_budget(context: RunContext) -> StyleBudget:
    return QUICK_STYLE_BUDGET if context.quick else STYLE_BUDGETS[context.backbone_set.name]


def picture_pairs(context: RunContext) -> list[list[str]]:
    """The budget's first content/style pairs."""
    return [list(pair) for pair in CONTENT_STYLE_PAIRS[: style_budget(context).pairs]]


def style_settings(context: RunContext) -> Settings:
    """Size, steps and loss settings shared by the style experiments."""
    budget = style_budget(context)
    return {
        "weights_set": context.backbone_set.name,
        "quick": context.quick,
        "seed": context.options.seed,
        "size": budget.size,
        "steps": {"adam": budget.adam_steps, "lbfgs": budget.lbfgs_steps},
        "learning_rate": LEARNING_RATE,
        "style_weight": 1.0,
        "content_weight": CONTENT_WEIGHT,
        "style_loss": "l1",
        "content_loss": "mse",
        "loss_normalisation": "style layer l: L1(G_l - G_l(style)) / mean|G_l(style)|; content "
        "layer l: MSE(F_l - F_l(content)) / mean(F_l(content)^2)",
        "pooling": "avg",
        "judges": judges.describe(context.backbone_set),
    }


def run_style_job(context: RunContext, settings: Settings, job: StyleCell) -> CellOutput:
    """Render one style transfer or texture through the command line's pipeline
    (:func:`paramviz.tasks.prepare_style`: its checks, memory budget and fixed-size handling)
    and let the judges measure the picture."""
    from paramviz import render

    size, pooling, table = settings["size"], settings["pooling"], settings["layers"]
    style_net = context.backbone(job.style_net, pooling)
    layers = list(job.style_layers or table[job.style_net]["style"])
    style_image = context.picture(job.style_picture, size)
    inputs = {"style": job.style_picture}
    content_image, content_net = None, None
    content_name = job.content_net or job.style_net
    content_layers: list[str] = []
    if job.content_picture is not None:
        content_image = context.picture(job.content_picture, size)
        inputs = {"content": job.content_picture, **inputs}
        content_layers = list(table[content_name]["content"])
        content_net = context.backbone(content_name, pooling)
    prior = prior_of(settings, job.prior)
    render_settings = tasks.RenderSettings(
        param=prior.param,
        decorrelate=prior.decorrelate,
        transforms=prior.transforms,
        steps=settings["steps"][job.optimizer],
        optimizer=job.optimizer,
        lr=settings["learning_rate"],
        seed=job.seed,
        progress=context.options.progress,
    )
    style = dataclasses.replace(
        style_settings_of(settings, prior, job.content_weight),
        style_layers=tuple(layers),
        content_layers=tuple(content_layers),
    )
    prepared = tasks.prepare_style(
        style_net, tasks.Stage(style_image, content_image), render_settings, style, content_net
    )
    from_content = settings["init"] == "content" and content_image is not None
    init = start_picture(content_image, settings.get("init_noise", 0.0), job.seed)
    start = image_param(prior, job.seed, 1, size, init if from_content else None)
    result = tasks.run_render(prepared.plan, start, render_settings)
    prior_transform = render.resolve_transforms(prior.transforms)
    picture = result.image[0]
    periods = metrics.stride_periods(style_net, layers, size)
    values = judges.judge_picture(
        context,
        picture,
        style=style_image,
        content=content_image,
        compared=job.style_net,
        periods=periods,
        transform=None if prior.deterministic else prior_transform,
    )
    details = {
        "style_net": job.style_net,
        "content_net": content_name if content_image is not None else None,
        "style_layers": layers,
        "content_layers": content_layers,
        "checkerboard_periods": list(periods),
        "final_loss": result.final_loss,
        "terms": result.terms,
        "steps_run": result.steps_run,
        "stopped_reason": result.stopped_reason,
    }
    if job.calibrate:
        other = context.picture(job.other_picture, size) if job.other_picture else content_image
        group = (job.content_picture, job.style_picture, job.other_picture, size, job.seed)
        details["calibration"] = context.calibration(
            group,
            lambda: judges.calibration_metrics(
                context, content_image, style_image, other, job.seed
            ),
        )
    return CellOutput(picture, values, inputs, None, details)


def start_picture(content: np.ndarray | None, noise: float, seed: int) -> np.ndarray | None:
    """The content picture as a batch of 1, plus seeded Gaussian noise of ``noise`` (so that
    seeds differ for routes that draw nothing at random); None without content."""
    if content is None:
        return None
    if noise:
        content = calibration.with_noise(content, seed, noise)
    return content[None]


SHEET = "sheet"
SHEET_SETS = ("real",)
"""Weights sets whose style experiments end with shuffled, unlabelled sheets (key in details)."""


def wants_sheets(context: RunContext) -> bool:
    """Whether this run's style experiments end with sheets (the ``sheets`` setting)."""
    return context.backbone_set.name in SHEET_SETS


def sheet_cell(group: str, seed: int) -> Cell:
    """The cell that tiles ``group``'s finished pictures into one unlabelled sheet."""
    from paramviz.experiments.runner import cell_id

    return Cell(cell_id(SHEET, group), SHEET, "", "", "", seed, {"stage": SHEET, "group": group})


def unlabelled_sheet(
    folder: Path, entries: Sequence[tuple[dict[str, str], str]], seed: int, group: str, columns: int
) -> CellOutput:
    """The pictures of finished cells (``entries``: their key, their cell id) in a random order
    seeded by ``seed`` and ``group`` (another order for every group), numbered only; the key
    that unshuffles them is in the details."""
    from paramviz.experiments.runner import cell_paths
    from paramviz.outputs import contact_sheet

    order = np.random.default_rng([seed, zlib.crc32(group.encode())]).permutation(len(entries))
    pictures = [read_image(cell_paths(folder, entries[i][1])[0]) for i in order]
    labels = [f"#{n + 1}" for n in range(len(order))]
    key = [{"tile": labels[n]} | entries[i][0] for n, i in enumerate(order)]
    return CellOutput(
        contact_sheet(np.stack(pictures), labels, columns), {}, {}, None, {"key": key}
    )


# ------------------------------------------------------------------------------------ metrics


STYLE_COLUMNS = (
    "style_distance",
    "style_trunk",
    "content_distance",
    "content_trunk",
    "checkerboard_colour",
    "checkerboard_local",
    "high_frequency_colour",
    "checkerboard",
    "high_frequency_ratio",
    "spectrum_slope",
)
"""Columns every style table has (judges.py); other judges' columns follow where measured."""


def calibration_rows(records: Sequence[CellRecord]) -> list[dict[str, Any]]:
    """Means over the groups of the calibration pictures' metrics, one row per kind
    (:mod:`paramviz.experiments.calibration`; :func:`paramviz.experiments.calibration.check` says
    whether they rank right)."""
    found = calibrations(records)
    rows = []
    for kind in calibration.KINDS:
        members = [groups[kind] for groups in found.values() if kind in groups]
        names = dict.fromkeys(name for member in members for name in member)
        row = {"backbone": calibration.CALIBRATION, "prior": kind, "optimizer": ""}
        row |= {"cells": len(members)}
        rows.append(row | {name: _mean([m.get(name) for m in members]) for name in names})
    return rows


def calibrations(records: Sequence[CellRecord]) -> dict[str, dict[str, dict[str, float]]]:
    """``{group: {kind: metrics}}`` of the cells that measured their group's calibration."""
    return {r.group: r.details["calibration"] for r in records if "calibration" in r.details}


def metric_names(records: Sequence[CellRecord]) -> list[str]:
    """Every metric the records hold, in order of first appearance."""
    return list(dict.fromkeys(name for record in records for name in record.metrics))


def _mean(values: Sequence[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return float(np.mean(numbers)) if numbers else None


def mean_rows(
    records: Sequence[CellRecord], keys: Sequence[str], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per distinct ``keys`` combination: the mean of each metric over its cells."""
    groups: dict[tuple, list[CellRecord]] = {}
    for record in records:
        groups.setdefault(tuple(getattr(record, key) for key in keys), []).append(record)
    rows = []
    for values, members in groups.items():
        row = dict(zip(keys, values, strict=True)) | {"cells": len(members)}
        for column in columns:
            numbers = [m.metrics.get(column) for m in members]
            numbers = [n for n in numbers if n is not None]
            row[column] = float(np.mean(numbers)) if numbers else None
        rows.append(row)
    return rows
