"""Engstrom et al.'s layer robustness R(f), measured the same way wherever it is needed.

    R(f) = E_x[ max_{||x' - x||_2 <= eps} ||f(x') - f(x)||_2 ] / E_{x1 != x2}[ ||f(x1) - f(x2)||_2 ]

how far a layer's output can be pushed within a small pixel ball, relative to how far apart it
puts two different pictures (Engstrom et al., Distill 2019, response to Nakano). The paper states
neither the ball nor its radius, so the choices here are documented defaults and flags:

* **Ball**: L2 in [0, 1] pixel space, radius ``eps`` = the robust member's training radius at the
  images' size (``imagenet``: 3.0 at 224 px, the robust ResNet-50's ball; ``small``: 0.5 at 32 px,
  the texture pairs' ball): the perturbations the robust nets were trained to resist.
* **Inner max**: :func:`paramviz.experiments.attacks.pgd` maximising ``||f(x') - f(x)||^2`` from a
  random start on the sphere (the gradient of the norm is undefined at ``x' = x``), ``steps``
  steps of ``step_size`` (default Madry et al.'s ``2.5 eps / steps``). PGD finds a lower bound
  of the max.
* **Images**: scikit-image photos and textures, centre square, resized to the set's input size;
  the denominator averages over all pairs of them.
* **Layers**: each backbone's style layers (ResNet stages, VGG ``relu*_1``, AlexNet ``relu1-4``),
  the networks as trained (VGG max pools, not the style experiments' average pools).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from paramviz import xla
from paramviz.experiments.attacks import pgd
from paramviz.experiments.pictures import load_picture

PICTURES: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "gravel",
    "grass",
    "brick",
)
STEPS = 20
QUICK_STEPS = 2
QUICK_PICTURES = 4
ATTACK_KEYS = ("pictures", "size", "norm", "eps", "steps", "step_size", "seed")


class Attack(NamedTuple):
    """Per picture: ``moved`` = ``||f(x') - f(x)||``, ``radius`` = ``||x' - x||``; the attacked
    pictures ``adversarial`` and the clean features ``features`` (for the denominator)."""

    moved: jax.Array
    radius: jax.Array
    adversarial: jax.Array
    features: jax.Array


def _per_example_norm(x: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.square(x), axis=tuple(range(1, x.ndim))))


def attack_features(
    feature_fn: Callable[[jax.Array], jax.Array],
    images: jax.Array,
    key: jax.Array,
    *,
    eps: float,
    steps: int,
    step_size: float,
) -> Attack:
    """PGD in the L2 ``eps`` ball (and [0, 1]) maximising each picture's feature displacement."""
    clean = feature_fn(images)

    def displacement(x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.square(feature_fn(x) - clean), axis=tuple(range(1, clean.ndim)))

    adversarial = pgd(
        displacement, images, norm="l2", eps=eps, steps=steps, step_size=step_size, key=key
    )
    moved = _per_example_norm(feature_fn(adversarial) - clean)
    return Attack(moved, _per_example_norm(adversarial - images), adversarial, clean)


@functools.partial(xla.jit, static_argnames=("layer", "steps"))
def attack_layer(backbone, images, key, eps, step_size, *, layer: str, steps: int) -> Attack:
    """:func:`attack_features` of one layer; jitted with the network as an argument, so twins
    of the same architecture share one compiled program."""
    return attack_features(
        lambda x: backbone(x, (layer,))[layer],
        images,
        key,
        eps=eps,
        steps=steps,
        step_size=step_size,
    )


def mean_pairwise_distance(features: np.ndarray) -> float:
    """Mean ``||f_i - f_j||_2`` over all pairs ``i < j`` (via the Gram matrix, in float64)."""
    flat = np.asarray(features, np.float64).reshape(len(features), -1)
    squared = np.sum(flat**2, axis=1)
    distances = squared[:, None] + squared[None, :] - 2.0 * flat @ flat.T
    upper = np.triu_indices(len(flat), k=1)
    return float(np.mean(np.sqrt(np.maximum(distances[upper], 0.0))))


def robustness_ratio(attack: Attack) -> float:
    """R(f): mean attacked displacement over mean pairwise distance of the clean features."""
    return float(np.mean(np.asarray(attack.moved))) / mean_pairwise_distance(attack.features)


@functools.lru_cache(maxsize=4)
def robustness_pictures(names: tuple[str, ...], size: int) -> np.ndarray:
    """The R(f) pictures as one ``(N, size, size, 3)`` batch (read once per run)."""
    return np.stack([load_picture(name, size) for name in names])
