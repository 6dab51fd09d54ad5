"""Experiments register themselves; the runner orders them from what each declares it reads.

An experiment is one module in :mod:`paramviz.experiments.catalog` that calls :func:`register` with
an :class:`Experiment`. ``reads`` names the experiments whose results it may reuse (single-layer
style reuses layer-robustness's R(f)); :func:`experiments` puts those first, and otherwise keeps
the declared ``order`` (how ``all`` runs them and the report shows them).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from paramviz.errors import UserError

if TYPE_CHECKING:
    from paramviz.backbones import Backbone
    from paramviz.experiments.backbone_sets import BackboneSet

ALL = "all"
Settings = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """Run-wide choices beyond the weights set. ``None`` robustness values take the set's
    defaults (see :mod:`paramviz.experiments.robustness`)."""

    seed: int = 0
    robustness_eps: float | None = None
    robustness_steps: int | None = None
    robustness_step_size: float | None = None
    progress: bool | None = None
    shard: Shard | None = None


@dataclasses.dataclass(frozen=True)
class Shard:
    """Slice ``index`` (1-based) of ``count``: every ``count``-th cell of each experiment's plan,
    starting at the ``index``-th. Slices are disjoint and together cover the plan, so machines
    can share one run folder; finished cells of other slices are reused, missing ones skipped."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise UserError(f"shard {self.index}/{self.count}: need 1 <= K <= N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"``."""
        index, sep, count = text.partition("/")
        if not (sep and index.strip().isdigit() and count.strip().isdigit()):
            raise UserError(f"--shard wants K/N (e.g. 2/8), got {text!r}")
        return cls(int(index), int(count))

    def owns(self, position: int) -> bool:
        return position % self.count == self.index - 1


class RunContext(Protocol):
    """What every cell receives: the run folder, the backbone set (its networks loaded lazily),
    the judge, the run's options and the input pictures (written once to ``inputs/``)."""

    run_dir: Path
    backbone_set: BackboneSet
    options: RunOptions

    @property
    def quick(self) -> bool: ...

    def backbone(self, name: str, pooling: str | None = None) -> Backbone:
        """The set member ``name`` (``pooling="avg"`` swaps a VGG's max pools, Gatys et al.)."""
        ...

    def judge(self) -> Backbone:
        """The network that scores style and content distances."""
        ...

    def calibration(
        self, group: Hashable, compute: Callable[[], dict[str, dict[str, float]]]
    ) -> dict[str, dict[str, float]]:
        """The calibration metrics of ``group``, computed once per run."""
        ...

    def picture(self, name: str, size: int) -> np.ndarray:
        """Input picture ``name`` at ``size`` px, exactly as saved in ``inputs/`` (8-bit)."""
        ...


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


def no_rows(settings: Settings, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Experiments without a table."""
    return []


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A published comparison as functions: its settings, its cells and how to make one.

    ``settings(context)`` returns JSON data (everything that determines the results),
    ``plan(settings)`` the cells, ``run_cell(context, settings, cell)`` one cell's output, and
    ``rows(settings, records)`` an optional summary table. ``reads``: experiments whose results
    its cells may reuse; ``order``: its place among the others; ``in_all``: whether ``all``
    runs it (the reproductions of published comparisons do; a protocol that needs its own
    weights set, like the test bed's ``headline``, is run by name).
    """

    name: str
    title: str
    question: str
    columns: tuple[str, ...]
    settings: Callable[[RunContext], Settings]
    plan: Callable[[Settings], list[Cell]]
    run_cell: Callable[[RunContext, Settings, Cell], CellOutput]
    rows: Callable[[Settings, Sequence[Mapping[str, Any]]], list[dict[str, Any]]] = no_rows
    reads: tuple[str, ...] = ()
    order: int = 100
    in_all: bool = True


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Make ``experiment`` known to ``paramviz experiment`` (call it at module level)."""
    if experiment.name in _REGISTRY and _REGISTRY[experiment.name] is not experiment:
        raise ValueError(f"experiment {experiment.name!r} is already registered")
    _REGISTRY[experiment.name] = experiment
    return experiment


def _discover() -> None:
    """Import every module of :mod:`paramviz.experiments.catalog` (each registers its
    experiments)."""
    catalog = importlib.import_module(f"{__package__}.catalog")  # found at run time, by name
    for module in pkgutil.iter_modules(catalog.__path__):
        importlib.import_module(f"{catalog.__name__}.{module.name}")


def experiments() -> dict[str, Experiment]:
    """Every experiment by name: by ``order``, each after the experiments it reads."""
    _discover()
    pending = sorted(_REGISTRY.values(), key=lambda experiment: (experiment.order, experiment.name))
    for experiment in pending:
        if unknown := [name for name in experiment.reads if name not in _REGISTRY]:
            raise ValueError(f"experiment {experiment.name!r} reads unknown {unknown}")
    ordered: dict[str, Experiment] = {}
    while pending:
        ready = next((e for e in pending if all(name in ordered for name in e.reads)), None)
        if ready is None:
            raise ValueError(
                f"experiments read each other in a circle: {[e.name for e in pending]}"
            )
        ordered[ready.name] = ready
        pending.remove(ready)
    return ordered


def select(names: Sequence[str]) -> list[Experiment]:
    """The experiments called ``names`` (``all`` = every one), in run order."""
    known = experiments()
    everything = [name for name, experiment in known.items() if experiment.in_all]
    wanted = everything + list(names) if ALL in names else list(dict.fromkeys(names))
    wanted = [name for name in dict.fromkeys(wanted) if name != ALL]
    if unknown := [name for name in wanted if name not in known]:
        raise UserError(
            f"unknown experiment {unknown[0]!r}; known: {', '.join(known)} (or {ALL!r})"
        )
    return [experiment for name, experiment in known.items() if name in wanted]
