"""One self-contained HTML page for a run folder, so the results can be mailed and read offline.

The page is for a sceptical reader: every experiment states the published claim it tests, shows
its pictures in grids (rows = backbone, columns = prior/optimizer) beside the inputs they came
from, lets the reader drag a before/after slider over the pairs that differ in one factor (as in
Nakano's Distill article), and gives the numbers in sortable tables and the R(f) curves in a plot
drawn here as SVG. Nothing is fetched: pictures are base64 data URIs and the CSS/JS are inline.

Only the standard library is used; the runner's folder layout (``run.json``, ``inputs/``,
``<experiment>/metrics.json`` with cell records, ``cells/<id>.png``) is the whole contract, and
anything missing from it is reported on the page and skipped rather than failing the report.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paramviz.errors import UserError
from paramviz.io import atomic_path

MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
# A 1x1 transparent GIF: the static src of slider images, which copy their grid twin's pixels at
# load so each picture is embedded once (the slider needs JS anyway; the grids never do).
PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
CELL_COLUMNS = ("id", "group", "backbone", "prior", "optimizer")


# ---------------------------------------------------------------- reading the run folder


@dataclass(frozen=True)
class Experiment:
    """One experiment folder: its ``metrics.json`` and (optional) ``settings.json``."""

    name: str
    folder: Path
    metrics: Mapping[str, Any]
    settings: Any = None

    @property
    def cells(self) -> list[Mapping[str, Any]]:
        """The cell records that are objects; anything else the runner wrote is ignored."""
        return [c for c in self.metrics.get("cells") or [] if isinstance(c, Mapping)]

    @property
    def rows(self) -> list[Mapping[str, Any]]:
        """Extra table rows (e.g. R(f) per backbone and layer)."""
        return [r for r in self.metrics.get("rows") or [] if isinstance(r, Mapping)]

    @property
    def backbones(self) -> dict[str, Mapping[str, Any]]:
        """Backbone name → its description (arch, weights, sha256, stand_in)."""
        described = mapping(self.metrics.get("backbones")).items()
        return {str(name): mapping(info) for name, info in described}


@dataclass(frozen=True)
class Run:
    """A run folder: ``run.json``, the experiments found, and why the others were skipped."""

    folder: Path
    info: Mapping[str, Any]
    experiments: list[Experiment]
    skipped: dict[str, str] = field(default_factory=dict)


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else empty: a malformed field is shown as absent."""
    return value if isinstance(value, Mapping) else {}


