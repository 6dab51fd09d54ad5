"""Where an objective looks in a picture: MACO's transparency map (Fel et al., NeurIPS 2023).

MACO shows a feature visualisation with an alpha channel: pixels the objective is sensitive to
stay opaque, the rest fade out. Horama accumulates ``|d objective / d image|`` over the steps of
the optimisation; here it is measured on the finished picture, averaged over random draws of the
transforms it was optimised under (the same gradients, at the end of the path), so any picture of
any parameterisation can get one.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from paramviz import rng, xla
from paramviz.backbones import Backbone
from paramviz.objectives import MAIN, Objective
from paramviz.render import Transform, network_features, required_layers, resolve_transforms


def transparency(
    objective: Objective,
    images: np.ndarray,
    backbone: Backbone,
    *,
    transforms: Transform | str | None = None,
    key: jax.Array | None = None,
    draws: int = 16,
    backbones: Mapping[str, Backbone] | None = None,
) -> np.ndarray:
    """``(N, H, W)`` in [0, 1]: the mean over ``draws`` transform draws of ``|d objective / d x|``
    (summed over colour), divided by each image's largest value."""
    networks = {MAIN: backbone, **dict(backbones or {})}
    layers = required_layers(objective, networks)
    transform = resolve_transforms(transforms)
    key = rng.key(0) if key is None else key

    def value(x: jax.Array, draw: jax.Array) -> jax.Array:
        batch = transform(jax.random.fold_in(key, draw), x)
        return objective(network_features(networks, layers, x, batch))

    gradient = xla.jit(jax.grad(value))
    x = jnp.asarray(images, jnp.float32)
    total = sum(jnp.abs(gradient(x, jnp.int32(d))).sum(axis=-1) for d in range(draws))
    peak = jnp.max(total, axis=(1, 2), keepdims=True)
    return np.asarray(total / jnp.where(peak > 0, peak, 1.0))
