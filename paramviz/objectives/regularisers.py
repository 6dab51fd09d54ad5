"""Image regularisers: positive penalties, used with a negative weight (Lucid)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from paramviz.objectives.core import INPUT, MAIN, Objective, describe, on_layer


def _total_variation_value(t: jax.Array, _: Any) -> jax.Array:
    return jnp.sum(jnp.abs(jnp.diff(t, axis=1))) + jnp.sum(jnp.abs(jnp.diff(t, axis=2)))


def total_variation(layer: str = INPUT, *, network: str = MAIN) -> Objective:
    """Anisotropic total variation, summed over the batch (``tf.image.total_variation``).

    ``layer="input"`` (Lucid's default) penalises the transformed batch; ``layer="image"``
    penalises the picture that is kept, which is what :func:`style_transfer_objective` uses.
    """
    return on_layer(
        describe("total_variation", layer, network=network),
        layer,
        _total_variation_value,
        network=network,
    )


def L1(
    layer: str = INPUT, constant: float = 0.0, batch: int | None = None, *, network: str = MAIN
) -> Objective:
    """``sum |x - constant|`` (Lucid ``L1``): a sparsity/brightness penalty, subtract it."""
    return _distance_penalty("L1", _l1_value, layer, constant, batch, network, np.float32(constant))


def _l1_value(t: jax.Array, constant: jax.Array) -> jax.Array:
    return jnp.sum(jnp.abs(t - constant))


def L2(
    layer: str = INPUT,
    constant: float = 0.0,
    epsilon: float = 1e-6,
    batch: int | None = None,
    *,
    network: str = MAIN,
) -> Objective:
    """``sqrt(epsilon + sum (x - constant)^2)`` (Lucid ``L2``); epsilon keeps gradients finite."""
    data = (np.float32(constant), np.float32(epsilon))
    return _distance_penalty("L2", _l2_value, layer, constant, batch, network, data)


def _distance_penalty(kind, reduce, layer, constant, batch, network, data) -> Objective:
    """L1 and L2 of ``layer`` from ``constant`` (named as Lucid names them)."""
    name = describe(kind, layer, constant=constant or None, batch=batch, network=network)
    return on_layer(name, layer, reduce, batch=batch, network=network, data=data)


def _l2_value(t: jax.Array, data: tuple[jax.Array, jax.Array]) -> jax.Array:
    constant, epsilon = data
    return jnp.sqrt(epsilon + jnp.sum((t - constant) ** 2))


def lucid_blur(images: jax.Array) -> jax.Array:
    """Lucid's 3x3 blur: weight 1 at the centre, 1/2 on the ring, renormalised at the borders."""
    channels = images.shape[-1]
    kernel = jnp.array([[0.5, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 0.5]], images.dtype)
    kernel = jnp.tile(kernel[:, :, None, None], (1, 1, 1, channels))

    def convolve(t: jax.Array) -> jax.Array:
        return jax.lax.conv_general_dilated(
            t,
            kernel,
            (1, 1),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=channels,
        )

    return convolve(images) / convolve(jnp.ones_like(images))


def _blur_value(t: jax.Array, _: Any) -> jax.Array:
    return 0.5 * jnp.sum((t - jax.lax.stop_gradient(lucid_blur(t))) ** 2)


def blur(layer: str = INPUT, *, network: str = MAIN) -> Objective:
    """``0.5 * sum (x - stop_gradient(blur(x)))^2`` (Lucid ``blur_input_each_step``).

    Its gradient is ``x - blur(x)``, so a step on ``-k * blur()`` moves the image a fraction of
    the way towards its blurred self: Nguyen et al.'s blur-every-step, written as a penalty.
    """
    return on_layer(describe("blur", layer, network=network), layer, _blur_value, network=network)
