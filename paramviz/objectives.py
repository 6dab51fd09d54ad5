"""Objectives: the scalar that :func:`paramviz.render.render` maximises (Lucid's convention).

An :class:`Objective` is a function ``fn(features) -> scalar`` plus the ``(network, layer)``
pairs it reads, so render computes exactly those activations and nothing else.
``features[network][layer]`` holds NHWC activations (dense outputs are ``(N, C)``); every
network also sees two pseudo-layers:

* ``"input"`` -- the transformed batch exactly as fed to the networks (Lucid's ``T("input")``);
* ``"image"`` -- the parameterisation's output before the transforms (the picture that is saved).

Objectives combine with ``+ - * /`` (scalars or other objectives) and :meth:`Objective.sum`, so
``channel("conv4_1", 12) - 1e2 * diversity("conv4_1")`` reads like Lucid. Conventions follow Lucid:
activation objectives and the :func:`diversity` / regulariser *penalties* are positive and users
subtract the penalties; :func:`style` and :func:`content` already return the *negative* loss, so
adding them to an objective minimises the loss.

Array data an objective carries (style/content targets, direction vectors) lives in the arguments
of a :class:`jax.tree_util.Partial`; render passes those arrays into its jitted step as arguments
instead of baking them into the compiled program as constants.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from paramviz.errors import UserError

MAIN = "main"
"""The network passed to render as ``backbone``."""
INPUT = "input"
"""Pseudo-layer: the transformed image batch as fed to every network."""
IMAGE = "image"
"""Pseudo-layer: the parameterisation's image batch before the transforms."""
PSEUDO_LAYERS = frozenset({INPUT, IMAGE})

Features = Mapping[str, Mapping[str, jax.Array]]
Layers = frozenset[tuple[str, str]]


@dataclasses.dataclass(frozen=True, eq=False)
class Objective:
    """A scalar function of network features to be maximised, and the layers it needs.

    ``terms`` lists the summands of a sum (empty for a single objective); render reports each
    summand's final value under its ``name``.
    """

    fn: Callable[[Features], jax.Array]
    layers: Layers = frozenset()
    name: str = "objective"
    terms: tuple[Objective, ...] = dataclasses.field(default=(), repr=False)

    def __call__(self, features: Features) -> jax.Array:
        return self.fn(features)

    def summands(self) -> tuple[Objective, ...]:
        """The terms of a sum, or ``(self,)``: what render reports separately."""
        return self.terms or (self,)

    def named(self, name: str) -> Objective:
        """The same objective under another name, reported as a single term."""
        return dataclasses.replace(self, name=name, terms=())

    @staticmethod
    def sum(objectives: Iterable[Objective | float]) -> Objective:
        """Sum of objectives (and scalars); nested sums are flattened into one list of terms."""
        items = [_lift(o) for o in objectives]
        if any(o is None for o in items):
            raise TypeError("Objective.sum takes objectives and real scalars only")
        terms = tuple(t for o in items for t in o.summands())
        if not terms:
            return _constant(0.0)
        if len(terms) == 1:
            return terms[0]
        name = " + ".join(t.name for t in terms).replace(" + -", " - ")
        return Objective(Partial(_sum_of, tuple(t.fn for t in terms)), _union(terms), name, terms)

    def __add__(self, other: Any) -> Objective:
        if _lift(other) is None:
            return NotImplemented
        return Objective.sum([self, other])

    def __radd__(self, other: Any) -> Objective:
        if isinstance(other, numbers.Real) and other == 0:  # builtin sum() starts from 0
            return self
        if _lift(other) is None:
            return NotImplemented
        return Objective.sum([other, self])

    def __neg__(self) -> Objective:
        return Objective(Partial(_negated, self.fn), self.layers, f"-{_parenthesised(self)}")

    def __sub__(self, other: Any) -> Objective:
        lifted = _lift(other)
        return NotImplemented if lifted is None else self + (-lifted)

    def __rsub__(self, other: Any) -> Objective:
        lifted = _lift(other)
        return NotImplemented if lifted is None else lifted + (-self)

    def __mul__(self, other: Any) -> Objective:
        return _binary(operator.mul, "*", self, other)

    def __rmul__(self, other: Any) -> Objective:
        return _binary(operator.mul, "*", other, self)

    def __truediv__(self, other: Any) -> Objective:
        return _binary(operator.truediv, "/", self, other)

    def __rtruediv__(self, other: Any) -> Objective:
        return _binary(operator.truediv, "/", other, self)