def read_json(path: Path) -> Any:
    """Parse a JSON file; errors are the caller's to judge (fatal for run.json, not elsewhere)."""
    return json.loads(path.read_text(encoding="utf-8"))


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a run folder; a folder without a readable ``run.json`` is not a run (``UserError``)."""
    folder = Path(run_dir)
    run_json = folder / "run.json"
    if not run_json.is_file():
        raise UserError(
            f"{folder} is not a paramviz run folder (no run.json); pass the folder "
            "that `paramviz experiment` wrote"
        )
    try:
        info = read_json(run_json)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {run_json}: {err}") from None
    if not isinstance(info, Mapping):
        raise UserError(f"{run_json} is not a JSON object; is this a paramviz run folder?")
    experiments, skipped = [], {}
    for name in experiment_names(folder, info):
        loaded = load_experiment(folder, name)
        if isinstance(loaded, Experiment):
            experiments.append(loaded)
        else:
            skipped[name] = loaded
    return Run(folder, info, experiments, skipped)


def experiment_names(folder: Path, info: Mapping[str, Any]) -> list[str]:
    """The experiments ``run.json`` lists, or (if it lists none) every folder with metrics."""
    listed = info.get("experiments")
    if isinstance(listed, list) and listed:
        return ordered_unique(str(name) for name in listed)
    return sorted(p.parent.name for p in folder.glob("*/metrics.json"))


def load_experiment(run_folder: Path, name: str) -> Experiment | str:
    """The experiment, or the reason it is skipped (so a half-finished run still reports)."""
    folder = inside(run_folder, run_folder / name)
    if folder is None or not folder.is_dir():
        return "no folder in this run"
    try:
        metrics = read_json(folder / "metrics.json")
    except FileNotFoundError:
        return "no metrics.json (not run, or interrupted)"
    except (OSError, ValueError) as err:
        return f"unreadable metrics.json: {err}"
    if not isinstance(metrics, Mapping):
        return "metrics.json is not a JSON object"
    try:
        settings = read_json(folder / "settings.json")
    except (OSError, ValueError):
        settings = None
    return Experiment(name, folder, metrics, settings)


def inside(root: Path, path: Path) -> Path | None:
    """``path`` resolved, or ``None`` if it leaves ``root``: a report must not embed other files."""
    resolved = path.resolve()
    return resolved if resolved.is_relative_to(root.resolve()) else None


# ---------------------------------------------------------------- small HTML helpers


def esc(value: Any) -> str:
    """Text as HTML; everything from JSON passes through here, so a title cannot inject markup."""
    return html.escape(str(value), quote=True)


def attrs_html(**attrs: Any) -> str:
    """Escaped attributes: ``class_`` → ``class``, ``data_x`` → ``data-x``; ``None``/``False``
    are left out so callers can pass optional attributes unconditionally."""
    parts = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        parts.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return "".join(parts)


def el(tag: str, body: str = "", **attrs: Any) -> str:
    """An element; ``body`` is HTML already (escape text with :func:`esc`)."""
    return f"<{tag}{attrs_html(**attrs)}>{body}</{tag}>"


def void(tag: str, **attrs: Any) -> str:
    """An element without content (``img``, ``input``)."""
    return f"<{tag}{attrs_html(**attrs)}>"


def ordered_unique(values: Iterable[Any]) -> list[Any]:
    """Distinct values in order of first appearance (the runner's order is the display order)."""
    return list(dict.fromkeys(values))


def group_by(items: Iterable[Any], key: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    """Items by key, keys in order of first appearance."""
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def is_number(value: Any) -> bool:
    """A JSON number (booleans are JSON's own type, not numbers to sort or plot)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def fmt(value: Any) -> str:
    """A table value as text: 4 significant digits for floats, JSON for structures."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


# ---------------------------------------------------------------- images


class Images:
    """Data URIs of image files under the run folder, each file read and encoded once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._uris: dict[Path, str | None] = {}

    def uri(self, base: Path, relative: Any) -> str | None:
        """The data URI of ``base/relative``, or ``None`` if missing, unreadable or outside."""
        if not isinstance(relative, str) or not relative:
            return None
        path = inside(self.root, base / relative)
        if path is None:
            return None
        if path not in self._uris:
            self._uris[path] = encode(path)
        return self._uris[path]


def encode(path: Path) -> str | None:
    """``data:<mime>;base64,...`` for an image file, or ``None`` if it is not one we can show."""
    mime = MIME_TYPES.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def picture(uri: str | None, alt: str, **attrs: Any) -> str:
    """An embedded image, or a visible 'missing' box so a lost file is noticed, not hidden."""
    if uri is None:
        return el("div", f"missing: {esc(alt)}", class_="missing")
    return void("img", src=uri, alt=alt, **attrs)


# ---------------------------------------------------------------- grids and sliders


def column_of(cell: Mapping[str, Any]) -> str:
    """A grid column: the prior and optimizer, the factors the experiments vary per backbone."""
    parts = [str(cell[k]) for k in ("prior", "optimizer") if cell.get(k) not in (None, "")]
    return " · ".join(parts) or "—"


def backbone_of(cell: Mapping[str, Any]) -> str:
    """A grid row."""
    return str(cell.get("backbone") or "—")


def cell_dom_id(experiment: str, cell: Mapping[str, Any], index: int) -> str:
    """A page-unique element id for a cell's picture (cell ids repeat across experiments)."""
    safe = "".join(ch if ch.isalnum() else "-" for ch in f"{experiment}-{cell.get('id', '')}")
    return f"cell-{index}-{safe}"


@dataclass(frozen=True)
class Cell:
    """A cell record with where its picture lives on the page."""

    record: Mapping[str, Any]
    dom_id: str
    uri: str | None

    @property
    def name(self) -> str:
        return f"{backbone_of(self.record)}, {column_of(self.record)}"


def cell_figure(cell: Cell, columns: Sequence[str]) -> str:
    """One picture in a grid, captioned with its first metrics and labels (all metrics on hover)."""
    metrics = mapping(cell.record.get("metrics"))
    summary = [f"{name} {fmt(metrics[name])}" for name in columns[:2] if name in metrics]
    labels = cell.record.get("labels")
    if isinstance(labels, list) and labels:
        summary.append(", ".join(map(str, labels[:3])))
    hover = "; ".join(f"{k} = {fmt(v)}" for k, v in metrics.items()) or None
    img = picture(
        cell.uri,
        f"{cell.record.get('id', '')}: {cell.name}",
        id=cell.dom_id,
        class_="cell",
        title=hover,
    )
    caption = el("figcaption", "<br>".join(esc(s) for s in summary)) if summary else ""
    return el("figure", img + caption)


def inputs_aside(cells: Sequence[Cell], base: Path, images: Images) -> str:
    """The input pictures a group of cells was made from, shown once beside its grid."""
    inputs: dict[tuple[str, str], None] = {}
    for cell in cells:
        for role, relative in mapping(cell.record.get("inputs")).items():
            inputs[(str(role), str(relative))] = None
    if not inputs:
        return ""
    figures = [
        el(
            "figure",
            picture(images.uri(base, rel), f"{role}: {Path(rel).stem}", class_="input")
            + el("figcaption", esc(f"{role}: {Path(rel).stem}")),
        )
        for role, rel in inputs
    ]
    return el("aside", el("h4", "inputs") + "".join(figures), class_="inputs")


def grid_table(cells: Sequence[Cell], columns: Sequence[str]) -> str:
    """Rows = backbone, columns = prior/optimizer; cells sharing a slot (seeds) sit together."""
    backbones = ordered_unique(backbone_of(c.record) for c in cells)
    priors = ordered_unique(column_of(c.record) for c in cells)
    slots = group_by(cells, lambda c: (backbone_of(c.record), column_of(c.record)))
    head = el("tr", el("th", "backbone") + "".join(el("th", esc(p), scope="col") for p in priors))
    body = "".join(
        el(
            "tr",
            el("th", esc(b), scope="row")
            + "".join(
                el("td", "".join(cell_figure(c, columns) for c in slots.get((b, p), [])))
                for p in priors
            ),
        )
        for b in backbones
    )
    return el("table", el("thead", head) + el("tbody", body), class_="grid")


def pairs(cells: Sequence[Cell]) -> list[tuple[Cell, Cell, str]]:
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
            firsts = group_by(members, lambda c, f=differ: f(c.record))
            keys = list(firsts)
            for other in keys[1:]:
                found.append((firsts[keys[0]][0], firsts[other][0], f"{axis} at {fixed}"))
    return found


def slider(left: Cell, right: Cell, what: str) -> str:
    """A before/after comparison: ``left`` is revealed over ``right`` up to the handle."""
    label = f"{what}: {left.name} (left) vs {right.name} (right)"
    frame = el(
        "div",
        picture(PLACEHOLDER, right.name, class_="after", data_copy=right.dom_id)
        + picture(PLACEHOLDER, left.name, class_="before", data_copy=left.dom_id)
        + el("div", class_="handle"),
        class_="frame",
    )
    control = void("input", type="range", min=0, max=100, value=50, aria_label=label)
    caption = el(
        "figcaption",
        el("b", esc(what)) + "<br>" + f"◀ {esc(left.name)} &nbsp;|&nbsp; {esc(right.name)} ▶",
    )
    return el("figure", frame + control + caption, class_="compare")


def group_section(
    experiment: Experiment,
    group: str,
    cells: Sequence[Cell],
    images: Images,
    columns: Sequence[str],
) -> str:
    """One group of an experiment: its grid beside its inputs, then its comparison sliders."""
    title = el("h3", esc(group)) if group else ""
    sliders = "".join(slider(*pair) for pair in pairs(cells))
    compare = el("div", sliders, class_="sliders") if sliders else ""
    layout = el(
        "div",
        inputs_aside(cells, experiment.folder, images) + grid_table(cells, columns),
        class_="group",
    )
    return title + layout + compare


def grids(experiment: Experiment, images: Images, start: int) -> str:
    """All groups of an experiment's cells; ``start`` keeps element ids unique on the page."""
    cells = [
        Cell(
            record,
            cell_dom_id(experiment.name, record, start + i),
            images.uri(experiment.folder, record.get("image")),
        )
        for i, record in enumerate(experiment.cells)
    ]
    columns = metric_columns(experiment)
    by_group = group_by(cells, lambda c: str(c.record.get("group") or ""))
    return "".join(group_section(experiment, g, cs, images, columns) for g, cs in by_group.items())


# ---------------------------------------------------------------- tables


def metric_columns(experiment: Experiment) -> list[str]:
    """Metric names: ``columns`` in its order, then any other metric a cell has."""
    declared = [str(c) for c in experiment.metrics.get("columns") or []]
    found = (name for cell in experiment.cells for name in mapping(cell.get("metrics")))
    return ordered_unique([*declared, *found])


def sortable_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], caption: str) -> str:
    """A table whose headers sort it on click; numbers carry their value so they sort as numbers
    (and NaN/missing sort last) whatever their displayed rounding."""
    head = el("tr", "".join(el("th", esc(h), scope="col", tabindex=0) for h in headers))
    body = "".join(el("tr", "".join(value_cell(v) for v in row)) for row in rows)
    return el(
        "table",
        el("caption", esc(caption)) + el("thead", head) + el("tbody", body),
        class_="sortable",
    )


