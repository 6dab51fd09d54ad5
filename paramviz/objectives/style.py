"""Style and content: Gram-matrix style loss, activation matching, and their targets."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from paramviz.errors import UserError
from paramviz.objectives.core import IMAGE, MAIN, Features, Objective, as_nhwc, describe
from paramviz.objectives.regularisers import total_variation
from paramviz.vocabulary import SMOOTHING


def gram(activations: jax.Array) -> jax.Array:
    """Per-image Gram matrices ``A^T A / (H*W)`` of NHWC activations: ``(N, C, C)``.

    Normalised by the number of positions only (Lucid ``gram_style``, Gatys' notebook), so the
    value does not depend on the image size; dense ``(N, C)`` inputs count as 1x1.
    """
    t = as_nhwc(activations)
    n, h, w, c = t.shape
    return _gram_unscaled(t.reshape(n, h * w, c)) / (h * w)


@jax.custom_vjp
def _gram_unscaled(flat: jax.Array) -> jax.Array:
    """``flat^T flat`` per image, ``(N, P, C) -> (N, C, C)``."""
    return jnp.swapaxes(flat, 1, 2) @ flat


def _gram_unscaled_fwd(flat):
    return _gram_unscaled(flat), flat


def _gram_unscaled_bwd(flat, g):
    """One matrix product ``flat (g + g^T)``, where autodiff makes two, one per factor (and on
    CPU transposes ``flat`` for one of them). Reverse mode only, as for every custom VJP."""
    return (flat @ (g + jnp.swapaxes(g, 1, 2)),)


_gram_unscaled.defvjp(_gram_unscaled_fwd, _gram_unscaled_bwd)


def smooth(activations: jax.Array, mode: str = "none") -> jax.Array:
    """SWAG's softmax of NHWC activations (temperature 1); ``"none"`` returns them unchanged.

    Residual networks' activations are peaky: a few large values dominate their Gram matrices,
    which noise can then match. The softmax turns a layer into a distribution first.
    """
    check_smoothing(mode)
    t = as_nhwc(activations)
    if mode == "none":
        return t
    if mode == "channel":
        return jax.nn.softmax(t, axis=-1)
    n = t.shape[0]
    return jax.nn.softmax(t.reshape(n, -1), axis=-1).reshape(t.shape)


def check_smoothing(mode: str) -> None:
    """``UserError`` for a mode outside :data:`SMOOTHING`."""
    if mode not in SMOOTHING:
        raise UserError(f"unknown activation smoothing {mode!r}: choose one of {SMOOTHING}")


def smoothed_gram(mode: str, activations: jax.Array) -> jax.Array:
    """:func:`gram` of :func:`smooth` (``mode`` first, so it can be a Partial's static leaf)."""
    return gram(smooth(activations, mode))


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


def _statistic(kind: str, smoothing: str) -> Callable[[jax.Array], jax.Array]:
    check_smoothing(smoothing)  # an unknown mode fails here, before any network is traced
    if kind == "style":
        return gram if smoothing == "none" else Partial(smoothed_gram, smoothing)
    return _identity if smoothing == "none" else Partial(_smoothed, smoothing)


def _smoothed(mode: str, activations: jax.Array) -> jax.Array:
    return smooth(activations, mode)


def style(
    targets: Mapping[str, Any],
    layer_weights: Mapping[str, float] | None = None,
    loss: str = "l1",
    network: str = MAIN,
    smoothing: str = "none",
) -> Objective:
    """Negative Gram-matrix style loss: maximising it matches the targets' Grams.

    ``targets`` maps layer -> ``(C, C)`` Gram (or ``(N, C, C)``, one per image), see
    :func:`style_targets`. ``loss="l1"`` is Lucid's ``mean_l1_loss`` (mean absolute difference);
    ``"mse"`` is the mean squared difference, which is Gatys et al.'s ``E_l`` times 4 with this
    Gram normalisation. Layers weigh 1 each unless ``layer_weights`` says otherwise.
    ``smoothing`` (:data:`SMOOTHING`) must be the one the targets were made with.
    """
    statistic = _statistic("style", smoothing)
    return _target_matching("style", statistic, targets, layer_weights, loss, network)


def content(
    targets: Mapping[str, Any],
    layer_weights: Mapping[str, float] | None = None,
    loss: str = "mse",
    network: str = MAIN,
    smoothing: str = "none",
) -> Objective:
    """Negative activation-matching loss: maximising it reproduces the target activations.

    ``targets`` maps layer -> activations of the content image (see :func:`content_targets`);
    ``"mse"`` is Gatys' content loss up to a constant, ``"l1"`` Lucid's notebook's ``mean_L1``.
    Use ``network="content"`` to read a separate content network passed to render.
    """
    statistic = _statistic("content", smoothing)
    return _target_matching("content", statistic, targets, layer_weights, loss, network)


def _batched(images: Any) -> np.ndarray:
    images = np.asarray(images, np.float32)
    return images[None] if images.ndim == 3 else images


def style_targets(
    backbone: Any, style_image: Any, layers: Sequence[str], smoothing: str = "none"
) -> dict[str, jax.Array]:
    """Gram targets ``{layer: (C, C)}`` of a style image ``(H, W, 3)``; a batch is averaged."""
    return _targets(backbone, _batched(style_image), tuple(layers), "style", smoothing)


def content_targets(
    backbone: Any, content_image: Any, layers: Sequence[str], smoothing: str = "none"
) -> dict[str, jax.Array]:
    """Activation targets ``{layer: (1, H, W, C)}`` of a content image ``(H, W, 3)``."""
    return _targets(backbone, _batched(content_image), tuple(layers), "content", smoothing)


@functools.partial(jax.jit, static_argnames=("layers", "kind", "smoothing"))
def _targets(
    backbone: Any, images: jax.Array, layers: tuple[str, ...], kind: str, smoothing: str
) -> dict[str, jax.Array]:
    """The forward pass and every layer's statistic as one program: run eagerly, each small
    operation of the statistics would compile a program of its own in every new process."""
    statistic = _statistic(kind, smoothing)  # an unknown mode fails before the network is traced
    acts = backbone(images, layers)
    if kind == "style":  # several style pictures give their mean Gram
        return {layer: jnp.mean(statistic(acts[layer]), axis=0) for layer in layers}
    return {layer: statistic(acts[layer]) for layer in layers}


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
    content_layer_weights: Mapping[str, float] | None = None,
    style_network: str = MAIN,
    content_network: str = MAIN,
    smoothing: str = "none",
) -> Objective:
    """``content_weight * content + style_weight * style - tv_weight * TV(image)``, terms named.

    Empty ``content_targets`` gives texture synthesis. TV acts on the untransformed ``"image"``
    (summed over pixels, so its scale grows with image size).
    """
    style_term = style(style_targets, style_layer_weights, style_loss, style_network, smoothing)
    terms = [(style_weight * style_term).named("style")]
    if content_targets:
        content_term = content(
            content_targets, content_layer_weights, content_loss, content_network, smoothing
        )
        terms.append((content_weight * content_term).named("content"))
    if tv_weight:
        terms.append((-tv_weight * total_variation(IMAGE)).named("tv"))
    return Objective.sum(terms)


# --------------------------------------------------------------------------------------------
# the style-transfer objective the command line and the experiments share


def relative_weights(
    targets: Mapping[str, Any], weight: float, scale: Callable[[np.ndarray], Any]
) -> dict[str, np.ndarray]:
    """``weight / scale(target)`` per layer: a relative loss, comparable across layers and nets.

    0-d arrays, not floats: render passes an objective's arrays into its compiled step as
    arguments, so renders that differ only in weights share one compiled program. The targets
    reach ``scale`` as NumPy arrays: eager JAX would compile a program per operation and shape.
    """
    return {
        layer: np.asarray(weight / max(float(scale(np.asarray(t))), 1e-12), np.float32)
        for layer, t in targets.items()
    }


def _mean_abs(target: np.ndarray) -> np.floating:
    return np.mean(np.abs(target), dtype=np.float64)


def _mean_square(target: np.ndarray) -> np.floating:
    return np.mean(np.square(target, dtype=np.float64))


def _first_image_value(fn: Callable, features: Features) -> jax.Array:
    """``fn`` on the first image of every batch (the rendered one; the rest are references)."""
    return fn(
        {
            network: {name: value if name == IMAGE else value[:1] for name, value in layers.items()}
            for network, layers in features.items()
        }
    )


def on_first_image(objective: Objective) -> Objective:
    """``objective`` reading only batch element 0 of every layer."""
    return Objective(Partial(_first_image_value, objective.fn), objective.layers, objective.name)


def _aligned_content_value(
    network: str, smoothing: str, weights: Mapping[str, Any], features: Features
) -> jax.Array:
    total = jnp.zeros((), jnp.float32)
    for layer, weight in weights.items():
        acts = smooth(features[network][layer], smoothing)
        total = total + weight * jnp.mean(jnp.square(acts[:1] - jax.lax.stop_gradient(acts[1:2])))
    return -total


def aligned_content(
    weights: Mapping[str, Any], network: str = MAIN, smoothing: str = "none"
) -> Objective:
    """Content loss against batch element 1: the content picture under the same transform
    (see :func:`with_reference`), as in Lucid's style-transfer notebook."""
    fn = Partial(_aligned_content_value, network, smoothing, dict(weights))
    return Objective(fn, frozenset((network, layer) for layer in weights), "content(aligned)")


def with_reference(transform: Callable, reference: Any) -> Partial:
    """``transform`` applied to the batch with ``reference`` appended: one draw for both (a
    Partial, so the reference picture is an argument of the compiled step, not a constant)."""
    return Partial(_joint_transform, transform, np.asarray(reference, np.float32))


def _joint_transform(
    transform: Callable, reference: jax.Array, key: jax.Array, images: jax.Array
) -> jax.Array:
    return transform(key, jnp.concatenate([images, reference.astype(images.dtype)]))


def normalised_style_transfer(
    style_targets: Mapping[str, Any],
    content_targets: Mapping[str, Any],
    *,
    style_weight: float = 1.0,
    content_weight: float = 1.0,
    style_loss: str = "l1",
    smoothing: str = "none",
    joint: bool = False,
    content_network: str = MAIN,
    tv_weight: float = 0.0,
) -> Objective:
    """The style transfer (or texture, without content targets) of ``paramviz style`` and of
    every style experiment: the same function, so a picture made by one is judged like the other.

    Each style layer's loss is divided by its target's mean ``|G|`` and each content layer's
    squared error by its target's mean square, so layers and networks start on the same footing
    and one weight setting means the same everywhere. ``joint``: under random transforms, the
    content is batch element 1 (the content picture under the same draw, see
    :func:`with_reference`) and the style reads element 0 only. ``smoothing``: SWAG
    (:func:`smooth`), with targets made by the same mode.
    """
    style_weights = relative_weights(style_targets, 1.0, _mean_abs)
    content_weights = relative_weights(content_targets, 1.0, _mean_square)
    if not joint:
        return style_transfer_objective(
            content_targets,
            style_targets,
            content_weight,
            style_weight,
            tv_weight,
            style_loss=style_loss,
            style_layer_weights=style_weights,
            content_layer_weights=content_weights,
            content_network=content_network,
            smoothing=smoothing,
        )
    style_term = style(style_targets, style_weights, style_loss, smoothing=smoothing)
    content_term = aligned_content(content_weights, content_network, smoothing)
    terms = [
        (style_weight * on_first_image(style_term)).named("style"),
        (content_weight * content_term).named("content"),
    ]
    if tv_weight:
        terms.append((-tv_weight * total_variation(IMAGE)).named("tv"))
    return Objective.sum(terms)
