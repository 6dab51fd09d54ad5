"""The ``report`` sub-command: one self-contained HTML page for a run folder.

Kept apart from ``experiments/cli.py`` so the report (standard library only) can be wired in
without touching the training commands; ``paramviz/cli.py`` calls :func:`register`.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add ``report``."""
    report = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report of an experiment run folder",
        description="Write one HTML page for a run folder: per experiment the claim it tests, "
        "the picture grids beside their inputs, before/after sliders, sortable metric tables "
        "and the R(f) plot. Pictures are embedded, so the file can be mailed and read offline.",
    )
    report.add_argument("run_dir", help="the run folder (the one holding run.json)")
    report.add_argument("-o", "--out", help="the HTML file (default: RUN_DIR/report.html)")
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from experiments.report import write_report

    print(f"report: {write_report(args.run_dir, args.out)}")
    return 0
