"""Running experiments into a run folder: one cell at a time, resumable, with exact records.

An experiment is a list of *cells* (one picture each: a style transfer, a contact sheet, an attack
sheet). The runner writes, per experiment, the settings it ran with, each finished cell (PNG, then
its JSON record, atomically and last), and a ``metrics.json`` that gathers the records. A cell
whose record exists is finished: running again skips it, so an interrupted run resumes where it
stopped. Changing the settings of an existing experiment folder is refused (its finished cells
would silently mix two settings). The layout, read by ``experiments/report.py``::

    RUN_DIR/run.json                   paramviz_version, weights_set, quick, experiments, times
    RUN_DIR/inputs/<name>.png          the content/style pictures used
    RUN_DIR/<experiment>/settings.json exact settings and seeds
    RUN_DIR/<experiment>/cells/<id>.png, <id>.json
    RUN_DIR/<experiment>/metrics.json  experiment, title, question, columns, cells, rows,
                                       backbones, seconds (+ judge, notes, complete)

Metric values that are not finite are written as ``null``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from experiments import backbone_sets
from experiments.backbone_sets import BackboneSet
from paramviz.errors import UserError
from paramviz.io import atomic_path, read_image, save_png

ALL = "all"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


# ------------------------------------------------------------------------------------ values


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Run-wide choices beyond the weights set. ``None`` robustness values take the set's
    defaults (see :mod:`experiments.layer_robustness`)."""

    seed: int = 0
    robustness_eps: float | None = None
    robustness_steps: int | None = None
    robustness_step_size: float | None = None
    progress: bool = True


@dataclasses.dataclass(frozen=True)
class Cell:
    """One picture to make. ``spec`` holds what is particular to the experiment (pictures,
    units, layer, networks), as JSON data."""

    id: str
    group: str
    backbone: str
    prior: str
    optimizer: str
    seed: int
    spec: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class CellOutput:
    """What a cell produced: its picture, metrics, the input pictures by role, tile labels and
    anything else worth keeping (``details``: losses, stop reason, per-tile values)."""

    picture: np.ndarray
    metrics: dict[str, float]
    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    labels: list[str] | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


Settings = dict[str, Any]