def value_cell(value: Any) -> str:
    """A ``td``; finite numbers get ``data-v`` (the sort key) and right alignment."""
    if is_number(value):
        finite = math.isfinite(value)
        return el("td", esc(fmt(value)), class_="num", data_v=repr(float(value)) if finite else "")
    return el("td", esc(fmt(value)))


def cells_table(experiment: Experiment) -> str:
    """Every cell's identity and metrics, one row each."""
    columns = metric_columns(experiment)
    headers = [*CELL_COLUMNS, *columns, "seconds", "seed"]
    rows = [
        [
            *(cell.get(k) for k in CELL_COLUMNS),
            *(mapping(cell.get("metrics")).get(m) for m in columns),
            cell.get("seconds"),
            cell.get("seed"),
        ]
        for cell in experiment.cells
    ]
    return sortable_table(headers, rows, "metrics per cell (click a header to sort)")


def rows_table(experiment: Experiment) -> str:
    """The experiment's extra rows (R(f) per backbone and layer) with every key they use."""
    headers = ordered_unique(k for row in experiment.rows for k in row)
    rows = [[row.get(h) for h in headers] for row in experiment.rows]
    return sortable_table(headers, rows, "per layer (click a header to sort)")


def backbones_table(experiment: Experiment) -> str:
    """Which weights made the pictures; stand-ins are flagged because they do not test the claim."""
    rows = "".join(
        el(
            "tr",
            el("th", esc(name), scope="row")
            + "".join(el("td", esc(fmt(info.get(k)))) for k in ("arch", "weights"))
            + el("td", esc(str(info.get("sha256") or "")[:12]), class_="mono")
            + (el("td", "stand-in", class_="warn") if info.get("stand_in") else el("td")),
        )
        for name, info in experiment.backbones.items()
    )
    if not rows:
        return ""
    head = el("tr", "".join(el("th", h) for h in ("backbone", "arch", "weights", "sha256", "")))
    return el("table", el("thead", head) + el("tbody", rows), class_="backbones")


