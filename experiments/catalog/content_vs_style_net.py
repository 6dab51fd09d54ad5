"""``content-vs-style-net`` (Engstrom et al., Distill 2019): which network matters, the one that
measures content or the one that measures style?

Engstrom et al. fix a standard ResNet-50 for the content loss and vary the style network: the
result depends on the style network, "the content network barely matters". Two groups per
content/style pair test both halves of that claim with one renderer (render's ``backbones=``
lets the content loss read a second network):

* content fixed to a standard network, the style network varies over the set;
* style fixed to the robust twin of that network (the one Nakano found to work), the content
  network varies.

The rows give, per group, the spread (max - min) of the judge's style and content distances: the
claim predicts a large spread when the style network varies and a small one when only the
content network does.
"""

from __future__ import annotations

from paramviz.experiments import priors, style_job
from paramviz.experiments.backbone_sets import BackboneSet
from paramviz.experiments.registry import (
    Cell,
    CellOutput,
    Experiment,
    RunContext,
    Settings,
    register,
)
from paramviz.experiments.runner import cell_id

PRIOR = "fourier+decorrelate"
OPTIMIZER = "adam"
VARIES = ("style", "content")


def fixed_networks(backbone_set: BackboneSet) -> tuple[str, str]:
    """``(content net, style net)``: a standard ResNet (Engstrom et al.) and its robust twin;
    without a ResNet, the first standard network that is no VGG (the real set's Lite0: the
    network style transfer is said to fail with), else the first standard member; and its twin
    (or itself)."""
    members = backbone_set.members
    standard = [m for m in members if m.training == "standard"]
    not_vgg = [m for m in standard if not m.arch.startswith("vgg")]
    resnets = [m for m in standard if m.arch.startswith("resnet")]
    content = (resnets + not_vgg + standard)[0]
    twins = [m for m in members if m.family == content.family and m.training == "robust"]
    style = twins[0] if twins else content
    return content.name, style.name


def settings(context: RunContext) -> Settings:
    names = list(context.backbone_set.names)
    content_net, style_net = fixed_networks(context.backbone_set)
    return style_job.style_settings(context) | {
        "init": "content",
        "backbones": names,
        "layers": style_job.layer_table(context, names, "avg"),
        "priors": priors.prior_settings([PRIOR]),
        "prior": PRIOR,
        "optimizer": OPTIMIZER,
        "pairs": style_job.picture_pairs(context),
        "fixed_content_net": content_net,
        "fixed_style_net": style_net,
        "sheets": style_job.wants_sheets(context),
    }


def plan(settings: Settings) -> list[Cell]:
    """Pair × (content fixed, style net varies | style fixed, content net varies) × backbone."""
    cells = []
    for content, style in settings["pairs"]:
        pair = f"{content}+{style}"
        for varies in VARIES:
            fixed_role = "content" if varies == "style" else "style"
            fixed = settings[f"fixed_{fixed_role}_net"]
            group = f"{pair}|{fixed_role}:{fixed}"
            for backbone in settings["backbones"]:
                networks = {"style_net": backbone, "content_net": fixed}
                if varies == "content":
                    networks = {"style_net": fixed, "content_net": backbone}
                spec = {"content": content, "style": style, "varies": varies, **networks}
                if not cells or not cells[-1].id.startswith(f"{cell_id(pair)}__"):
                    spec["calibrate"] = True  # the pair's first cell measures its calibration
                cells.append(
                    Cell(
                        id=cell_id(pair, f"{varies}-varies", backbone),
                        group=group,
                        backbone=backbone,
                        prior=settings["prior"],
                        optimizer=settings["optimizer"],
                        seed=settings["seed"],
                        spec=spec,
                    )
                )
        if settings["sheets"]:
            cells.append(style_job.sheet_cell(pair, settings["seed"]))
    return cells


def run_cell(context: RunContext, settings: Settings, cell: Cell) -> CellOutput:
    if cell.group == style_job.SHEET:
        pair = cell.spec["group"]
        entries = [
            (
                {"backbone": backbone, "route": f"{varies} network varies"},
                cell_id(pair, f"{varies}-varies", backbone),
            )
            for varies in VARIES
            for backbone in settings["backbones"]
        ]
        folder = context.run_dir / CONTENT_VS_STYLE_NET.name
        return style_job.unlabelled_sheet(
            folder, entries, cell.seed, pair, len(settings["backbones"])
        )
    return style_job.run_style_job(context, settings, style_job.StyleCell.from_cell(cell))


def spread(values: list[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return max(numbers) - min(numbers) if numbers else None


def rows(settings: Settings, records) -> list[dict]:
    """Per group: which network varied and the spread of the judges' distances across it; then
    the calibration rows."""
    groups: dict[str, list] = {}
    for record in records:
        if record.group != style_job.SHEET:
            groups.setdefault(record.group, []).append(record)
    return [
        {
            "group": group,
            "varies": members[0].spec["varies"],
            "cells": len(members),
            "style_distance_spread": spread([m.metrics.get("style_distance") for m in members]),
            "content_distance_spread": spread([m.metrics.get("content_distance") for m in members]),
        }
        for group, members in groups.items()
    ] + style_job.calibration_rows(records)


CONTENT_VS_STYLE_NET_CLAIM = (
    "Fixed content network, varying style network (and the reverse)",
    "Engstrom et al. (2019): with a standard ResNet-50 fixed for content, the result "
    "depends on the style network; the content network barely matters.",
)
CONTENT_VS_STYLE_NET = register(
    Experiment("content-vs-style-net", *CONTENT_VS_STYLE_NET_CLAIM, style_job.STYLE_COLUMNS,
               settings, plan, run_cell, rows, order=40)
)  # fmt: skip
