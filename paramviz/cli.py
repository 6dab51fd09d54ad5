"""The ``paramviz`` command: one parser, each area registers its own sub-commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from paramviz.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from experiments import cli as experiments_cli
    from experiments import report_cli
    from paramviz import commands, probe
    from weights import cli as weights_cli

    parser = argparse.ArgumentParser(
        prog="paramviz",
        description="Feature visualisation, style transfer and texture synthesis in JAX.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.register(subparsers)
    probe.register(subparsers)
    weights_cli.register(subparsers)
    experiments_cli.register(subparsers)
    report_cli.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; bad input prints a message and returns 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except UserError as err:
        print(f"paramviz: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paramviz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
