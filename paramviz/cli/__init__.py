"""The ``paramviz`` command: one parser, each area's sub-commands in a module of this package.

This package is the only code that parses arguments; every handler turns its flags into the typed
arguments of a library function and calls it. Heavy imports (jax, torch) happen inside the
handlers, so ``paramviz --help`` is instant. ``$PARAMVIZ_PLUGINS`` (comma-separated module names)
is imported first, so a module that registers an architecture of one's own makes it known to
every command.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import MutableMapping, Sequence
from pathlib import Path

from paramviz.errors import UserError

PLUGINS_VARIABLE = "PARAMVIZ_PLUGINS"


def build_parser() -> argparse.ArgumentParser:
    from paramviz.cli import demo, experiments, inspect, render, train, weights
    from paramviz.cli.common import Parser

    parser = Parser(
        prog="paramviz",
        description="Feature visualisation, style transfer and texture synthesis in JAX.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for area in (render, demo, inspect, weights, train, experiments):
        area.register(subparsers)
    return parser


def load_plugins() -> None:
    """Import the modules named in ``$PARAMVIZ_PLUGINS`` (they register their architectures)."""
    for name in filter(
        None, (part.strip() for part in os.environ.get(PLUGINS_VARIABLE, "").split(","))
    ):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise UserError(f"cannot import {name!r} named in ${PLUGINS_VARIABLE}: {err}") from None


def use_compile_cache(
    environ: MutableMapping[str, str] = os.environ, folder: Path | None = None
) -> None:
    """Keep compiled XLA programs in ``folder``, by default under ``$PARAMVIZ_HOME``, unless
    ``environ`` names a cache already: a repeated command then loads them instead of compiling.
    Every program is kept, however quick its compile: JAX looks each one up anyway, and a small
    one loads in a few ms where compiling it again takes tens. Set before jax is imported (the
    benchmark sets a worker's environment with it)."""
    from paramviz.paths import compile_cache_dir

    environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(folder or compile_cache_dir()))
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; bad input prints a message and returns 2, never a traceback."""
    try:
        load_plugins()
        args = build_parser().parse_args(argv)
        if not getattr(args, "no_compile_cache", False):
            use_compile_cache()
        return args.run(args) or 0
    except UserError as err:
        print(f"paramviz: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paramviz: interrupted", file=sys.stderr)
        return 130
