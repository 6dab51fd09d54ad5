"""What every sub-command module shares: help formatting, list flags, ``KEY=VALUE`` options and
plain-text tables."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
from collections.abc import Callable, Sequence
from typing import Any

from paramviz.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one ``paramviz: error: ...`` line like every other
    (a :class:`UserError`), not a usage block."""

    def error(self, message: str):
        command = self.prog.removeprefix("paramviz").strip()
        raise UserError(f"{command}: {message}" if command else message)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each flag's default (unless it has none, or its help already says)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_command(
    subparsers: argparse._SubParsersAction, name: str, handler: Callable[..., int] | str
) -> argparse.ArgumentParser:
    """A sub-command that runs ``handler`` (or, given text, a group of sub-commands): the first
    paragraph of its docstring is the line in the list of commands, the whole docstring heads
    its own ``--help``, which shows every flag's default."""
    text = inspect.cleandoc(handler if isinstance(handler, str) else handler.__doc__ or "")
    summary = text.split("\n\n", 1)[0].replace("\n", " ")
    parser = subparsers.add_parser(
        name, help=summary[0].lower() + summary[1:].rstrip("."), description=text,
        formatter_class=HelpFormatter,
    )  # fmt: skip
    if not isinstance(handler, str):
        parser.set_defaults(run=handler)
    return parser


def add_progress_flags(parser: argparse.ArgumentParser, off: str = "--quiet") -> None:
    """``--progress`` / ``off`` (``--quiet`` or ``--no-progress``) into ``args.progress``: True,
    False, or None (the default: a bar only when the output is a terminal, so a log gets none)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        default=None,
        help="draw progress bars even when the output is not a terminal (default: only on one)",
    )
    group.add_argument(
        off, dest="progress", action="store_const", const=False, help="no progress bars"
    )


def from_flags(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """An instance of the dataclass ``cls``: each field from the flag of the same name, unless
    ``values`` gives it (flags that need translating); absent flags keep the field's default."""
    flags = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    return cls(**{**flags, **values})


def split_list(text: str | None) -> tuple[str, ...] | None:
    """``"a, b,c"`` → ``("a", "b", "c")``; empty or ``None`` → ``None`` (use the default)."""
    items = tuple(item.strip() for item in (text or "").split(",") if item.strip())
    return items or None


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings → options; values are JSON when they parse as JSON, else strings."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option wants KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def format_table(rows: Sequence[Sequence[str]], rule: bool = False) -> str:
    """Left-aligned columns separated by two spaces; ``rule`` underlines the first row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    if rule:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)
