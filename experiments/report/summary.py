"""A Markdown summary of a run folder beside its HTML page: the tables and contact sheets that go
into ``experiments/README.md`` (``RUN_DIR/summary/summary.md`` and the sheets as PNG files).

Per experiment: its summary rows with the columns a reader compares (:data:`COLUMNS`, those the
rows have), whether every metric ranked the calibration pictures as it must, and, for sheets
(cells whose ``details`` hold a ``key``), the picture and the key that unshuffles it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from paramviz.experiments import calibration, judges
from paramviz.experiments.report.load import Experiment, Run, as_run
from paramviz.experiments.style_job import calibrations

COLUMNS = (
    "group",
    "varies",
    "backbone",
    "prior",
    "optimizer",
    "layer",
    "stage",
    "content_weight",
    "R",
    "published_R",
    "R_style_rank_correlation",
    "style_distance_spread",
    "content_distance_spread",
    "transfer_robustness",
    "top5_independent",
    "top5_independent_held_out",
    "top5_above_adversarial",
    "top5_above_adversarial_held_out",
    "top5_self",
    "path_similarity",
    "path_natural",
    "path_unrelated",
    "path_normalised",
    "style_distance",
    "style_trunk",
    "style_resnet",
    "style_vgg",
    "style_lite1",
    "style_lite2",
    "style_trunk_seen",
    "content_distance",
    "content_trunk",
    "content_resnet",
    "content_lite1",
    "content_lite2",
    "checkerboard_colour",
    "checkerboard_local",
    "high_frequency_colour",
    "checkerboard",
    "style_distance_seed_spread",
    "style_trunk_seed_spread",
    "content_distance_seed_spread",
    "checkerboard_colour_seed_spread",
)


def fmt(value: Any) -> str:
    """Numbers to 3 significant digits, blanks for missing values."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3g}"
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Iterable[str] = COLUMNS) -> str:
    """A Markdown table of ``rows`` with the ``columns`` any of them has."""
    shown = [c for c in columns if any(row.get(c) is not None for row in rows)]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(fmt(row.get(c)) for c in shown) + " |" for row in rows]
    return "\n".join(lines)


def calibration_lines(experiment: Experiment) -> list[str]:
    """Whether every metric with orders ranked the calibration pictures right: "yes", or "no"
    with the metrics that did and the orders the others broke."""
    found = calibrations(experiment.record.cells)
    if not found:
        return []
    report = calibration.check(found, judges.metric_orders)
    good = sorted(metric for metric, broken in report.items() if not broken)
    failed = {metric: broken for metric, broken in report.items() if broken}
    if not failed:
        return [
            f"Calibration ranked correctly: yes, by all {len(good)} metrics ({', '.join(good)})."
        ]
    lines = [
        f"Calibration ranked correctly: no, {len(failed)} of {len(report)} metrics broke an "
        f"order; ranked correctly by: {', '.join(good) or 'none'}."
    ]
    lines += [f"- {metric} broke: {'; '.join(broken)}" for metric, broken in failed.items()]
    return lines


def sheets(experiment: Experiment, out: Path) -> list[str]:
    """Each sheet cell's picture beside the summary (256 colours: a third of the bytes, small
    enough to commit) with its key."""
    from PIL import Image

    lines = []
    for cell in experiment.record.cells:
        if "key" not in cell.details:
            continue
        name = f"{experiment.name}-{cell.id}.png"
        with Image.open(experiment.folder / cell.image) as sheet:
            sheet.convert("RGB").quantize(256).save(out / name, optimize=True)
        lines += [
            "",
            f"![{cell.id}]({name})",
            "",
            table(cell.details["key"], ("tile", "backbone", "route")),
        ]
    return lines


def summary_markdown(run_dir: Run | str | os.PathLike, out: Path) -> str:
    """The summary of every experiment in the run folder; sheets are copied into ``out``."""
    run = as_run(run_dir)
    parts = [f"# {run.folder.name}: weights set {run.record.weights_set}"]
    for experiment in run.experiments:
        record = experiment.record
        parts += ["", f"## {experiment.name}: {record.title}", "", record.question, ""]
        parts.append(f"{len(record.cells)} cells, {record.seconds:.0f} s of cell time.")
        if record.rows:
            parts += ["", table(record.rows)]
        parts += ["", *calibration_lines(experiment), *sheets(experiment, out)]
    return "\n".join(parts) + "\n"


def write_summary(run_dir: Run | str | os.PathLike) -> Path:
    """Write ``RUN_DIR/summary/summary.md`` (and the sheets); returns its path."""
    from paramviz.io import atomic_path

    run = as_run(run_dir)
    out = run.folder / "summary"
    out.mkdir(exist_ok=True)
    text = summary_markdown(run, out)
    path = out / "summary.md"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
