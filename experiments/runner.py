"""Running experiments into a run folder: one cell at a time, resumable, with exact records.

An experiment (:mod:`paramviz.experiments.registry`) is a list of *cells* (one picture each: a style
transfer, a contact sheet, an attack sheet). The runner writes, per experiment, the settings it
ran with, each finished cell (PNG, then its record, atomically and last), and a ``metrics.json``
that gathers the records; :mod:`paramviz.experiments.records` states the layout. A cell whose record
exists is finished: running again skips it, so an interrupted run resumes where it stopped.
Changing the settings of an existing experiment folder is refused (its finished cells would
silently mix two settings).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import time
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from paramviz import progress
from paramviz.errors import UserError
from paramviz.experiments import backbone_sets
from paramviz.experiments.backbone_sets import BackboneSet
from paramviz.experiments.pictures import load_picture
from paramviz.experiments.records import (
    CELLS_DIR,
    INPUTS_DIR,
    METRICS_FILE,
    RUN_FILE,
    SETTINGS_FILE,
    CellRecord,
    ExperimentRecord,
    RunRecord,
)
from paramviz.experiments.registry import (
    Cell,
    Experiment,
    RunContext,
    RunOptions,
    Settings,
    experiments,
    select,
)
from paramviz.io import read_image, read_json, save_png, to_json_data, write_json
from paramviz.version import __version__

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class CachedRunContext:
    """The :class:`~paramviz.experiments.registry.RunContext` of a run folder: networks are
    loaded once, lazily, and calibrations computed once per run."""

    def __init__(self, run_dir: Path, backbone_set: BackboneSet, options: RunOptions):
        self.run_dir = Path(run_dir)
        self.backbone_set = backbone_set
        self.options = options
        self._networks: dict[tuple[str, str | None], Any] = {}
        self._calibrations: dict[Hashable, dict[str, dict[str, float]]] = {}

    @property
    def quick(self) -> bool:
        return self.backbone_set.quick

    def backbone(self, name: str, pooling: str | None = None):
        """The set member ``name`` (``pooling="avg"`` swaps a VGG's max pools, Gatys et al.)."""
        member = self.backbone_set.member(name)
        key = (name, backbone_sets.pooling_option(member.arch, pooling))
        if key not in self._networks:
            self._networks[key] = backbone_sets.load_member(member, key[1])
        return self._networks[key]

    def judge(self):
        """The network that scores style and content distances."""
        key = ("judge:" + self.backbone_set.judge.name, None)
        if key not in self._networks:
            self._networks[key] = backbone_sets.load_member(self.backbone_set.judge)
        return self._networks[key]

    def calibration(
        self, group: Hashable, compute: Callable[[], dict[str, dict[str, float]]]
    ) -> dict[str, dict[str, float]]:
        """The calibration metrics of ``group`` (its pictures, size and seed): experiments of a
        run share groups, and every judge scores the same calibration pictures, so once per run."""
        if group not in self._calibrations:
            self._calibrations[group] = compute()
        return self._calibrations[group]

    def picture(self, name: str, size: int) -> np.ndarray:
        """Input picture ``name`` at ``size`` px, exactly as saved in ``inputs/`` (8-bit)."""
        path = self.run_dir / INPUTS_DIR / f"{name}.png"
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
    return f"../{INPUTS_DIR}/{name}.png"


def cell_id(*parts: Any) -> str:
    """A file-name-safe id from its parts (``chelsea+gravel__resnet50__pixel__adam``)."""
    return "__".join(_UNSAFE.sub("-", str(part)).strip("-") for part in parts)


# ----------------------------------------------------------------------------------- running


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one experiment run did: cells computed now, finished cells reused, cells left to
    other shards, wall seconds."""

    experiment: str
    computed: int
    reused: int
    skipped: int
    seconds: float
    metrics_path: Path


def run_experiments(
    names: Sequence[str],
    run_dir: str | Path,
    weights_set: str = "small",
    *,
    quick: bool = False,
    options: RunOptions | None = None,
) -> list[Outcome]:
    """Run the named experiments into ``run_dir`` (resuming what is there) and return outcomes.

    Cells of one structure share a compiled program (see :mod:`paramviz.render`); the command
    line also keeps programs on disk, so a resumed run compiles nothing twice.
    """
    options = options or RunOptions()
    chosen = select(names)
    run_dir = Path(run_dir)
    check_run_record(run_dir, weights_set, quick)  # before the backbones are trained or loaded
    backbone_set = backbone_sets.resolve(weights_set, quick, options.progress)
    print(backbone_sets.summary(backbone_set), flush=True)
    context = CachedRunContext(run_dir, backbone_set, options)
    settings = {e.name: to_json_data(e.settings(context), "settings") for e in chosen}
    for name, values in settings.items():  # a refused rerun writes nothing, run.json included
        compare_settings(run_dir / name / SETTINGS_FILE, values)
    started = begin_run(run_dir, weights_set, quick, list(settings))
    outcomes = [run_experiment(context, e, settings[e.name]) for e in chosen]
    with run_lock(run_dir):
        write_json(run_dir / RUN_FILE, dataclasses.replace(started, finished_at=now()).to_json())
    return outcomes


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def begin_run(run_dir: Path, weights_set: str, quick: bool, names: list[str]) -> RunRecord:
    """Write ``run.json`` for a (re)started run; an existing one must have the same set and mode.

    The experiment list is the union of those run before and now, so one folder can be filled
    by several invocations.
    """
    path = run_dir / RUN_FILE
    with run_lock(run_dir):  # shards of one run may start together
        previous = check_run_record(run_dir, weights_set, quick)
        earlier = previous.experiments if previous else []
        record = RunRecord(
            paramviz_version=__version__,
            weights_set=weights_set,
            quick=quick,
            experiments=[name for name in experiments() if name in {*earlier, *names}],
            started_at=previous.started_at if previous else now(),
        )
        write_json(path, record.to_json())
    return record


def check_run_record(run_dir: Path, weights_set: str, quick: bool) -> RunRecord | None:
    """The folder's ``run.json`` if any; ``UserError`` if it was made with another weights set
    or mode (checked before any work, and again under the lock when ``run.json`` is written)."""
    path = run_dir / RUN_FILE
    previous = RunRecord.from_json(read_json(path)) if path.is_file() else None
    if previous is not None:
        for key, value in (("weights_set", weights_set), ("quick", quick)):
            if getattr(previous, key) != value:
                raise UserError(
                    f"{run_dir} holds a run with {key}={getattr(previous, key)!r}, not "
                    f"{value!r}; use another output folder"
                )
    return previous


def run_lock(run_dir: Path) -> FileLock:
    """The lock that serialises changes to ``run.json`` between processes sharing a run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(run_dir / f".{RUN_FILE}.lock")


def run_experiment(context: RunContext, experiment: Experiment, settings: Settings) -> Outcome:
    """Make every unfinished cell of ``experiment`` with its JSON ``settings`` and (re)write its
    ``metrics.json``."""
    clock = time.perf_counter()
    folder = context.run_dir / experiment.name
    check_settings(folder / SETTINGS_FILE, settings)
    cells = experiment.plan(settings)
    check_unique_ids(experiment.name, cells)
    records, computed, shard = [], 0, context.options.shard
    bar = progress.bar(cells, enabled=context.options.progress, desc=experiment.name, unit="cell")
    for position, cell in enumerate(bar):
        bar.set_postfix_str(cell.id[-60:])
        record = finished_record(folder, cell)
        if record is None and (shard is None or shard.owns(position)):
            record = make_cell(context, experiment, settings, cell, folder)
            computed += 1
        if record is not None:
            records.append(record)
        write_metrics(context, experiment, settings, records, complete=False)
    complete = len(records) == len(cells)
    path = write_metrics(context, experiment, settings, records, complete=complete)
    elapsed = time.perf_counter() - clock
    reused = len(records) - computed
    return Outcome(experiment.name, computed, reused, len(cells) - len(records), elapsed, path)


def check_settings(path: Path, settings: Settings) -> None:
    """Write ``settings.json``, or check that an existing one matches (resume)."""
    if not compare_settings(path, settings):
        write_json(path, settings)


def compare_settings(path: Path, settings: Settings) -> bool:
    """Whether ``settings.json`` exists; ``UserError`` if it holds other settings."""
    if not path.is_file():
        return False
    previous = read_json(path)
    if previous != settings:
        changed = sorted(
            key for key in {*previous, *settings} if previous.get(key) != settings.get(key)
        )
        raise UserError(
            f"{path.parent} was run with other settings (changed: {', '.join(changed)}); "
            f"use another output folder, or delete {path.parent} to run it again"
        )
    return True


def check_unique_ids(name: str, cells: Sequence[Cell]) -> None:
    ids = [cell.id for cell in cells]
    if len(set(ids)) != len(ids):
        raise ValueError(f"experiment {name} plans duplicate cell ids")


def cell_paths(folder: Path, cell_id_: str) -> tuple[Path, Path]:
    """``(picture, record)`` of a cell."""
    cells = folder / CELLS_DIR
    return cells / f"{cell_id_}.png", cells / f"{cell_id_}.json"


def finished_record(folder: Path, cell: Cell) -> CellRecord | None:
    """The cell's record if it finished (its record exists and its picture too), else None."""
    picture, path = cell_paths(folder, cell.id)
    if not path.is_file() or not picture.is_file():
        return None
    try:
        return CellRecord.from_json(read_json(path))
    except UserError:
        return None  # a damaged record: make the cell again


def make_cell(
    context: RunContext, experiment: Experiment, settings: Settings, cell: Cell, folder: Path
) -> CellRecord:
    """Run one cell; write its picture, then its record (the record marks it finished)."""
    clock = time.perf_counter()
    try:
        output = experiment.run_cell(context, settings, cell)
    except UserError as err:
        raise UserError(f"{experiment.name}, cell {cell.id}: {err}") from None
    seconds = time.perf_counter() - clock
    picture, path = cell_paths(folder, cell.id)
    path.unlink(missing_ok=True)  # a damaged record goes first: a picture alone is unfinished
    save_png(picture, output.picture)
    record = CellRecord(
        id=cell.id,
        experiment=experiment.name,
        group=cell.group,
        backbone=cell.backbone,
        prior=cell.prior,
        optimizer=cell.optimizer,
        image=f"{CELLS_DIR}/{picture.name}",
        inputs={role: input_reference(name) for role, name in output.inputs.items()},
        labels=list(output.labels) if output.labels is not None else None,
        metrics=dict(output.metrics),
        seconds=round(seconds, 3),
        seed=cell.seed,
        spec=dict(cell.spec),
        details=output.details,
    )
    write_json(path, record.to_json())
    return CellRecord.from_json(record.to_json())  # as a resumed run reads it back


def write_metrics(
    context: RunContext,
    experiment: Experiment,
    settings: Settings,
    records: Sequence[CellRecord],
    *,
    complete: bool,
) -> Path:
    """``metrics.json``: the records so far, the summary rows and the networks involved."""
    backbone_set = context.backbone_set
    used = set(settings.get("backbones", backbone_set.names)) | {r.backbone for r in records}
    judge = backbone_set.judge
    data = ExperimentRecord(
        experiment=experiment.name,
        title=experiment.title,
        question=experiment.question,
        columns=list(experiment.columns),
        cells=list(records),
        rows=experiment.rows(settings, records) if complete else [],
        backbones={
            member.name: backbone_sets.describe(member)
            for member in backbone_set.members
            if member.name in used
        },
        seconds=round(sum(record.seconds for record in records), 3),
        judge={
            judge.name: dataclasses.replace(
                backbone_sets.describe(judge), layers=list(backbone_set.judge_layers)
            )
        },
        notes=list(backbone_set.notes) + list(settings.get("notes", [])),
        weights_set=backbone_set.name,
        quick=backbone_set.quick,
        complete=complete,
    )
    return write_json(context.run_dir / experiment.name / METRICS_FILE, data.to_json())


# ------------------------------------------------------------------------------- compilation

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
