"""Sub-command group ``weights``: list, info, fetch, convert."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this area's sub-commands (filled in by the weights work)."""