# ---------------------------------------------------------------- the R(f) plot


@dataclass(frozen=True)
class Frame:
    """Plot geometry: data ranges mapped into the drawing area of an SVG."""

    width: int = 640
    height: int = 340
    left: int = 56
    right: int = 150
    top: int = 16
    bottom: int = 70
    x_max: int = 1
    y_lo: float = 0.0
    y_hi: float = 1.0

    def x(self, index: float) -> float:
        span = self.width - self.left - self.right
        return self.left + span * (index / self.x_max if self.x_max else 0.5)

    def y(self, value: float) -> float:
        span = self.height - self.top - self.bottom
        return self.top + span * (1 - (value - self.y_lo) / (self.y_hi - self.y_lo))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k steps) covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    steps = math.ceil((hi - first) / step - 1e-9)
    return [round(first + i * step, 12) for i in range(steps + 1)]


Points = Sequence[tuple[str, float | None]]


def r_series(experiment: Experiment) -> dict[str, list[tuple[str, float | None]]]:
    """(layer, R) per backbone in row order, the layer index being the position in that order.

    Rows without a backbone belong to the experiment's only backbone (single-layer-style); rows
    at several eps make one line per backbone and eps; a non-finite R keeps its layer's place
    but is ``None`` (the table shows it, the plot cannot)."""
    backbones = list(experiment.backbones)
    default = backbones[0] if len(backbones) == 1 else "R"
    rows = [row for row in experiment.rows if "layer" in row and "R" in row]
    several_eps = len(ordered_unique(fmt(row.get("eps")) for row in rows)) > 1
    series: dict[str, list[tuple[str, float | None]]] = {}
    for row in rows:
        name = str(row.get("backbone") or default)
        if several_eps:
            name += f" (eps {fmt(row.get('eps'))})"
        value = row["R"]
        finite = is_number(value) and math.isfinite(value)
        series.setdefault(name, []).append((str(row["layer"]), float(value) if finite else None))
    return {name: points for name, points in series.items() if drawn(points)}


