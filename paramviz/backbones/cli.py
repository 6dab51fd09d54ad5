"""Sub-commands ``layers`` and ``probe``."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this area's sub-commands (filled in by the backbone work)."""