# --------------------------------------------------------------------------------------------
# algebra helpers (module-level functions so that objectives stay pytrees of their arrays)


def _sum_of(fns: Sequence[Callable], features: Features) -> jax.Array:
    return functools.reduce(operator.add, (f(features) for f in fns))


def _negated(fn: Callable, features: Features) -> jax.Array:
    return -fn(features)


def _applied(op: Callable, fn_a: Callable, fn_b: Callable, features: Features) -> jax.Array:
    return op(fn_a(features), fn_b(features))


def _constant_value(value: float, features: Features) -> jax.Array:
    return jnp.asarray(value, jnp.float32)


def _constant(value: float) -> Objective:
    return Objective(Partial(_constant_value, float(value)), frozenset(), f"{float(value):g}")


def _lift(value: Any) -> Objective | None:
    """An objective as is, a real scalar as a constant objective, anything else None."""
    if isinstance(value, Objective):
        return value
    if isinstance(value, numbers.Real) or (
        isinstance(value, np.ndarray | jax.Array) and np.ndim(value) == 0
    ):
        return _constant(float(value))
    return None


def _parenthesised(objective: Objective) -> str:
    return f"({objective.name})" if " " in objective.name else objective.name


def _union(objectives: Iterable[Objective]) -> Layers:
    return frozenset().union(*(o.layers for o in objectives))


def _binary(op: Callable, symbol: str, a: Any, b: Any) -> Objective:
    a, b = _lift(a), _lift(b)
    if a is None or b is None:
        return NotImplemented
    name = f"{_parenthesised(a)} {symbol} {_parenthesised(b)}"
    return Objective(Partial(_applied, op, a.fn, b.fn), _union((a, b)), name)


def as_objective(spec: Objective | str) -> Objective:
    """An :class:`Objective` unchanged, or Lucid's ``"layer:channel"`` string as :func:`channel`."""
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str):
        layer, sep, index = spec.strip().rpartition(":")
        layer, index = layer.strip(), index.strip()
        if sep and layer and index.lstrip("-").isdigit():
            return channel(layer, int(index))
    raise UserError(
        f"cannot read objective {spec!r}: expected 'layer:channel' with an integer channel, "
        "e.g. 'conv4_1:12'"
    )


# --------------------------------------------------------------------------------------------
# reading activations


def _describe(kind: str, *args: Any, network: str = MAIN, **options: Any) -> str:
    shown = [str(a) for a in args]
    shown += [f"{k}={v}" for k, v in options.items() if v is not None]
    if network != MAIN:
        shown.append(f"network={network}")
    return f"{kind}({', '.join(shown)})"


def _as_nhwc(tensor: jax.Array) -> jax.Array:
    """Dense ``(N, C)`` outputs become ``(N, 1, 1, C)`` so spatial objectives apply (as Lucid)."""
    return tensor[:, None, None, :] if tensor.ndim == 2 else tensor


def _check_index(index: int, size: int, what: str, layer: str) -> None:
    # JAX clamps out-of-range indices silently; a wrong channel must fail loudly instead.
    if not -size <= index < size:
        raise UserError(f"{what} {index} is out of range for layer {layer!r} (size {size})")


def _activations(features: Features, network: str, layer: str, batch: int | None) -> jax.Array:
    """``features[network][layer]`` as NHWC, cut to image ``batch`` (kept as a batch of 1)."""
    try:
        tensor = _as_nhwc(features[network][layer])
    except KeyError:
        raise UserError(f"layer {layer!r} of network {network!r} was not computed") from None
    if batch is not None:
        _check_index(batch, tensor.shape[0], "batch index", layer)
        tensor = tensor[batch][None]
    return tensor


def _layer_value(
    reduce: Callable[..., jax.Array],
    network: str,
    layer: str,
    batch: int | None,
    data: Any,
    features: Features,
) -> jax.Array:
    return reduce(_activations(features, network, layer, batch), data)


def _on_layer(
    name: str,
    layer: str,
    reduce: Callable[[jax.Array, Any], jax.Array],
    *,
    batch: int | None = None,
    network: str = MAIN,
    data: Any = None,
) -> Objective:
    """Objective ``reduce(activations, data)`` of one layer; ``data`` arrays stay pytree leaves."""
    fn = Partial(_layer_value, reduce, network, layer, batch, data)
    return Objective(fn, frozenset({(network, layer)}), name)


# --------------------------------------------------------------------------------------------
# activation objectives