def drawn(points: Points) -> list[tuple[int, str, float]]:
    """(layer index, layer, R) of the points that can be drawn."""
    return [(i, layer, value) for i, (layer, value) in enumerate(points) if value is not None]


def r_plot(series: Mapping[str, Points]) -> str:
    """R(f) over layer index, one polyline per backbone, with axes, ticks and a legend."""
    values = [value for points in series.values() for _, _, value in drawn(points)]
    ticks = nice_ticks(min(0.0, *values), max(values))
    longest = max(len(points) for points in series.values())
    frame = Frame(x_max=longest - 1, y_lo=ticks[0], y_hi=ticks[-1])
    layers = {tuple(layer for layer, _ in points) for points in series.values()}
    names = list(next(iter(layers))) if len(layers) == 1 else [str(i) for i in range(longest)]
    parts = [y_axis(frame, ticks), x_axis(frame, names)]
    for index, (name, points) in enumerate(series.items()):
        parts.append(line(frame, name, points, PALETTE[index % len(PALETTE)]))
    parts.append(legend(frame, list(series)))
    return el(
        "svg",
        "".join(parts),
        class_="plot",
        width=frame.width,
        height=frame.height,
        viewBox=f"0 0 {frame.width} {frame.height}",
        role="img",
        aria_label="R(f) per layer and backbone",
    )


def y_axis(frame: Frame, ticks: Sequence[float]) -> str:
    """The vertical axis with grid lines at the ticks and its 'R(f)' title."""
    x0, x1 = frame.left, frame.width - frame.right
    parts = [
        f'<line x1="{x0}" y1="{frame.top}" x2="{x0}" y2="{frame.y(ticks[0]):.1f}" class="axis"/>'
    ]
    for tick in ticks:
        y = frame.y(tick)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" class="gridline"/>')
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    middle = (frame.top + frame.height - frame.bottom) / 2
    parts.append(
        f'<text x="14" y="{middle:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle:.1f})">R(f)</text>'
    )
    return "".join(parts)


def x_axis(frame: Frame, names: Sequence[str]) -> str:
    """The horizontal axis: one tick per layer index, labelled by layer name when shared."""
    y0 = frame.height - frame.bottom
    parts = [
        f'<line x1="{frame.left}" y1="{y0}" x2="{frame.width - frame.right}" y2="{y0}" '
        'class="axis"/>'
    ]
    labels = []
    for index, name in enumerate(names):
        x = frame.x(index)
        parts.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + 4}" class="axis"/>')
        labels.append(
            f'<text x="{x:.1f}" y="{y0 + 14}" text-anchor="end" '
            f'transform="rotate(-35 {x:.1f} {y0 + 14})">{esc(name)}</text>'
        )
    parts.append(el("g", "".join(labels), class_="xticks"))
    parts.append(
        f'<text x="{frame.x(frame.x_max / 2):.1f}" y="{frame.height - 4}" '
        'text-anchor="middle">layer index</text>'
    )
    return "".join(parts)


