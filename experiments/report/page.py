"""The page: view data built from the loaded run folder, then rendered through the templates.

The functions here decide what the reader sees (which cells form a grid, which pairs get a
slider, which columns a table has); the templates only lay that out, and escape every value.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from markupsafe import Markup

from paramviz.experiments.records import CellRecord, ExperimentRecord
from paramviz.experiments.report.load import Experiment, Images, Run, as_run, load_run
from paramviz.experiments.report.plot import r_plot, r_series
from paramviz.experiments.report.templating import fmt, render, static_text
from paramviz.io import atomic_path

CELL_COLUMNS = ("id", "group", "backbone", "prior", "optimizer")
RUN_FACTS = ("paramviz_version", "weights_set", "quick", "started_at", "finished_at")

T = TypeVar("T")
K = TypeVar("K")


def group_by(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    """Items by key, keys in order of first appearance (the runner's order is the display order)."""
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


# ---------------------------------------------------------------- cells and their metrics


def column_of(cell: CellRecord) -> str:
    """A grid column: the prior and optimizer, the factors the experiments vary per backbone."""
    return " · ".join(part for part in (cell.prior, cell.optimizer) if part) or "—"


def backbone_of(cell: CellRecord) -> str:
    """A grid row."""
    return cell.backbone or "—"


def metric(cell: CellRecord, name: str) -> float | None:
    """A cell's metric as the page shows it: ``None`` (blank) if the cell has no such metric.

    The record keeps a non-finite metric as ``None``; it is NaN here, so the page says ``nan``
    and sorts it last, rather than looking as if it were never measured."""
    if name not in cell.metrics:
        return None
    value = cell.metrics[name]
    return math.nan if value is None else value


def metric_columns(record: ExperimentRecord) -> list[str]:
    """Metric names: the declared ``columns`` in their order, then any other metric a cell has."""
    found = (name for cell in record.cells for name in cell.metrics)
    return list(dict.fromkeys([*record.columns, *found]))


@dataclass(frozen=True)
class Cell:
    """A cell record with where its picture lives on the page and what its caption says."""

    record: CellRecord
    dom_id: str
    uri: str | None
    caption: list[str]
    hover: str | None

    @property
    def name(self) -> str:
        """How alt texts and sliders name a cell: by its grid row and column."""
        return f"{backbone_of(self.record)}, {column_of(self.record)}"


GridRow = tuple[str, list[list[Cell]]]  # a backbone, and per grid column the cells in that slot


def page_cell(record: CellRecord, dom_id: str, uri: str | None, metrics: Sequence[str]) -> Cell:
    """The caption shows the first two of ``metrics`` and the labels; hovering shows every
    metric the cell has."""
    caption = [
        f"{name} {fmt(metric(record, name))}" for name in metrics[:2] if name in record.metrics
    ]
    if record.labels:
        caption.append(", ".join(record.labels[:3]))
    hover = "; ".join(f"{name} = {fmt(metric(record, name))}" for name in record.metrics)
    return Cell(record, dom_id, uri, caption, hover or None)


def cell_dom_id(experiment: str, cell: CellRecord, index: int) -> str:
    """A page-unique element id for a cell's picture (cell ids repeat across experiments)."""
    safe = "".join(ch if ch.isalnum() else "-" for ch in f"{experiment}-{cell.id}")
    return f"cell-{index}-{safe}"


# ---------------------------------------------------------------- grids and sliders


@dataclass(frozen=True)
class Input:
    """A content or style picture a group was made from."""

    label: str
    uri: str | None


@dataclass(frozen=True)
class Comparison:
    """A before/after slider: ``left`` is revealed over ``right`` up to the handle."""

    left: Cell
    right: Cell
    what: str

    @property
    def label(self) -> str:
        """The range input's accessible name."""
        return f"{self.what}: {self.left.name} (left) vs {self.right.name} (right)"


@dataclass(frozen=True)
class Group:
    """One group of an experiment's cells: its grid beside its inputs, then its sliders."""

    title: str
    inputs: list[Input]
    columns: list[str]
    rows: list[GridRow]
    comparisons: list[Comparison]


def inputs_of(cells: Sequence[Cell], base: Path, images: Images) -> list[Input]:
    """The input pictures of a group, each once although every cell names them."""
    used = dict.fromkeys(
        (role, path) for cell in cells for role, path in cell.record.inputs.items()
    )
    return [Input(f"{role}: {Path(path).stem}", images.uri(base, path)) for role, path in used]


def grid_rows(cells: Sequence[Cell], columns: Sequence[str]) -> list[GridRow]:
    """Rows = backbone in the order the cells come; a slot holds several cells when seeds repeat."""
    slots = group_by(cells, lambda c: (backbone_of(c.record), column_of(c.record)))
    backbones = dict.fromkeys(backbone_of(c.record) for c in cells)
    return [(b, [slots.get((b, column), []) for column in columns]) for b in backbones]


def pairs(cells: Sequence[Cell]) -> list[Comparison]:
    """Pairs that differ in one factor: each backbone against the first at the same prior (the
    standard-vs-robust question), and each prior against the first on the same backbone (the
    pixel-vs-Fourier question). Cells without a picture cannot be compared and are left out."""
    shown = [c for c in cells if c.uri is not None]
    found = []
    for axis, same, differ in (
        ("backbone", column_of, backbone_of),
        ("prior", backbone_of, column_of),
    ):
        for fixed, members in group_by(shown, lambda c, f=same: f(c.record)).items():
            firsts = [cs[0] for cs in group_by(members, lambda c, f=differ: f(c.record)).values()]
            found += [Comparison(firsts[0], other, f"{axis} at {fixed}") for other in firsts[1:]]
    return found


def groups(experiment: Experiment, images: Images, start: int) -> list[Group]:
    """All groups of an experiment's cells; ``start`` keeps element ids unique on the page."""
    metrics = metric_columns(experiment.record)
    cells = [
        page_cell(
            record,
            cell_dom_id(experiment.name, record, start + i),
            images.uri(experiment.folder, record.image),
            metrics,
        )
        for i, record in enumerate(experiment.record.cells)
    ]
    found = []
    for title, members in group_by(cells, lambda c: c.record.group).items():
        columns = list(dict.fromkeys(column_of(c.record) for c in members))
        found.append(
            Group(
                title,
                inputs_of(members, experiment.folder, images),
                columns,
                grid_rows(members, columns),
                pairs(members),
            )
        )
    return found


# ---------------------------------------------------------------- tables


@dataclass(frozen=True)
class Table:
    """A sortable table: its headers sort it on click, numbers as numbers (see ``data-v``)."""

    caption: str
    headers: list[str]
    rows: list[list[Any]]


def cells_table(record: ExperimentRecord) -> Table:
    """Every cell's identity and metrics, one row each."""
    columns = metric_columns(record)
    rows = [
        [
            *(getattr(cell, key) for key in CELL_COLUMNS),
            *(metric(cell, name) for name in columns),
            cell.seconds,
            cell.seed,
        ]
        for cell in record.cells
    ]
    headers = [*CELL_COLUMNS, *columns, "seconds", "seed"]
    return Table("metrics per cell (click a header to sort)", headers, rows)


def rows_table(record: ExperimentRecord) -> Table:
    """The experiment's extra rows (R(f) per backbone and layer) with every key they use."""
    headers = list(dict.fromkeys(key for row in record.rows for key in row))
    rows = [[row.get(header) for header in headers] for row in record.rows]
    return Table("per layer (click a header to sort)", headers, rows)


# ---------------------------------------------------------------- the page


@dataclass(frozen=True)
class Section:
    """Everything about one experiment, in the order a reader checks a claim."""

    name: str
    title: str
    record: ExperimentRecord
    stand_ins: bool
    groups: list[Group]
    cells_table: Table | None
    plot: Markup | None
    rows_table: Table | None
    took: str
    settings: str | None


def section(experiment: Experiment, images: Images, start: int) -> Section:
    """An experiment's section. Its time and settings are folded away at the end: needed to
    reproduce, not to read. A time of 0 s is not shown: it means none was recorded."""
    record = experiment.record
    series = r_series(record)
    settings = experiment.settings
    return Section(
        name=experiment.name,
        title=record.title or experiment.name,
        record=record,
        stand_ins=any(network.stand_in for network in record.backbones.values()),
        groups=groups(experiment, images, start),
        cells_table=cells_table(record) if record.cells else None,
        plot=r_plot(series) if series else None,
        rows_table=rows_table(record) if record.rows else None,
        took=f"took {fmt(record.seconds)} s. " if record.seconds > 0 else "",
        settings=None if settings is None else json.dumps(settings, indent=2, sort_keys=True),
    )


def sections(run: Run) -> list[Section]:
    """Every experiment's section; cell picture ids are numbered across the whole page."""
    images = Images(run.folder)
    found, start = [], 0
    for experiment in run.experiments:
        found.append(section(experiment, images, start))
        start += len(experiment.record.cells)
    return found


def render_report(run_dir: Run | str | os.PathLike) -> str:
    """The whole page as a string (raises ``UserError`` if ``run_dir`` is not a run)."""
    run = as_run(run_dir)
    page = render(
        "page.html.j2",
        folder_name=run.folder.resolve().name,
        facts={key: getattr(run.record, key) for key in RUN_FACTS},
        quick=run.record.quick,
        sections=sections(run),
        skipped=run.skipped,
        css=static_text("report.css"),
        js=static_text("report.js"),
    )
    return str(page)


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the page (default ``RUN_DIR/report.html``) atomically, and the Markdown summary
    beside the run (``RUN_DIR/summary/``, :mod:`.summary`); returns the page's path."""
    from paramviz.experiments.report.summary import write_summary

    run = load_run(run_dir)  # read once, for the summary and the page
    write_summary(run)
    page = render_report(run)
    path = Path(out) if out is not None else run.folder / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