def channel(layer: str, n: int, batch: int | None = None, *, network: str = MAIN) -> Objective:
    """Mean activation of channel ``n`` over batch and space (Lucid ``channel``)."""

    def reduce(t: jax.Array, _: Any) -> jax.Array:
        _check_index(n, t.shape[-1], "channel", layer)
        return jnp.mean(t[..., n])

    return _on_layer(
        _describe("channel", f"{layer}:{n}", batch=batch, network=network),
        layer,
        reduce,
        batch=batch,
        network=network,
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

    def reduce(t: jax.Array, _: Any) -> jax.Array:
        row = t.shape[1] // 2 if x is None else x
        col = t.shape[2] // 2 if y is None else y
        _check_index(n, t.shape[-1], "channel", layer)
        _check_index(row, t.shape[1], "x (row)", layer)
        _check_index(col, t.shape[2], "y (column)", layer)
        return jnp.mean(t[:, row, col, n])

    return _on_layer(
        _describe("neuron", f"{layer}:{n}", x=x, y=y, batch=batch, network=network),
        layer,
        reduce,
        batch=batch,
        network=network,
    )


def logit(
    n: int, layer: str = "logits", batch: int | None = None, *, network: str = MAIN
) -> Objective:
    """Mean of class ``n``'s pre-softmax output (Lucid ``class_logit``, averaged over the batch)."""
    return channel(layer, n, batch, network=network).named(
        _describe("logit", f"{layer}:{n}", batch=batch, network=network)
    )


def _direction_value(cossim_pow: float, t: jax.Array, vec: jax.Array) -> jax.Array:
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
    vec = np.asarray(vec, np.float32).reshape(-1)

    def reduce(t: jax.Array, v: jax.Array) -> jax.Array:
        if t.shape[-1] != v.shape[0]:
            raise UserError(
                f"direction has {v.shape[0]} entries but layer {layer!r} has {t.shape[-1]} channels"
            )
        return _direction_value(cossim_pow, t, v)

    return _on_layer(
        _describe("direction", layer, cossim_pow=cossim_pow or None, batch=batch, network=network),
        layer,
        reduce,
        batch=batch,
        network=network,
        data=vec,
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
    return _on_layer(
        _describe("diversity", layer, network=network), layer, _diversity_value, network=network
    )


def _mean_square(t: jax.Array, _: Any) -> jax.Array:
    return jnp.mean(t**2)


def deepdream(layer: str, *, network: str = MAIN) -> Objective:
    """Mean squared activation of a layer (Mordvintsev et al. 2015; Lucid ``deepdream``)."""
    return _on_layer(
        _describe("deepdream", layer, network=network), layer, _mean_square, network=network
    )


# --------------------------------------------------------------------------------------------
# image regularisers: positive penalties, used with a negative weight (Lucid)


def _total_variation_value(t: jax.Array, _: Any) -> jax.Array:
    return jnp.sum(jnp.abs(jnp.diff(t, axis=1))) + jnp.sum(jnp.abs(jnp.diff(t, axis=2)))


def total_variation(layer: str = INPUT, *, network: str = MAIN) -> Objective:
    """Anisotropic total variation, summed over the batch (``tf.image.total_variation``).

    ``layer="input"`` (Lucid's default) penalises the transformed batch; ``layer="image"``
    penalises the picture that is kept, which is what :func:`style_transfer_objective` uses.
    """
    return _on_layer(
        _describe("total_variation", layer, network=network),
        layer,
        _total_variation_value,
        network=network,
    )


def L1(
    layer: str = INPUT, constant: float = 0.0, batch: int | None = None, *, network: str = MAIN
) -> Objective:
    """``sum |x - constant|`` (Lucid ``L1``): a sparsity/brightness penalty, subtract it."""

    def reduce(t: jax.Array, _: Any) -> jax.Array:
        return jnp.sum(jnp.abs(t - constant))

    return _on_layer(
        _describe("L1", layer, constant=constant or None, batch=batch, network=network),
        layer,
        reduce,
        batch=batch,
        network=network,
    )


def L2(
    layer: str = INPUT,
    constant: float = 0.0,
    epsilon: float = 1e-6,
    batch: int | None = None,
    *,
    network: str = MAIN,
) -> Objective:
    """``sqrt(epsilon + sum (x - constant)^2)`` (Lucid ``L2``); epsilon keeps gradients finite."""

    def reduce(t: jax.Array, _: Any) -> jax.Array:
        return jnp.sqrt(epsilon + jnp.sum((t - constant) ** 2))

    return _on_layer(
        _describe("L2", layer, constant=constant or None, batch=batch, network=network),
        layer,
        reduce,
        batch=batch,
        network=network,
    )


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
    return _on_layer(_describe("blur", layer, network=network), layer, _blur_value, network=network)


# --------------------------------------------------------------------------------------------
# style and content


def gram(activations: jax.Array) -> jax.Array:
    """Per-image Gram matrices ``A^T A / (H*W)`` of NHWC activations: ``(N, C, C)``.

    Normalised by the number of positions only (Lucid ``gram_style``, Gatys' notebook), so the
    value does not depend on the image size; dense ``(N, C)`` inputs count as 1x1.
    """
    t = _as_nhwc(activations)
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
    describe: Callable[[jax.Array], jax.Array],
    distance: Callable[[jax.Array], jax.Array],
    network: str,
    weights: Mapping[str, float],
    targets: Mapping[str, jax.Array],
    features: Features,
) -> jax.Array:
    total = jnp.zeros((), jnp.float32)
    for layer, target in targets.items():
        value = describe(features[network][layer])
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
    describe: Callable[[jax.Array], jax.Array],
    targets: Mapping[str, Any],
    layer_weights: Mapping[str, float] | None,
    loss: str,
    network: str,
) -> Objective:
    """``-sum_l w_l * distance(describe(F_l) - target_l)``; targets are the Partial's leaves."""
    if not targets:
        raise UserError(f"{kind} needs at least one target layer")
    weights = {layer: 1.0 for layer in targets} | dict(layer_weights or {})
    unknown = set(weights) - set(targets)
    if unknown:
        raise UserError(f"{kind} weights for layers without a target: {sorted(unknown)}")
    arrays = {layer: jnp.asarray(t, jnp.float32) for layer, t in targets.items()}
    fn = Partial(_matching_value, describe, _distance(loss), network, weights, arrays)
    layers = frozenset((network, layer) for layer in targets)
    return Objective(fn, layers, _describe(kind, ", ".join(targets), loss=loss, network=network))


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


