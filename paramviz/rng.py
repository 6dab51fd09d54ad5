"""Random draws for initial values, made with NumPy from a JAX key.

A JAX PRNG kernel compiles once per shape (about a second each on CPU), which a render pays
before its first step; NumPy's generator, seeded by the key's words, is as reproducible and free.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def generator(key: jax.Array) -> np.random.Generator:
    """A NumPy generator determined by ``key`` (raw ``uint32`` keys and typed keys alike)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key, dtype=np.uint32).ravel().tolist())


def normal(key: jax.Array, shape: tuple[int, ...], sd: float = 1.0) -> np.ndarray:
    """``N(0, sd)`` float32 draws of ``shape``."""
    return (sd * generator(key).standard_normal(shape)).astype(np.float32)
