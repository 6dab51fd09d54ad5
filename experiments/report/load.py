"""Reading a run folder into records, and its pictures into data URIs.

The report must describe half-finished and damaged runs too, so only a folder without a readable
``run.json`` is refused (it is not a run). An experiment whose ``metrics.json`` is missing or
unreadable is kept with the reason it is skipped; the records' lenient ``from_json`` turns
malformed fields into defaults; a picture that is missing, unreadable or outside the run folder
has no URI, and the page shows it as missing.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paramviz.errors import UserError
from paramviz.experiments import records
from paramviz.io import read_json

MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


@dataclass(frozen=True)
class Experiment:
    """One experiment folder: its ``metrics.json`` record and its free-form ``settings.json``
    (``None`` when absent or unreadable: the settings are shown, never needed)."""

    name: str
    folder: Path
    record: records.ExperimentRecord
    settings: Any = None


@dataclass(frozen=True)
class Run:
    """A run folder: its ``run.json``, the experiments found, and why the others were skipped."""

    folder: Path
    record: records.RunRecord
    experiments: list[Experiment]
    skipped: dict[str, str] = field(default_factory=dict)


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a run folder; a folder without a readable ``run.json`` is not a run (``UserError``)."""
    folder = Path(run_dir)
    run_json = folder / records.RUN_FILE
    if not run_json.is_file():
        raise UserError(
            f"{folder} is not a paramviz run folder (no {records.RUN_FILE}); pass the folder "
            "that `paramviz experiment` wrote"
        )
    data = read_json(run_json)
    if not isinstance(data, Mapping):
        raise UserError(f"{run_json} is not a JSON object; is this a paramviz run folder?")
    record = records.RunRecord.from_json(data)
    experiments, skipped = [], {}
    for name in experiment_names(folder, record):
        loaded = load_experiment(folder, name)
        if isinstance(loaded, Experiment):
            experiments.append(loaded)
        else:
            skipped[name] = loaded
    return Run(folder, record, experiments, skipped)


def as_run(run: Run | str | os.PathLike) -> Run:
    """``run`` itself, or the run folder it names read (so a caller that has read it once
    passes it on instead of reading it again)."""
    return run if isinstance(run, Run) else load_run(run)


def experiment_names(folder: Path, record: records.RunRecord) -> list[str]:
    """The experiments ``run.json`` lists (its order is the page's), or, if it lists none,
    every folder with a ``metrics.json``."""
    if record.experiments:
        return list(dict.fromkeys(record.experiments))
    return sorted(path.parent.name for path in folder.glob(f"*/{records.METRICS_FILE}"))


def load_experiment(run_folder: Path, name: str) -> Experiment | str:
    """The experiment, or the reason it is skipped (so a half-finished run still reports)."""
    folder = inside(run_folder, run_folder / name)
    if folder is None or not folder.is_dir():
        return "no folder in this run"
    metrics = folder / records.METRICS_FILE
    if not metrics.is_file():
        return f"no {records.METRICS_FILE} (not run, or interrupted)"
    try:
        data = json.loads(metrics.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return f"unreadable {records.METRICS_FILE}: {err}"
    if not isinstance(data, Mapping):
        return f"{records.METRICS_FILE} is not a JSON object"
    record = records.ExperimentRecord.from_json(data)
    if not record.complete:  # shards write their own cells: gather every finished one
        record = dataclasses.replace(record, cells=finished_cells(folder, record.cells))
    return Experiment(name, folder, record, read_settings(folder))


def finished_cells(folder: Path, known: list[records.CellRecord]) -> list[records.CellRecord]:
    """``known`` cells, then every other record in ``cells/`` (one whose picture exists)."""
    seen = {cell.id for cell in known}
    extra = []
    for path in sorted((folder / records.CELLS_DIR).glob("*.json")):
        if path.stem in seen or not path.with_suffix(".png").is_file():
            continue
        try:
            extra.append(records.CellRecord.from_json(read_json(path)))
        except UserError:
            continue
    return [*known, *extra]


def read_settings(folder: Path) -> Any:
    """An experiment's settings, or ``None`` if they cannot be read."""
    try:
        return read_json(folder / records.SETTINGS_FILE)
    except UserError:
        return None


def inside(root: Path, path: Path) -> Path | None:
    """``path`` resolved, or ``None`` if it leaves ``root``: a report must not embed other files."""
    resolved = path.resolve()
    return resolved if resolved.is_relative_to(root.resolve()) else None


class Images:
    """Data URIs of image files under the run folder, each file read and encoded once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._uris: dict[Path, str | None] = {}

    def uri(self, base: Path, relative: str) -> str | None:
        """The data URI of ``base/relative``, or ``None`` if missing, unreadable or outside."""
        if not relative:
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