@functools.partial(jax.jit, static_argnames="layers")
def _forward(backbone: Any, images: jax.Array, layers: tuple[str, ...]) -> dict[str, jax.Array]:
    return backbone(images, layers)


def style_targets(backbone: Any, style_image: Any, layers: Sequence[str]) -> dict[str, jax.Array]:
    """Gram targets ``{layer: (C, C)}`` of a style image ``(H, W, 3)``; a batch is averaged."""
    acts = _forward(backbone, _batched(style_image), tuple(layers))
    return {layer: jnp.mean(gram(acts[layer]), axis=0) for layer in layers}


def content_targets(
    backbone: Any, content_image: Any, layers: Sequence[str]
) -> dict[str, jax.Array]:
    """Activation targets ``{layer: (1, H, W, C)}`` of a content image ``(H, W, 3)``."""
    acts = _forward(backbone, _batched(content_image), tuple(layers))
    return {layer: acts[layer] for layer in layers}


@dataclasses.dataclass(frozen=True)
class StylePreset:
    """A published style-transfer recipe as data: network, layers and backbone options."""

    name: str
    arch: str | None
    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...] | None = None  # None: equal weights
    backbone_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def layer_weights(self) -> dict[str, float] | None:
        """``style_layer_weights`` keyed by layer, for :func:`style`."""
        if self.style_layer_weights is None:
            return None
        return dict(zip(self.style_layers, self.style_layer_weights, strict=True))


GATYS_VGG19 = StylePreset(
    name="gatys_vgg19",
    arch="vgg19",
    style_layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    content_layers=("relu4_2",),
    backbone_options={"pooling": "avg"},  # Gatys et al. 2016: avg-pool gives smoother images
)
"""Gatys et al. 2016, VGG-19: style relu1_1..relu5_1 (equal weights), content relu4_2, avg-pool."""

NAKANO_RESNET50 = StylePreset(
    name="nakano_resnet50",
    arch="resnet50",
    style_layers=("layer1", "layer2", "layer3", "layer4"),
    content_layers=("layer3",),
)
"""Nakano 2019 (Distill) on (robust) ResNet-50: style after each residual stage, content layer3."""


def single_layer_style(layer: str, base: StylePreset | None = None) -> StylePreset:
    """``base`` with one style layer (Engstrom et al.'s single-layer comparison)."""
    if base is None:
        return StylePreset(
            name=f"single:{layer}", arch=None, style_layers=(layer,), content_layers=()
        )
    return dataclasses.replace(
        base, name=f"{base.name}:{layer}", style_layers=(layer,), style_layer_weights=None
    )


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
