"""``single-layer-style``: style transfer from one style layer at a time, beside that layer's R(f).

Engstrom et al. (Distill 2019) show single-layer style transfers: VGG-16 works from an early conv
layer (R ≈ 14 %) and fails from a late one (R ≈ 60 %), while the robust ResNet-50 works from every
stage (R ≈ 5-7 %), and conclude that *robust layers transfer style*. Each cell renders one layer's
style transfer (content layer unchanged) as they did, after the PyTorch tutorial's recipe: pixels,
L-BFGS, content initialisation. Its metrics carry the layer's R(f), taken from this run's
``layer-robustness`` cell when that used the same attack, else measured with the same settings
(:func:`layer_r`; the experiment declares that it reads ``layer-robustness``). The rows pair R
with the judge's style distance; each row also carries ``R_style_rank_correlation``, Spearman's
correlation over all cells: the claim predicts it positive (a robust layer, small R, gives a small
style distance).
"""

from __future__ import annotations

import numpy as np

from paramviz.experiments import priors, robustness, style_job
from paramviz.experiments.catalog.layer_robustness import attack_settings, measure
from paramviz.experiments.records import CELLS_DIR, SETTINGS_FILE, CellRecord
from paramviz.experiments.registry import (
    Cell,
    CellOutput,
    Experiment,
    RunContext,
    Settings,
    register,
)
from paramviz.experiments.runner import cell_id
from paramviz.io import read_json

PRIOR = "pixel"
OPTIMIZER = "lbfgs"
READS = "layer-robustness"  # its cells hold R(f) of the same layers, measured the same way


def settings(context: RunContext) -> Settings:
    names = list(context.backbone_set.names)
    table = style_job.layer_table(context, names, "avg")
    layers = {name: table[name]["style"] for name in names}
    if context.quick:  # the first and the last style layer
        layers = {name: list(dict.fromkeys([ls[0], ls[-1]])) for name, ls in layers.items()}
    return style_job.style_settings(context) | {
        "init": "content",
        "backbones": names,
        "layers": table,
        "single_layers": layers,
        "priors": priors.prior_settings([PRIOR]),
        "prior": PRIOR,
        "optimizer": priors.QUICK_OPTIMIZERS[0] if context.quick else OPTIMIZER,
        "pair": style_job.picture_pairs(context)[0],
        "robustness": attack_settings(context),
        "sheets": style_job.wants_sheets(context),
    }


def plan(settings: Settings) -> list[Cell]:
    content, style = settings["pair"]
    backbone0 = settings["backbones"][0]
    first = (backbone0, settings["single_layers"][backbone0][0])  # also measures the calibration
    cells = [
        Cell(
            id=cell_id(backbone, layer),
            group=backbone,
            backbone=backbone,
            prior=settings["prior"],
            optimizer=settings["optimizer"],
            seed=settings["seed"],
            spec={"content": content, "style": style, "layer": layer}
            | ({"calibrate": True} if (backbone, layer) == first else {}),
        )
        for backbone in settings["backbones"]
        for layer in settings["single_layers"][backbone]
    ]
    if settings["sheets"]:
        cells.append(style_job.sheet_cell(f"{content}+{style}", settings["seed"]))
    return cells


def run_cell(context: RunContext, settings: Settings, cell: Cell) -> CellOutput:
    if cell.group == style_job.SHEET:
        entries = [
            ({"backbone": backbone, "route": layer}, cell_id(backbone, layer))
            for backbone in settings["backbones"]
            for layer in settings["single_layers"][backbone]
        ]
        folder = context.run_dir / SINGLE_LAYER_STYLE.name
        columns = max(len(layers) for layers in settings["single_layers"].values())
        return style_job.unlabelled_sheet(folder, entries, cell.seed, cell.spec["group"], columns)
    layer = cell.spec["layer"]
    job = style_job.StyleCell.from_cell(cell, style_layers=(layer,))
    output = style_job.run_style_job(context, settings, job)
    r = layer_r(context, settings["robustness"], cell.backbone, layer)
    output.metrics = {"R": r} | output.metrics
    return output


def layer_r(context: RunContext, attack: Settings, backbone: str, layer: str) -> float:
    """R(f) of one layer: the ``layer-robustness`` cell of this run when it was measured with
    the same attack and pictures, else measured now (so both experiments report one number)."""
    folder = context.run_dir / READS
    record_path = folder / CELLS_DIR / f"{cell_id(backbone, layer)}.json"
    if record_path.is_file() and (folder / SETTINGS_FILE).is_file():
        measured = read_json(folder / SETTINGS_FILE)
        if all(measured.get(key) == attack.get(key) for key in robustness.ATTACK_KEYS):
            value = CellRecord.from_json(read_json(record_path)).metrics.get("R")
            if value is not None:
                return value
    return robustness.robustness_ratio(measure(context, backbone, layer, attack))


def rank_correlation(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (no ties expected), None for fewer than 3 points."""
    if len(x) < 3:
        return None
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def rows(settings: Settings, records: list[CellRecord]) -> list[dict]:
    """R beside the style distance per layer, and per backbone their rank correlation."""
    records = [r for r in records if r.group != style_job.SHEET]
    table = [
        {
            "backbone": r.backbone,
            "layer": r.spec["layer"],
            "R": r.metrics.get("R"),
            "style_distance": r.metrics.get("style_distance"),
            "content_distance": r.metrics.get("content_distance"),
        }
        for r in records
    ]
    pairs = [(row["R"], row["style_distance"]) for row in table if None not in row.values()]
    correlation = rank_correlation([p[0] for p in pairs], [p[1] for p in pairs])
    calibration = style_job.calibration_rows(records)
    return [row | {"R_style_rank_correlation": correlation} for row in table] + calibration


SINGLE_LAYER_STYLE_CLAIM = (
    "Style transfer from one layer at a time, beside the layer's R(f)",
    "Engstrom et al. (2019): robust layers (small R(f)) transfer style, non-robust "
    "ones do not: VGG-16 works from early layers only, a robust ResNet-50 from every stage.",
)
SINGLE_LAYER_STYLE = register(
    Experiment("single-layer-style", *SINGLE_LAYER_STYLE_CLAIM, ("R", *style_job.STYLE_COLUMNS),
               settings, plan, run_cell, rows, reads=(READS,), order=60)
)  # fmt: skip
