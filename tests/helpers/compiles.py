"""Which programs XLA compiles inside a block, from JAX's own log: counted, not timed."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import jax


@contextlib.contextmanager
def compiled_programs() -> Iterator[list[str]]:
    """The names of the programs XLA compiles inside the block."""
    names: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Finished XLA compilation of jit("):
                names.append(message.split("jit(", 1)[1].split(")", 1)[0])

    handler = Collect()
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            yield names
    finally:
        logger.removeHandler(handler)
