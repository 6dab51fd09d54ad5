"""Sub-commands that render: style, texture, visualize, demo."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this area's sub-commands (filled in by the engine work)."""
