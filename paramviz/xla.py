"""How paramviz compiles its programs: :func:`jit` is ``jax.jit`` with paramviz's XLA options, and
the memory a long compile leaves behind goes back to the operating system.

XLA's CPU compiler hands each convolution to YNNPACK by default, which runs it on one core at a
time; without that fusion XLA runs its own (Eigen) convolutions, split over every core. The
options are per program, so they do not touch a user's own ``jax.jit`` calls. XLA accepts them
only on a program that is not traced inside another: use :func:`jit` for top-level programs and
plain ``jax.jit`` for helpers they call. The option is XLA:CPU's; a GPU compile carries it unused
(not tried on a GPU).

XLA frees its compiler's scratch memory, but glibc keeps freed pages in the process (in the arena
of the thread that freed them), so a render's memory high-water mark was the compile's scratch
plus the steps' buffers. Inside :func:`memory_handed_back` (the command line, a render, a
training run), after every compile longer than :data:`RELEASE_AFTER_COMPILE_S`,
:func:`release_free_memory` hands the free pages back. Importing paramviz installs nothing: a
user's own programs compiled outside those jobs are left alone. Not between steps or renders:
pages given back there are faulted in again by the next step. benchmarks/README.md ("Levers")
has the before and after.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import jax

# YNNPACK keeps the matrix products (its default: those and the convolutions)
COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}
# shorter compiles leave little behind; a trim costs milliseconds
RELEASE_AFTER_COMPILE_S = 0.25
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"

jit = functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)
P = ParamSpec("P")
R = TypeVar("R")


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, musl, Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the operating system; False where that is not possible."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def _after_compile(event: str, duration_s: float, **_: object) -> None:
    if event == COMPILE_EVENT and duration_s >= RELEASE_AFTER_COMPILE_S:
        release_free_memory()


_listening = 0  # how many memory_handed_back blocks are open (they nest)


@contextlib.contextmanager
def memory_handed_back() -> Iterator[None]:
    """While inside, every long compile's leftover free memory goes back to the system."""
    global _listening
    if _listening == 0:
        jax.monitoring.register_event_duration_secs_listener(_after_compile)
    _listening += 1
    try:
        yield
    finally:
        _listening -= 1
        if _listening == 0:
            jax.monitoring.unregister_event_duration_listener(_after_compile)


def hands_memory_back(job: Callable[P, R]) -> Callable[P, R]:
    """``job`` run inside :func:`memory_handed_back` (paramviz's long jobs)."""

    @functools.wraps(job)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        with memory_handed_back():
            return job(*args, **kwargs)

    return wrapped
