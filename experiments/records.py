"""The run folder's files as typed records, stated once: the runner writes, the report reads.

::

    RUN_DIR/run.json                   RunRecord
    RUN_DIR/inputs/<name>.png          the content/style pictures used
    RUN_DIR/<experiment>/settings.json exact settings and seeds (free-form JSON)
    RUN_DIR/<experiment>/cells/<id>.png, <id>.json   the picture, then its CellRecord (last)
    RUN_DIR/<experiment>/metrics.json  ExperimentRecord (its cells, rows, networks, judge, notes)

``to_json`` gives plain JSON data (non-finite numbers as ``null``). ``from_json`` is lenient: a
field that is missing or of the wrong type takes its default, so a damaged or older folder still
reports what it can.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from paramviz.io import to_json_data

RUN_FILE = "run.json"
SETTINGS_FILE = "settings.json"
METRICS_FILE = "metrics.json"
CELLS_DIR = "cells"
INPUTS_DIR = "inputs"


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _text(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _number(value: Any) -> float | None:
    """A JSON number as a float (booleans are not numbers); anything else, NaN and Inf: None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


class _Record:
    """``to_json`` for the dataclasses below."""

    def to_json(self) -> dict[str, Any]:
        return to_json_data(dataclasses.asdict(self), type(self).__name__)


@dataclasses.dataclass(frozen=True)
class RunRecord(_Record):
    """``run.json``: what was run, with which weights set, and when."""

    paramviz_version: str
    weights_set: str
    quick: bool
    experiments: list[str]
    started_at: str
    finished_at: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> RunRecord:
        data = _mapping(data)
        return cls(
            paramviz_version=_text(data.get("paramviz_version")),
            weights_set=_text(data.get("weights_set")),
            quick=data.get("quick") is True,
            experiments=_strings(data.get("experiments")),
            started_at=_text(data.get("started_at")),
            finished_at=data.get("finished_at")
            if isinstance(data.get("finished_at"), str)
            else None,
        )


@dataclasses.dataclass(frozen=True)
class CellRecord(_Record):
    """``cells/<id>.json``: one finished cell (its existence marks the cell finished)."""

    id: str
    experiment: str
    group: str
    backbone: str
    prior: str
    optimizer: str
    image: str
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    labels: list[str] | None = None
    metrics: dict[str, float | None] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    seed: int = 0
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> CellRecord:
        data = _mapping(data)
        labels = data.get("labels")
        seed = data.get("seed")
        return cls(
            **{key: _text(data.get(key)) for key in ("id", "experiment", "group", "backbone")},
            prior=_text(data.get("prior")),
            optimizer=_text(data.get("optimizer")),
            image=_text(data.get("image")),
            inputs={
                str(k): v for k, v in _mapping(data.get("inputs")).items() if isinstance(v, str)
            },
            labels=_strings(labels) if isinstance(labels, list) else None,
            metrics={str(k): _number(v) for k, v in _mapping(data.get("metrics")).items()},
            seconds=_number(data.get("seconds")) or 0.0,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
            spec=_mapping(data.get("spec")),
            details=_mapping(data.get("details")),
        )


@dataclasses.dataclass(frozen=True)
class NetworkRecord(_Record):
    """A network an experiment used (or the judge): where its weights came from."""

    arch: str
    weights: str
    sha256: str | None = None
    stand_in: bool = False
    training: str = ""
    family: str = ""
    layers: list[str] = dataclasses.field(default_factory=list)  # the judge's

    @classmethod
    def from_json(cls, data: Any) -> NetworkRecord:
        data = _mapping(data)
        sha256 = data.get("sha256")
        return cls(
            arch=_text(data.get("arch")),
            weights=_text(data.get("weights")),
            sha256=sha256 if isinstance(sha256, str) else None,
            stand_in=data.get("stand_in") is True,
            training=_text(data.get("training")),
            family=_text(data.get("family")),
            layers=_strings(data.get("layers")),
        )


@dataclasses.dataclass(frozen=True)
class ExperimentRecord(_Record):
    """``metrics.json``: an experiment's claim, its cells so far, its summary rows and networks."""

    experiment: str
    title: str = ""
    question: str = ""
    columns: list[str] = dataclasses.field(default_factory=list)
    cells: list[CellRecord] = dataclasses.field(default_factory=list)
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    backbones: dict[str, NetworkRecord] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    judge: dict[str, NetworkRecord] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    weights_set: str = ""
    quick: bool = False
    complete: bool = False

    @classmethod
    def from_json(cls, data: Any) -> ExperimentRecord:
        data = _mapping(data)
        cells = data.get("cells") if isinstance(data.get("cells"), list) else []
        rows = data.get("rows") if isinstance(data.get("rows"), list) else []
        return cls(
            experiment=_text(data.get("experiment")),
            title=_text(data.get("title")),
            question=_text(data.get("question")),
            columns=_strings(data.get("columns")),
            cells=[CellRecord.from_json(cell) for cell in cells if isinstance(cell, Mapping)],
            rows=[dict(row) for row in rows if isinstance(row, Mapping)],
            backbones=_networks(data.get("backbones")),
            seconds=_number(data.get("seconds")) or 0.0,
            judge=_networks(data.get("judge")),
            notes=_strings(data.get("notes")),
            weights_set=_text(data.get("weights_set")),
            quick=data.get("quick") is True,
            complete=data.get("complete") is True,
        )


def _networks(value: Any) -> dict[str, NetworkRecord]:
    return {
        str(name): NetworkRecord.from_json(info)
        for name, info in _mapping(value).items()
        if isinstance(info, Mapping)
    }
