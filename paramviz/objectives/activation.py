"""Activation objectives (Lucid's ``channel``, ``neuron``, ``direction``, ``diversity``, ...)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from paramviz.errors import UserError
from paramviz.objectives.core import MAIN, Objective, describe, index, on_layer
from paramviz.objectives.style import gram


def _channel_mean(t: jax.Array, n: jax.Array) -> jax.Array:
    return jnp.mean(jnp.take(t, n % t.shape[-1], axis=-1))


def channel(layer: str, n: int, batch: int | None = None, *, network: str = MAIN) -> Objective:
    """Mean activation of channel ``n`` over batch and space (Lucid ``channel``)."""
    return on_layer(
        describe("channel", f"{layer}:{n}", batch=batch, network=network),
        layer,
        _channel_mean,
        batch=batch,
        network=network,
        data=index(n),
        checks=[(-1, n, "channel")],
    )


def neuron(
    layer: str,
    n: int,
    x: int | None = None,
    y: int | None = None,
    batch: int | None = None,
    *,
    network: str = MAIN,
) -> Objective:
    """Channel ``n`` at one position, by default the centre ``shape // 2`` (Lucid ``neuron``).

    As in Lucid, ``x`` indexes axis 1 (rows) and ``y`` axis 2 (columns); for even sizes the
    centre is the bottom-right cell of the central 2x2. The value is averaged over the batch.
    """
    checks = [(-1, n, "channel")]
    checks += [(1, x, "x (row)")] if x is not None else []
    checks += [(2, y, "y (column)")] if y is not None else []
    return on_layer(
        describe("neuron", f"{layer}:{n}", x=x, y=y, batch=batch, network=network),
        layer,
        _neuron_value,
        batch=batch,
        network=network,
        data=(index(n), None if x is None else index(x), None if y is None else index(y)),
        checks=checks,
    )


def _neuron_value(t: jax.Array, data: tuple[jax.Array, Any, Any]) -> jax.Array:
    n, row, col = data
    row = t.shape[1] // 2 if row is None else row % t.shape[1]
    col = t.shape[2] // 2 if col is None else col % t.shape[2]
    at = jax.lax.dynamic_index_in_dim(t, row, axis=1, keepdims=False)
    at = jax.lax.dynamic_index_in_dim(at, col, axis=1, keepdims=False)
    return jnp.mean(jnp.take(at, n % t.shape[-1], axis=-1))


def logit(
    n: int, layer: str = "logits", batch: int | None = None, *, network: str = MAIN
) -> Objective:
    """Mean of class ``n``'s pre-softmax output (Lucid ``class_logit``, averaged over the batch)."""
    return channel(layer, n, batch, network=network).named(
        describe("logit", f"{layer}:{n}", batch=batch, network=network)
    )


def _direction_value(layer: str, cossim_pow: float, t: jax.Array, vec: jax.Array) -> jax.Array:
    if t.shape[-1] != vec.shape[0]:
        raise UserError(
            f"direction has {vec.shape[0]} entries but layer {layer!r} has {t.shape[-1]} channels"
        )
    eps = 1e-4
    dot = jnp.sum(t * vec, axis=-1)
    if cossim_pow == 0:
        return jnp.mean(dot)
    cossim = dot / (eps + jnp.linalg.norm(t, axis=-1)) / (eps + jnp.linalg.norm(vec))
    return jnp.mean(dot * jnp.maximum(0.1, cossim) ** cossim_pow)


def direction(
    layer: str,
    vec: Any,
    cossim_pow: float = 0,
    batch: int | None = None,
    *,
    network: str = MAIN,
) -> Objective:
    """Mean dot product of every position's activation vector with ``vec`` (Lucid ``direction``).

    With ``cossim_pow > 0`` each dot product is multiplied by ``max(0.1, cossim) ** cossim_pow``,
    which favours activations pointing along ``vec`` rather than merely large ones.
    """
    return on_layer(
        describe("direction", layer, cossim_pow=cossim_pow or None, batch=batch, network=network),
        layer,
        Partial(_direction_value, layer, float(cossim_pow)),
        batch=batch,
        network=network,
        data=np.asarray(vec, np.float32).reshape(-1),
    )


def _diversity_value(t: jax.Array, _: Any) -> jax.Array:
    n = t.shape[0]
    grams = gram(t).reshape(n, -1) * (t.shape[1] * t.shape[2])  # Lucid: unscaled F^T F
    grams = grams / jnp.sqrt(jnp.maximum(jnp.sum(grams**2, axis=1, keepdims=True), 1e-10))
    similarity = grams @ grams.T
    return (jnp.sum(similarity) - jnp.trace(similarity)) / n


def diversity(layer: str, *, network: str = MAIN) -> Objective:
    """Style similarity between the images of a batch (Lucid ``diversity``): subtract it.

    Per-image Gram matrices of the flattened ``(H*W, C)`` activations, L2-normalised, then
    ``sum_i sum_{j != i} <G_i, G_j> / N``. Positive, as in Lucid: use a negative weight,
    e.g. ``channel(...) - 1e2 * diversity(layer)``.
    """
    return on_layer(
        describe("diversity", layer, network=network), layer, _diversity_value, network=network
    )


def _mean_square(t: jax.Array, _: Any) -> jax.Array:
    return jnp.mean(t**2)


def deepdream(layer: str, *, network: str = MAIN) -> Objective:
    """Mean squared activation of a layer (Mordvintsev et al. 2015; Lucid ``deepdream``)."""
    return on_layer(
        describe("deepdream", layer, network=network), layer, _mean_square, network=network
    )
