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
from collections.abc import Sequence

from paramviz.cli import compile_cache
from paramviz.cli.compile_cache import use_compile_cache
from paramviz.errors import UserError

__all__ = ["build_parser", "load_plugins", "main", "use_compile_cache"]

PLUGINS_VARIABLE = "PARAMVIZ_PLUGINS"


def build_parser() -> argparse.ArgumentParser:
    from paramviz import __version__
    from paramviz.cli import demo, experiments, inspect, render, train, weights
    from paramviz.cli.common import Parser

    parser = Parser(
        prog="paramviz",
        description="Feature visualisation, style transfer and texture synthesis in JAX.",
    )
    parser.add_argument("--version", action="version", version=f"paramviz {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
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
        except Exception as err:  # a plugin's own failure, whatever it raises
            first = str(err).splitlines()[0] if str(err) else ""
            raise UserError(
                f"the plugin {name!r} named in ${PLUGINS_VARIABLE} failed on import: "
                f"{type(err).__name__}: {first}"
            ) from None


def run(args: argparse.Namespace) -> int:
    """The command's handler; its long compiles hand their free memory back (jax is imported
    here, once the arguments have parsed, so ``--help`` stays instant)."""
    from paramviz.xla import memory_handed_back

    with memory_handed_back():
        return args.run(args) or 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; bad input prints a message and returns 2, never a traceback."""
    try:
        load_plugins()
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # `paramviz` alone: what it can do
            parser.print_help()
            return 0
        if getattr(args, "no_compile_cache", False):
            return run(args)
        with compile_cache.one_line_warnings(compile_cache.use_compile_cache()):
            return run(args)
    except UserError as err:
        print(f"paramviz: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paramviz: interrupted", file=sys.stderr)
        return 130
