"""``style-grid`` (Nakano 2019) and ``texture-grid``: every backbone × prior × optimizer.

Nakano: style transfer with a standard ResNet-50 fails where VGG-19 works, and a robust ResNet-50
works about as well as VGG-19. Lucid's answer to the same failure is a prior (a decorrelated
Fourier image and transforms). The grid asks whether the two fixes are the same fix: each cell
is one backbone under one prior and one optimizer, on several content/style pairs
(``style-grid``, initialised with the content picture as Nakano did) or from noise
(``texture-grid``, where Nakano saw the robust ResNet's remaining artefacts most clearly).
"""

from __future__ import annotations

from paramviz.experiments import priors, style_job
from paramviz.experiments.registry import (
    Cell,
    CellOutput,
    Experiment,
    RunContext,
    Settings,
    register,
)
from paramviz.experiments.runner import cell_id

SUMMARY_KEYS = ("backbone", "prior", "optimizer")
SET_PRIORS = {"real": ("pixel", "fourier+decorrelate+transforms", "pixel+smooth-tensor")}
"""Sets whose grid keeps to the headline's routes (every prior of every network would not fit
the real set's hour): pixels, Lucid's priors, SWAG's smoothing."""


def _grid_settings(context: RunContext, init: str) -> Settings:
    names = list(context.backbone_set.names)
    pairs = style_job.picture_pairs(context)
    names_of_priors = list(SET_PRIORS.get(context.backbone_set.name, priors.PRIORS))
    optimizers = priors.QUICK_OPTIMIZERS if context.quick else priors.OPTIMIZERS
    settings = style_job.style_settings(context) | {
        "init": init,
        "backbones": names,
        "layers": style_job.layer_table(context, names, "avg"),
        "priors": priors.prior_settings(names_of_priors),
        "runs": priors.prior_optimizer_runs(names_of_priors, optimizers),
        "sheets": style_job.wants_sheets(context),
        "notes": [
            "L-BFGS is not run with random transforms: its line search needs a deterministic "
            "objective (paramviz.render.render)"
        ],
    }
    if init == "content":
        return settings | {"pairs": pairs}
    return settings | {"styles": [[style, content] for content, style in pairs]}


def style_grid_settings(context: RunContext) -> Settings:
    return _grid_settings(context, "content")


def texture_grid_settings(context: RunContext) -> Settings:
    return _grid_settings(context, "noise")


def _pictures(settings: Settings) -> list[dict[str, str | None]]:
    """Per group: its content (None for textures) and style, and for textures ``other``, the
    picture that stands in for the content in the calibration rows."""
    if "pairs" in settings:
        return [{"content": content, "style": style} for content, style in settings["pairs"]]
    return [
        {"content": None, "style": style, "other": other} for style, other in settings["styles"]
    ]


def plan(settings: Settings) -> list[Cell]:
    """Group (picture pair) × backbone × [prior, optimizer]; each group's first cell also
    measures the group's calibration pictures."""
    cells = []
    for pictures in _pictures(settings):
        content, style = pictures["content"], pictures["style"]
        group = f"{content}+{style}" if content else style
        for backbone in settings["backbones"]:
            for prior, optimizer in settings["runs"]:
                first = not cells or cells[-1].group != group
                cells.append(
                    Cell(
                        id=cell_id(group, backbone, prior, optimizer),
                        group=group,
                        backbone=backbone,
                        prior=prior,
                        optimizer=optimizer,
                        seed=settings["seed"],
                        spec=pictures | ({"calibrate": True} if first else {}),
                    )
                )
        if settings["sheets"]:
            cells.append(style_job.sheet_cell(group, settings["seed"]))
    return cells


def run_cell(context: RunContext, settings: Settings, cell: Cell) -> CellOutput:
    if cell.group == style_job.SHEET:
        return grid_sheet(context, settings, cell)
    return style_job.run_style_job(context, settings, style_job.StyleCell.from_cell(cell))


def grid_sheet(context: RunContext, settings: Settings, cell: Cell) -> CellOutput:
    """One group's pictures, shuffled and numbered only."""
    group = cell.spec["group"]
    entries = [
        (
            {"backbone": backbone, "route": f"{prior} {optimizer}"},
            cell_id(group, backbone, prior, optimizer),
        )
        for backbone in settings["backbones"]
        for prior, optimizer in settings["runs"]
    ]
    name = "style-grid" if "pairs" in settings else "texture-grid"
    folder = context.run_dir / name
    return style_job.unlabelled_sheet(folder, entries, cell.seed, group, len(settings["runs"]))


def style_rows(settings: Settings, records) -> list[dict]:
    """Means over the picture pairs, per backbone × prior × optimizer, then the calibration."""
    records = [r for r in records if r.group != style_job.SHEET]
    names = style_job.metric_names(records)
    return style_job.mean_rows(records, SUMMARY_KEYS, names) + style_job.calibration_rows(records)


TEXTURE_COLUMNS = tuple(c for c in style_job.STYLE_COLUMNS if not c.startswith("content_"))

STYLE_GRID_CLAIM = (
    "Style transfer: backbone × prior × optimizer",
    "Nakano (2019): style transfer fails with a standard ResNet-50 and works with a "
    "robust one about as well as with VGG-19; do Lucid's priors (decorrelated Fourier image, "
    "transforms) fix the standard network the same way?",
)


def _grid(name: str, claim: tuple[str, str], columns, settings, rows, order: int) -> Experiment:
    """The style and texture grids share their plan and their cells; they differ in the rest."""
    return register(Experiment(name, *claim, columns, settings, plan, run_cell, rows, order=order))


STYLE_GRID = _grid(
    "style-grid", STYLE_GRID_CLAIM, style_job.STYLE_COLUMNS, style_grid_settings, style_rows, 10
)

TEXTURE_GRID_CLAIM = (
    "Texture synthesis from noise: backbone × prior × optimizer",
    "Nakano (2019): from Gaussian noise the robust ResNet-50's textures show more "
    "artefacts than VGG-19's, the standard ResNet-50 fails; which priors remove the artefacts?",
)
TEXTURE_GRID = _grid(
    "texture-grid", TEXTURE_GRID_CLAIM, TEXTURE_COLUMNS, texture_grid_settings, style_rows, 20
)
