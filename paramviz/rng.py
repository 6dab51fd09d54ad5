"""Seeds' keys and random draws for initial values, made with NumPy.

A JAX PRNG kernel compiles once per shape (about a second each on CPU), which a render pays
before its first step; NumPy's generator, seeded by the key's words, is as reproducible and free.
Even ``jax.random.PRNGKey(seed)`` compiles two small programs in every new process.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np

_WORD = 0xFFFFFFFF


def key(seed: int) -> jax.Array:
    """``jax.random.PRNGKey(seed)``, the same words, put on the device without compiling.

    With the default threefry keys the words are the seed's high and low 32 bits (the high
    word is 0 unless 64-bit mode is on and the seed has 64 bits); another key implementation
    is left to JAX.
    """
    if jax.config.jax_default_prng_impl != "threefry2x32":
        return jax.random.PRNGKey(seed)
    wide = jax.config.jax_enable_x64 and np.asarray(seed).dtype.itemsize == 8
    seed = operator.index(seed)  # NumPy integers as Python ones; a float is refused, as by JAX
    high = (seed >> 32) & _WORD if wide else 0
    return jax.device_put(np.array([high, seed & _WORD], dtype=np.uint32))


def generator(key: jax.Array) -> np.random.Generator:
    """A NumPy generator determined by ``key`` (raw ``uint32`` keys and typed keys alike)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key, dtype=np.uint32).ravel().tolist())


def normal(key: jax.Array, shape: tuple[int, ...], sd: float = 1.0) -> np.ndarray:
    """``N(0, sd)`` float32 draws of ``shape``."""
    return (sd * generator(key).standard_normal(shape)).astype(np.float32)
