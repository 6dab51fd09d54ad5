"""How paramviz compiles its programs: :func:`jit` is ``jax.jit`` with paramviz's XLA options.

XLA's CPU compiler hands each convolution to YNNPACK by default, which runs it on one core at a
time; without that fusion XLA runs its own (Eigen) convolutions, split over every core. The
options are per program, so they do not touch a user's own ``jax.jit`` calls. XLA accepts them
only on a program that is not traced inside another: use :func:`jit` for top-level programs and
plain ``jax.jit`` for helpers they call. The option is XLA:CPU's; a GPU compile carries it unused
(not tried on a GPU). benchmarks/README.md ("Levers") has the before and after.
"""

from __future__ import annotations

import functools

import jax

# YNNPACK keeps the matrix products (its default: those and the convolutions)
COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}

jit = functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)
