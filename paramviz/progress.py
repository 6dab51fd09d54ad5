"""Progress bars that behave in a terminal and in a log.

``enabled=None`` (the default everywhere) draws a bar only when the output is a terminal, so a log
gets no carriage-return clutter; ``True`` draws one anyway, and then ends it with a newline so the
next line of output starts on a line of its own; ``False`` never draws.
"""

from __future__ import annotations

import sys
from typing import Any


def wanted(enabled: bool | None = None) -> bool:
    """Whether to draw a bar: ``enabled``, or ``None`` for "only on a terminal"."""
    return sys.stderr.isatty() if enabled is None else enabled


def bar(iterable: Any = None, *, enabled: bool | None = None, **options: Any) -> Any:
    """A ``tqdm`` bar with the policy above (``options`` go to tqdm)."""
    from tqdm.auto import tqdm

    terminal = sys.stderr.isatty()
    return tqdm(iterable, disable=not wanted(enabled), leave=not terminal, **options)
