"""Progress bars that behave in a terminal, in a notebook and in a log.

``enabled=None`` (the default everywhere) draws a bar only when the output is a terminal or a
Jupyter notebook (tqdm's notebook widget there), so a log gets no carriage-return clutter;
``True`` draws one anyway, and then ends it with a newline so the next line of output starts on a
line of its own; ``False`` never draws.
"""

from __future__ import annotations

import sys
from typing import Any


def wanted(enabled: bool | None = None) -> bool:
    """Whether to draw a bar: ``enabled``, or ``None`` for "only on a terminal or in Jupyter"."""
    return (sys.stderr.isatty() or in_notebook()) if enabled is None else enabled


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's kernel app is configured)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


def bar(iterable: Any = None, *, enabled: bool | None = None, **options: Any) -> Any:
    """A ``tqdm`` bar with the policy above (``options`` go to tqdm)."""
    from tqdm.auto import tqdm

    terminal = sys.stderr.isatty()
    return tqdm(iterable, disable=not wanted(enabled), leave=not terminal, **options)