def no_rows(settings: Settings, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Experiments without a table."""
    return []


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A published comparison as functions: its settings, its cells and how to make one.

    ``settings(context)`` returns JSON data (everything that determines the results),
    ``plan(settings)`` the cells, ``run_cell(context, settings, cell)`` one cell's output, and
    ``rows(settings, records)`` an optional summary table.
    """

    name: str
    title: str
    question: str
    columns: tuple[str, ...]
    settings: Callable[[RunContext], Settings]
    plan: Callable[[Settings], list[Cell]]
    run_cell: Callable[[RunContext, Settings, Cell], CellOutput]
    rows: Callable[[Settings, Sequence[Mapping[str, Any]]], list[dict[str, Any]]] = no_rows


class RunContext:
    """What every cell can use: the run folder, the backbone set (loaded lazily, cached), the
    judge and the input pictures (written once to ``inputs/``)."""

    def __init__(self, run_dir: Path, backbone_set: BackboneSet, options: RunOptions):
        self.run_dir = Path(run_dir)
        self.backbone_set = backbone_set
        self.options = options
        self._networks: dict[tuple[str, str | None], Any] = {}

    @property
    def quick(self) -> bool:
        return self.backbone_set.quick

    def backbone(self, name: str, pooling: str | None = None):
        """The set member ``name`` (``pooling="avg"`` swaps a VGG's max pools, Gatys et al.)."""
        key = (name, backbone_sets.pooling_option(self.backbone_set.member(name).arch, pooling))
        if key not in self._networks:
            member = self.backbone_set.member(name)
            self._networks[key] = backbone_sets.load_member(member, key[1])
        return self._networks[key]

    def judge(self):
        """The network that scores style and content distances."""
        key = ("judge:" + self.backbone_set.judge.name, None)
        if key not in self._networks:
            self._networks[key] = backbone_sets.load_member(self.backbone_set.judge)
        return self._networks[key]

    def picture(self, name: str, size: int) -> np.ndarray:
        """Input picture ``name`` at ``size`` px, exactly as saved in ``inputs/`` (8-bit)."""
        from experiments.grid import load_picture

        path = self.run_dir / "inputs" / f"{name}.png"
        if not path.is_file():
            save_png(path, load_picture(name, size))
        image = read_image(path)
        if image.shape[:2] != (size, size):
            raise UserError(
                f"{path} is {image.shape[1]}x{image.shape[0]} px but this run needs {size}x{size}: "
                "it belongs to a run with other sizes; use another output folder"
            )
        return image


def input_reference(name: str) -> str:
    """An input picture's path relative to an experiment folder."""
    return f"../inputs/{name}.png"


def cell_id(*parts: Any) -> str:
    """A file-name-safe id from its parts (``chelsea+gravel__resnet50__pixel__adam``)."""
    return "__".join(_UNSAFE.sub("-", str(part)).strip("-") for part in parts)


# --------------------------------------------------------------------------------- registry


def registry() -> dict[str, Experiment]:
    """Every experiment by name, in the order ``all`` runs them (R(f) before single-layer
    style, which reuses its values)."""
    from experiments import (
        content_vs_style_net,
        layer_robustness,
        neurons,
        single_layer_style,
        style_grid,
    )

    ordered = (
        style_grid.STYLE_GRID,
        style_grid.TEXTURE_GRID,
        neurons.NEURONS,
        content_vs_style_net.CONTENT_VS_STYLE_NET,
        layer_robustness.LAYER_ROBUSTNESS,
        single_layer_style.SINGLE_LAYER_STYLE,
    )
    return {experiment.name: experiment for experiment in ordered}


def select(names: Sequence[str]) -> list[Experiment]:
    """The experiments called ``names`` (``all`` = every one), in registry order."""
    known = registry()
    wanted = list(known) if ALL in names else list(dict.fromkeys(names))
    if unknown := [name for name in wanted if name not in known]:
        raise UserError(
            f"unknown experiment {unknown[0]!r}; known: {', '.join(known)} (or {ALL!r})"
        )
    return [experiment for name, experiment in known.items() if name in wanted]


# ----------------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one experiment run did: cells computed now, cells reused, wall seconds."""

    experiment: str
    computed: int
    reused: int
    seconds: float
    metrics_path: Path


def run_experiments(
    names: Sequence[str],
    run_dir: str | Path,
    weights_set: str = "small",
    *,
    quick: bool = False,
    options: RunOptions | None = None,
    compile_cache: Path | None = None,
) -> list[Outcome]:
    """Run the named experiments into ``run_dir`` (resuming what is there) and return outcomes.

    ``compile_cache``: a folder to keep compiled programs in (see :func:`enable_compile_cache`),
    switched on only once the weights are known to be there.
    """
    options = options or RunOptions()
    experiments = select(names)
    run_dir = Path(run_dir)
    backbone_set = backbone_sets.resolve(weights_set, quick, options.progress)
    print(backbone_sets.summary(backbone_set), flush=True)
    if compile_cache is not None:
        enable_compile_cache(compile_cache)
    started = begin_run(run_dir, weights_set, quick, [e.name for e in experiments])
    context = RunContext(run_dir, backbone_set, options)
    outcomes = [run_experiment(context, experiment) for experiment in experiments]
    write_run_record(run_dir, {**started, "finished_at": now()})
    return outcomes


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def begin_run(run_dir: Path, weights_set: str, quick: bool, names: list[str]) -> dict[str, Any]:
    """Write ``run.json`` for a (re)started run; an existing one must have the same set and mode.

    The experiment list is the union of those run before and now, so one folder can be filled
    by several invocations.
    """
    import paramviz

    path = run_dir / "run.json"
    previous = read_json(path) if path.is_file() else None
    if previous is not None:
        for key, value in (("weights_set", weights_set), ("quick", quick)):
            if previous.get(key) != value:
                raise UserError(
                    f"{run_dir} holds a run with {key}={previous.get(key)!r}, not {value!r}; "
                    "use another output folder"
                )
    earlier = previous["experiments"] if previous else []
    record = {
        "paramviz_version": paramviz.__version__,
        "weights_set": weights_set,
        "quick": quick,
        "experiments": [name for name in registry() if name in {*earlier, *names}],
        "started_at": previous["started_at"] if previous else now(),
        "finished_at": None,
    }
    write_run_record(run_dir, record)
    return record


def write_run_record(run_dir: Path, record: Mapping[str, Any]) -> None:
    write_json(run_dir / "run.json", record)


def run_experiment(context: RunContext, experiment: Experiment) -> Outcome:
    """Make every unfinished cell of ``experiment`` and (re)write its ``metrics.json``."""
    from tqdm.auto import tqdm

    clock = time.perf_counter()
    folder = context.run_dir / experiment.name
    settings = as_json_data(experiment.settings(context))
    check_settings(folder / "settings.json", settings)
    cells = experiment.plan(settings)
    check_unique_ids(experiment.name, cells)
    records, computed = [], 0
    bar = tqdm(cells, desc=experiment.name, unit="cell", disable=not context.options.progress)
    for cell in bar:
        bar.set_postfix_str(cell.id[-60:])
        record = finished_record(folder, cell)
        if record is None:
            record = make_cell(context, experiment, settings, cell, folder)
            computed += 1
        records.append(record)
        write_metrics(context, experiment, settings, records, complete=False)
    path = write_metrics(context, experiment, settings, records, complete=True)
    elapsed = time.perf_counter() - clock
    return Outcome(experiment.name, computed, len(cells) - computed, elapsed, path)


def check_settings(path: Path, settings: Settings) -> None:
    """Write ``settings.json``, or check that an existing one matches (resume)."""
    if path.is_file():
        previous = read_json(path)
        if previous != settings:
            changed = sorted(
                key for key in {*previous, *settings} if previous.get(key) != settings.get(key)
            )
            raise UserError(
                f"{path.parent} was run with other settings (changed: {', '.join(changed)}); "
                f"use another output folder, or delete {path.parent} to run it again"
            )
        return
    write_json(path, settings)


def check_unique_ids(name: str, cells: Sequence[Cell]) -> None:
    ids = [cell.id for cell in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"experiment {name} plans duplicate cell ids")


def finished_record(folder: Path, cell: Cell) -> dict[str, Any] | None:
    """The cell's record if it finished (its JSON exists and its picture too), else None."""
    path = folder / "cells" / f"{cell.id}.json"
    if not path.is_file() or not (folder / "cells" / f"{cell.id}.png").is_file():
        return None
    try:
        return read_json(path)
    except UserError:
        return None  # a damaged record: make the cell again


def make_cell(
    context: RunContext, experiment: Experiment, settings: Settings, cell: Cell, folder: Path
) -> dict[str, Any]:
    """Run one cell; write its picture, then its record (the record marks it finished)."""
    clock = time.perf_counter()
    try:
        output = experiment.run_cell(context, settings, cell)
    except UserError as err:
        raise UserError(f"{experiment.name}, cell {cell.id}: {err}") from None
    seconds = time.perf_counter() - clock
    image = f"cells/{cell.id}.png"
    save_png(folder / image, output.picture)
    record = {
        "id": cell.id,
        "experiment": experiment.name,
        "group": cell.group,
        "backbone": cell.backbone,
        "prior": cell.prior,
        "optimizer": cell.optimizer,
        "image": image,
        "inputs": {role: input_reference(name) for role, name in output.inputs.items()},
        "labels": list(output.labels) if output.labels is not None else None,
        "metrics": {name: finite_or_none(value) for name, value in output.metrics.items()},
        "seconds": round(seconds, 3),
        "seed": cell.seed,
        "spec": dict(cell.spec),
        "details": output.details,
    }
    record = as_json_data(record)
    write_json(folder / "cells" / f"{cell.id}.json", record)
    return record


def write_metrics(
    context: RunContext,
    experiment: Experiment,
    settings: Settings,
    records: Sequence[Mapping[str, Any]],
    *,
    complete: bool,
) -> Path:
    """``metrics.json``: the records so far, the summary rows and the networks involved."""
    backbone_set = context.backbone_set
    used = set(settings.get("backbones", backbone_set.names)) | {
        record["backbone"] for record in records
    }
    judge = backbone_set.judge
    data = {
        "experiment": experiment.name,
        "title": experiment.title,
        "question": experiment.question,
        "columns": list(experiment.columns),
        "cells": list(records),
        "rows": experiment.rows(settings, records) if complete else [],
        "backbones": {
            member.name: backbone_sets.describe(member)
            for member in backbone_set.members
            if member.name in used
        },
        "seconds": round(sum(record["seconds"] for record in records), 3),
        "judge": {
            "name": judge.name,
            "layers": list(backbone_set.judge_layers),
            **backbone_sets.describe(judge),
        },
        "notes": list(backbone_set.notes) + list(settings.get("notes", [])),
        "weights_set": backbone_set.name,
        "quick": backbone_set.quick,
        "complete": complete,
    }
    path = context.run_dir / experiment.name / "metrics.json"
    write_json(path, as_json_data(data))
    return path


# ------------------------------------------------------------------------------------- files


def finite_or_none(value: Any) -> float | None:
    """A metric as a float, or None when it is not finite (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def as_json_data(value: Any) -> Any:
    """``value`` as plain JSON data (tuples -> lists, numpy scalars -> numbers, NaN -> None)."""

    def convert(item: Any) -> Any:
        if isinstance(item, Path):
            return str(item)
        if isinstance(item, np.integer):
            return int(item)
        if isinstance(item, np.floating | float):
            return finite_or_none(item)
        if isinstance(item, np.ndarray):
            return [convert(v) for v in item.tolist()]
        if isinstance(item, Mapping):
            return {str(k): convert(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [convert(v) for v in item]
        return item

    return json.loads(json.dumps(convert(value), allow_nan=False))


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (readers never see half a file)."""
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read {path}: {err}") from None


FAST_COMPILE_FLAG = "--xla_backend_optimization_level=0"


def prefer_fast_compilation() -> None:
    """Ask XLA for unoptimised, fast-compiling programs (for quick runs).

    A quick run is compile-bound: its pictures are 32 px and take a few steps, so compiling is
    nearly all of its time, and without LLVM's optimisations programs compile about 4x faster
    (and run slower, which costs little here). Acts through ``XLA_FLAGS``, so it must run before
    jax starts its backend; an optimisation level the user already set is kept.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE_FLAG}".strip()


def enable_compile_cache(folder: Path) -> None:
    """Keep XLA programs on disk: the cells of a grid differ only in their arrays (weights,
    targets), so a program compiled for one backbone is reused by its twin and by every other
    picture pair, and a resumed run compiles nothing twice. Process-wide: for the CLI."""
    import jax

    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