def line(frame: Frame, name: str, points: Points, colour: str) -> str:
    """One backbone's curve through its drawable points; markers carry the exact value."""
    xy = [(frame.x(i), frame.y(value), layer, value) for i, layer, value in drawn(points)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in xy)
    markers = "".join(
        el(
            "circle",
            el("title", esc(f"{name} {layer}: R = {value:.4g}")),
            cx=f"{x:.1f}",
            cy=f"{y:.1f}",
            r=3,
            fill=colour,
        )
        for x, y, layer, value in xy
    )
    curve = f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
    return el("g", curve + markers, class_="series", data_backbone=name)


def legend(frame: Frame, names: Sequence[str]) -> str:
    """Swatch and name per backbone, right of the plot area."""
    x = frame.width - frame.right + 12
    return "".join(
        f'<rect x="{x}" y="{frame.top + 18 * i}" width="12" height="12" '
        f'fill="{PALETTE[i % len(PALETTE)]}"/>'
        f'<text x="{x + 18}" y="{frame.top + 18 * i + 10}">{esc(name)}</text>'
        for i, name in enumerate(names)
    )


# ---------------------------------------------------------------- the page


def experiment_section(experiment: Experiment, images: Images, start: int) -> str:
    """Everything about one experiment, in the order a reader checks a claim."""
    metrics = experiment.metrics
    parts = [el("h2", esc(metrics.get("title") or experiment.name))]
    if metrics.get("question"):
        parts.append(
            el("p", el("b", "Claim tested: ") + esc(metrics["question"]), class_="question")
        )
    if any(info.get("stand_in") for info in experiment.backbones.values()):
        parts.append(
            el(
                "p",
                "Some backbones are stand-ins, not the published weights: these "
                "results check the pipeline, not the claim.",
                class_="warn",
            )
        )
    parts.append(backbones_table(experiment))
    if experiment.cells:
        parts += [grids(experiment, images, start), cells_table(experiment)]
    series = r_series(experiment)
    if series:
        parts.append(
            el("figure", r_plot(series) + el("figcaption", "R(f) per layer"), class_="rplot")
        )
    if experiment.rows:
        parts.append(rows_table(experiment))
    parts.append(details(experiment))
    return el("section", "".join(parts), id=f"exp-{experiment.name}")


def details(experiment: Experiment) -> str:
    """Time taken and the settings, folded away: needed to reproduce, not to read."""
    seconds = experiment.metrics.get("seconds")
    took = f"took {fmt(seconds)} s. " if is_number(seconds) else ""
    settings = json.dumps(experiment.settings, indent=2, sort_keys=True, default=str)
    body = el("summary", esc(f"{took}settings")) + el("pre", esc(settings))
    return el("details", body) if experiment.settings is not None else el("p", esc(took))


def run_header(run: Run) -> str:
    """What was run, with what, and when; a quick run is flagged as not for conclusions."""
    info = run.info
    facts = [
        (k, info.get(k))
        for k in ("paramviz_version", "weights_set", "quick", "started_at", "finished_at")
    ]
    table = el(
        "table",
        el(
            "tbody",
            "".join(
                el("tr", el("th", esc(k), scope="row") + el("td", esc(fmt(v)))) for k, v in facts
            ),
        ),
        class_="facts",
    )
    quick = (
        el(
            "p",
            "Quick run: reduced sizes and steps, for checking that everything works.",
            class_="warn",
        )
        if info.get("quick")
        else ""
    )
    links = "".join(
        el("li", el("a", esc(e.metrics.get("title") or e.name), href=f"#exp-{e.name}"))
        for e in run.experiments
    )
    links += "".join(
        el("li", esc(f"{name}: skipped ({why})"), class_="skipped")
        for name, why in run.skipped.items()
    )
    return (
        el("h1", esc(f"paramviz experiments — {run.folder.resolve().name}"))
        + table
        + quick
        + el("nav", el("ul", links))
    )


def render_report(run_dir: str | os.PathLike) -> str:
    """The whole page as a string (raises ``UserError`` if ``run_dir`` is not a run)."""
    run = load_run(run_dir)
    images = Images(run.folder)
    sections, start = [], 0
    for experiment in run.experiments:
        sections.append(experiment_section(experiment, images, start))
        start += len(experiment.cells)
    body = run_header(run) + "".join(sections)
    if not run.experiments:
        body += el("p", "No experiment in this run has results yet.", class_="warn")
    return PAGE.format(
        title=esc(f"paramviz report — {run.folder.resolve().name}"), css=CSS, body=body, js=JS
    )


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write the page (default ``RUN_DIR/report.html``) atomically; returns its path."""
    page = render_report(run_dir)
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
<script>{js}</script>
</body>
</html>
"""

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1200px;
       padding: 0 16px; color: #222; }
