"""``paramviz experiment list|run`` and ``paramviz report``: the published comparisons."""

from __future__ import annotations

import argparse

from paramviz.cli.checks import positive, rate, seed, weight
from paramviz.cli.common import add_command, add_progress_flags
from paramviz.vocabulary import WEIGHTS_SETS

EXPERIMENT = """Run the published comparisons (style grid, neurons, R(f), ...) into a run folder.

Reproduce the published comparisons. Each run folder holds the pictures, metrics.json and the
exact settings of every experiment; running the same command again resumes it (finished cells
are not recomputed)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``experiment list``, ``experiment run`` and ``report``."""
    experiment = add_command(subparsers, "experiment", EXPERIMENT)
    actions = experiment.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_command(actions, "list", run_experiment_list)
    run = add_command(actions, "run", run_experiment_run)
    run.add_argument("names", nargs="+", metavar="NAME", help="experiment names, or 'all'")
    run.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="run folder")
    run.add_argument(
        "--weights-set",
        choices=WEIGHTS_SETS,
        default="small",
        help="the networks compared: the fetched ImageNet networks, the small pairs trained "
        "offline, the wider trained test bed (each with the real VGG-19 trunk if present), or "
        "real: the VGG-19 trunk and EfficientNet-Lite0 beside their robust twins, judged by "
        "Lite1 and Lite2",
    )
    run.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and steps, untrained stand-ins for the pairs: a smoke test, not results",
    )
    run.add_argument(
        "--seed", type=seed, default=0, help="seed of every cell, 0 to 2**32 - 1 (default 0)"
    )
    run.add_argument(
        "--rf-eps", type=weight, help="R(f) L2 ball radius in [0, 1] pixels (default: the set's)"
    )
    run.add_argument("--rf-steps", type=positive, help="R(f) PGD steps (default 20; quick 2)")
    run.add_argument("--rf-step-size", type=rate, help="R(f) PGD step (default 2.5 eps/steps)")
    run.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not keep compiled programs in <cache>/jax-cache (they make reruns fast; "
        "every command keeps them)",
    )
    run.add_argument(
        "--shard",
        metavar="K/N",
        help="compute only slice K of N of every experiment's cells (disjoint, deterministic), "
        "into a run folder the other slices share; a final run without --shard, or `report`, "
        "gathers them",
    )
    add_progress_flags(run, "--no-progress")

    report = add_command(subparsers, "report", run_report)
    report.add_argument("run_dir", help="the run folder (the one holding run.json)")
    report.add_argument("-o", "--out", help="the HTML file (default: RUN_DIR/report.html)")


def run_experiment_list(args: argparse.Namespace) -> int:
    """List the experiments and the claims they test."""
    from paramviz.experiments.registry import experiments

    for name, experiment in experiments().items():
        print(f"{name}: {experiment.title}\n    {experiment.question}")
    return 0


def run_experiment_run(args: argparse.Namespace) -> int:
    """Run one experiment (or all) into a run folder, resuming what is there.

    Run experiments into RUN_DIR. --weights-set imagenet uses the registry networks (fetch them
    first); small uses the texture-trained standard/robust pairs (trained on first use) and
    the real VGG-19 trunk when present."""
    from paramviz.experiments.registry import RunOptions, Shard
    from paramviz.experiments.runner import prefer_fast_compilation, run_experiments
    from paramviz.io import check_writable

    check_writable(args.output)
    if args.quick:
        prefer_fast_compilation()  # before jax starts
    options = RunOptions(
        seed=args.seed,
        robustness_eps=args.rf_eps,
        robustness_steps=args.rf_steps,
        robustness_step_size=args.rf_step_size,
        progress=args.progress,
        shard=Shard.parse(args.shard) if args.shard else None,
    )
    outcomes = run_experiments(
        args.names,
        args.output,
        args.weights_set,
        quick=args.quick,
        options=options,
    )
    for outcome in outcomes:
        print(
            f"{outcome.experiment}: {outcome.computed} cells computed, {outcome.reused} reused, "
            f"{outcome.skipped} left to other shards, {outcome.seconds:.0f} s -> "
            f"{outcome.metrics_path}"
        )
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Write a self-contained HTML report of an experiment run folder.

    Write one HTML page for a run folder: per experiment the claim it tests, the picture grids
    beside their inputs, before/after sliders, sortable metric tables and the R(f) plot.
    Pictures are embedded, so the file can be mailed and read offline."""
    from paramviz.experiments.report import write_report
    from paramviz.io import check_output

    if args.out is not None:
        check_output(args.out, ".html")
    print(f"report: {write_report(args.run_dir, args.out)}")
    return 0
