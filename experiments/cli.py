"""Sub-commands for training and experiments (``train``)."""

from __future__ import annotations


def register(subparsers) -> None:
    """Add this area's sub-commands (filled in by the training work)."""