h2 { border-top: 2px solid #ccc; padding-top: 18px; margin-top: 36px; }
.question { font-size: 1.05em; background: #f4f6fa; padding: 8px 12px;
            border-left: 4px solid #4a6fa5; }
.warn { color: #8a4b00; background: #fff4e0; padding: 4px 8px; }
.skipped { color: #888; }
.mono { font-family: ui-monospace, monospace; }
table { border-collapse: collapse; margin: 12px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e4e4; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: #555; font-size: 0.9em; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; background: #f2f2f2; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.group { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
aside.inputs { background: #fafafa; padding: 6px; }
aside.inputs h4 { margin: 0 0 4px; }
figure { margin: 2px; display: inline-block; vertical-align: top; }
figcaption { font-size: 0.8em; color: #444; max-width: 160px; }
img.cell, img.input, .missing { width: 160px; height: auto; display: block; }
.missing { height: 80px; background: #eee; color: #a00; font-size: 0.8em; padding: 4px;
           box-sizing: border-box; }
.sliders { display: flex; flex-wrap: wrap; gap: 14px; margin: 8px 0 16px; }
.compare figcaption { max-width: 256px; }
.compare input[type=range] { width: 256px; display: block; }
.frame { position: relative; width: 256px; cursor: ew-resize; touch-action: none; --pos: 50%; }
.frame img { width: 256px; height: auto; display: block; }
.frame img.before { position: absolute; top: 0; left: 0;
                    clip-path: inset(0 calc(100% - var(--pos)) 0 0); }
.frame .handle { position: absolute; top: 0; bottom: 0; left: var(--pos); width: 2px;
                 margin-left: -1px; background: #fff; box-shadow: 0 0 3px #000; }
svg.plot text { font-size: 11px; fill: #333; }
svg.plot .axis { stroke: #333; }
svg.plot .gridline { stroke: #e5e5e5; }
"""

JS = r"""
(function () {
  "use strict";
  // Slider pictures copy their grid twin's pixels, so each picture is embedded once.
  document.querySelectorAll("img[data-copy]").forEach(function (img) {
    var twin = document.getElementById(img.dataset.copy);
    if (twin) { img.src = twin.src; }
  });
  // Before/after sliders: the range input or a drag on the picture moves the reveal.
  document.querySelectorAll("figure.compare").forEach(function (fig) {
    var frame = fig.querySelector(".frame"), range = fig.querySelector("input[type=range]");
    function show(percent) {
      percent = Math.max(0, Math.min(100, percent));
      frame.style.setProperty("--pos", percent + "%");
      range.value = percent;
    }
    range.addEventListener("input", function () { show(Number(range.value)); });
    function drag(event) {
      var box = frame.getBoundingClientRect();
      show(100 * (event.clientX - box.left) / box.width);
    }
    frame.addEventListener("pointerdown", function (event) {
      frame.setPointerCapture(event.pointerId); drag(event);
    });
    frame.addEventListener("pointermove", function (event) {
      if (frame.hasPointerCapture(event.pointerId)) { drag(event); }
    });
  });
  // Sortable tables: numbers (data-v) sort numerically, text naturally, blanks and NaN last.
  function blank(cell) { return cell.dataset.v === "" || cell.textContent === ""; }
  function compare(a, b) {
    if (a.dataset.v !== undefined && b.dataset.v !== undefined) {
      return Number(a.dataset.v) - Number(b.dataset.v);
    }
    return a.textContent.localeCompare(b.textContent, undefined, {numeric: true});
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.querySelectorAll("thead th"), body = table.tBodies[0];
    headers.forEach(function (th, index) {
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (ra, rb) {
          var a = ra.children[index], b = rb.children[index];
          if (blank(a) || blank(b)) { return blank(a) - blank(b); }
          return ascending ? compare(a, b) : compare(b, a);
        });
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });
})();
"""
