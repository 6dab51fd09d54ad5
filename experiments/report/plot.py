"""The R(f) plot: one line per backbone over layer index, drawn as inline SVG.

Python maps the data into the drawing area (:class:`Frame`); ``plot.svg.j2`` lays out the axes,
lines, markers and legend. No plotting library is needed and nothing is fetched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from paramviz.experiments.records import ExperimentRecord
from paramviz.experiments.report.templating import fmt, is_number, render

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")

Points = Sequence[tuple[str, float | None]]


def r_series(record: ExperimentRecord) -> dict[str, list[tuple[str, float | None]]]:
    """(layer, R) per backbone in row order, the layer index being the position in that order.

    Rows without a backbone belong to the experiment's only backbone (single-layer-style); rows
    at several eps make one line per backbone and eps; a non-finite R keeps its layer's place
    but is ``None`` (the table shows it, the plot cannot)."""
    backbones = list(record.backbones)
    default = backbones[0] if len(backbones) == 1 else "R"
    rows = [row for row in record.rows if "layer" in row and "R" in row]
    several_eps = len({fmt(row.get("eps")) for row in rows}) > 1
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


@dataclass(frozen=True)
class Frame:
    """Plot geometry: data ranges mapped into the drawing area of the SVG, with room left for the
    tick labels (left, below) and the legend (right)."""

    width: int = 640
    height: int = 340
    left: int = 56
    right: int = 150
    top: int = 16
    bottom: int = 70
    x_max: int = 1
    y_lo: float = 0.0
    y_hi: float = 1.0

    @property
    def area_right(self) -> int:
        """Where the drawing area ends and the legend begins."""
        return self.width - self.right

    @property
    def area_bottom(self) -> int:
        """The x axis."""
        return self.height - self.bottom

    def x(self, index: float) -> float:
        """A layer index's position (a single layer sits in the middle)."""
        span = self.area_right - self.left
        return self.left + span * (index / self.x_max if self.x_max else 0.5)

    def y(self, value: float) -> float:
        """An R value's height, ``y_hi`` at the top."""
        span = self.area_bottom - self.top
        return self.top + span * (1 - (value - self.y_lo) / (self.y_hi - self.y_lo))


@dataclass(frozen=True)
class Tick:
    """A tick mark: its position along the axis and its label."""

    at: float
    label: str


@dataclass(frozen=True)
class Marker:
    """A drawn point; its tooltip gives the exact value."""

    x: float
    y: float
    layer: str
    value: float


@dataclass(frozen=True)
class Line:
    """One series: a polyline through its markers, in its palette colour."""

    name: str
    colour: str
    markers: list[Marker]


def r_plot(series: Mapping[str, Points]) -> Markup:
    """R(f) over layer index, one polyline per series, with axes, ticks and a legend.

    The x ticks are named after the layers when every series has the same ones, else numbered."""
    values = [value for points in series.values() for _, _, value in drawn(points)]
    ticks = nice_ticks(min(0.0, *values), max(values))
    longest = max(len(points) for points in series.values())
    frame = Frame(x_max=longest - 1, y_lo=ticks[0], y_hi=ticks[-1])
    layers = {tuple(layer for layer, _ in points) for points in series.values()}
    names = list(next(iter(layers))) if len(layers) == 1 else [str(i) for i in range(longest)]
    lines = [
        Line(
            name,
            PALETTE[index % len(PALETTE)],
            [Marker(frame.x(i), frame.y(value), layer, value) for i, layer, value in drawn(points)],
        )
        for index, (name, points) in enumerate(series.items())
    ]
    return render(
        "plot.svg.j2",
        frame=frame,
        y_ticks=[Tick(frame.y(tick), f"{tick:g}") for tick in ticks],
        x_ticks=[Tick(frame.x(index), name) for index, name in enumerate(names)],
        lines=lines,
    )
