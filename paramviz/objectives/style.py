"""Style and content: Gram-matrix style loss, activation matching, and their targets."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from paramviz.errors import UserError
from paramviz.objectives.core import IMAGE, MAIN, Features, Objective, as_nhwc, describe
from paramviz.objectives.regularisers import total_variation


def gram(activations: jax.Array) -> jax.Array:
    """Per-image Gram matrices ``A^T A / (H*W)`` of NHWC activations: ``(N, C, C)``.

    Normalised by the number of positions only (Lucid ``gram_style``, Gatys' notebook), so the
    value does not depend on the image size; dense ``(N, C)`` inputs count as 1x1.
    """
    t = as_nhwc(activations)
    n, h, w, c = t.shape
    flat = t.reshape(n, h * w, c)
    return jnp.swapaxes(flat, 1, 2) @ flat / (h * w)


_DISTANCES: dict[str, Callable[[jax.Array], jax.Array]] = {
    "l1": lambda d: jnp.mean(jnp.abs(d)),  # Lucid's mean_l1_loss
    "mse": lambda d: jnp.mean(jnp.square(d)),  # Gatys: sum of squares, up to a constant factor
}


def _distance(loss: str) -> Callable[[jax.Array], jax.Array]:
    try:
        return _DISTANCES[loss]
    except KeyError:
        raise UserError(f"unknown loss {loss!r}: choose one of {sorted(_DISTANCES)}") from None


def _identity(t: jax.Array) -> jax.Array:
    return t


def _broadcasts_to(shape: tuple[int, ...], into: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(shape, into) == tuple(into)
    except ValueError:
        return False


def _matching_value(
    statistic: Callable[[jax.Array], jax.Array],
    distance: Callable[[jax.Array], jax.Array],
    network: str,
    weights: Mapping[str, float],
    targets: Mapping[str, jax.Array],
    features: Features,
) -> jax.Array:
    total = jnp.zeros((), jnp.float32)
    for layer, target in targets.items():
        value = statistic(features[network][layer])
        if not _broadcasts_to(target.shape, value.shape):
            raise UserError(
                f"target for layer {layer!r} has shape {tuple(target.shape)} but the rendered "
                f"batch gives {tuple(value.shape)}; content matching needs transforms that keep "
                "the image size (e.g. none) and a render of the target's size"
            )
        total = total + weights[layer] * distance(value - target)
    return -total


def _target_matching(
    kind: str,
    statistic: Callable[[jax.Array], jax.Array],
    targets: Mapping[str, Any],
    layer_weights: Mapping[str, float] | None,
    loss: str,
    network: str,
) -> Objective:
    """``-sum_l w_l * distance(statistic(F_l) - target_l)``; targets are the Partial's leaves."""
    if not targets:
        raise UserError(f"{kind} needs at least one target layer")
    weights = {layer: 1.0 for layer in targets} | dict(layer_weights or {})
    unknown = set(weights) - set(targets)
    if unknown:
        raise UserError(f"{kind} weights for layers without a target: {sorted(unknown)}")
    weights = {layer: np.float32(weight) for layer, weight in weights.items()}  # array leaves
    arrays = {layer: jnp.asarray(t, jnp.float32) for layer, t in targets.items()}
    fn = Partial(_matching_value, statistic, _distance(loss), network, weights, arrays)
    layers = frozenset((network, layer) for layer in targets)
    return Objective(fn, layers, describe(kind, ", ".join(targets), loss=loss, network=network))


def style(
    targets: Mapping[str, Any],
    layer_weights: Mapping[str, float] | None = None,
    loss: str = "l1",
    network: str = MAIN,
) -> Objective:
    """Negative Gram-matrix style loss: maximising it matches the targets' Grams.

    ``targets`` maps layer -> ``(C, C)`` Gram (or ``(N, C, C)``, one per image), see
    :func:`style_targets`. ``loss="l1"`` is Lucid's ``mean_l1_loss`` (mean absolute difference);
    ``"mse"`` is the mean squared difference, which is Gatys et al.'s ``E_l`` times 4 with this
    Gram normalisation. Layers weigh 1 each unless ``layer_weights`` says otherwise.
    """
    return _target_matching("style", gram, targets, layer_weights, loss, network)


def content(
    targets: Mapping[str, Any],
    layer_weights: Mapping[str, float] | None = None,
    loss: str = "mse",
    network: str = MAIN,
) -> Objective:
    """Negative activation-matching loss: maximising it reproduces the target activations.

    ``targets`` maps layer -> activations of the content image (see :func:`content_targets`);
    ``"mse"`` is Gatys' content loss up to a constant, ``"l1"`` Lucid's notebook's ``mean_L1``.
    Use ``network="content"`` to read a separate content network passed to render.
    """
    return _target_matching("content", _identity, targets, layer_weights, loss, network)


def _batched(images: Any) -> jax.Array:
    images = jnp.asarray(images, jnp.float32)
    return images[None] if images.ndim == 3 else images


def style_targets(backbone: Any, style_image: Any, layers: Sequence[str]) -> dict[str, jax.Array]:
    """Gram targets ``{layer: (C, C)}`` of a style image ``(H, W, 3)``; a batch is averaged."""
    acts = backbone.features(_batched(style_image), layers)
    return {layer: jnp.mean(gram(acts[layer]), axis=0) for layer in layers}


def content_targets(
    backbone: Any, content_image: Any, layers: Sequence[str]
) -> dict[str, jax.Array]:
    """Activation targets ``{layer: (1, H, W, C)}`` of a content image ``(H, W, 3)``."""
    acts = backbone.features(_batched(content_image), layers)
    return {layer: acts[layer] for layer in layers}


def style_transfer_objective(
    content_targets: Mapping[str, Any],
    style_targets: Mapping[str, Any],
    content_weight: float = 1.0,
    style_weight: float = 1.0,
    tv_weight: float = 0.0,
    *,
    style_loss: str = "l1",
    content_loss: str = "mse",
    style_layer_weights: Mapping[str, float] | None = None,
    style_network: str = MAIN,
    content_network: str = MAIN,
) -> Objective:
    """``content_weight * content + style_weight * style - tv_weight * TV(image)``, terms named.

    Empty ``content_targets`` gives texture synthesis. TV acts on the untransformed ``"image"``
    (summed over pixels, so its scale grows with image size).
    """
    style_term = style(style_targets, style_layer_weights, style_loss, style_network)
    terms = [(style_weight * style_term).named("style")]
    if content_targets:
        content_term = content(content_targets, None, content_loss, content_network)
        terms.append((content_weight * content_term).named("content"))
    if tv_weight:
        terms.append((-tv_weight * total_variation(IMAGE)).named("tv"))
    return Objective.sum(terms)
