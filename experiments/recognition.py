"""The bar a class visualisation must clear before another network's recognition of it counts.

A picture rendered to maximise a class logit of network A is called recognisable when judges
(other classifiers, e.g. EfficientNet-Lite1 and Lite2 for Lite0's pictures) put that class in
their top-k. But networks of similar architecture share non-robust features (Ilyas et al. 2019):
a picture can move a judge's logit through pixel patterns no person sees, and then the judge
"recognises" a class that is not there.

This module measures how far that goes. It turns natural pictures into targeted PGD examples on A
(maximise the target's log-softmax within a small ball, too small to draw the class into them)
and counts how often each judge then names the target (top-k). That adversarial rate, not the
chance rate of the clean pictures, is the judge's baseline: a class picture counts as recognised
only where the judge's rate on the visualisations is above it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from paramviz import xla
from paramviz.backbones.base import Backbone
from paramviz.errors import UserError
from paramviz.experiments.attacks import Threat, pgd
from paramviz.experiments.metrics import top_k_recognised

LOGITS = "logits"


@dataclasses.dataclass(frozen=True)
class AdversarialBaseline:
    """:func:`adversarial_baseline`: the attack, its examples and every top-k rate of the target.

    ``own_rate`` is the attack's success on the attacked network, ``clean_rates`` each judge's
    rate on the unattacked pictures (chance level), ``rates`` its rate on the examples.
    """

    threat: str
    examples: np.ndarray
    classes: np.ndarray
    own_rate: float
    clean_rates: dict[str, float]
    rates: dict[str, float]


def targeted_examples(
    backbone: Backbone,
    pictures: np.ndarray,
    classes: Sequence[int],
    threat: Threat,
    key: jax.Array,
) -> np.ndarray:
    """``(N*C, H, W, 3)`` targeted PGD examples on ``backbone``: picture ``i`` pushed towards class
    ``classes[j]`` is row ``i * C + j``, ``threat``'s ball around the picture and [0, 1] hold it.

    The loss is the target's log-softmax, so the attack raises the target against all the other
    classes rather than just its logit.
    """
    batch, targets, _ = _checked(backbone, pictures, classes)
    return _examples(backbone, batch, targets, threat, key)


def adversarial_baseline(
    backbone: Backbone,
    judges: Mapping[str, Any],
    pictures: np.ndarray,
    classes: Sequence[int],
    threat: Threat,
    key: jax.Array,
    k: int = 5,
) -> AdversarialBaseline:
    """The judges' top-``k`` rates of the target class on :func:`targeted_examples` of
    ``backbone`` and on the clean pictures (``judges``: name -> Backbone with a ``"logits"``
    layer over the same classes as ``backbone``). Every input is checked and the cheap clean
    rates (which check ``k``) come before the attack, so a mistake costs no attack."""
    batch, targets, count = _checked(backbone, pictures, classes)
    for name, judge in judges.items():
        judged = _class_count(judge, f"judge {name!r}", batch.shape[1:3])
        if judged != count:
            raise UserError(
                f"judge {name!r} ({judge.arch}) has {judged} classes, the attacked network "
                f"({backbone.arch}) {count}: their class indices do not name the same classes"
            )
    wanted = np.tile(targets, len(batch))
    clean = np.repeat(batch, len(targets), axis=0)
    clean_rates = {
        name: top_k_recognised(judge, clean, wanted, k).rate for name, judge in judges.items()
    }
    examples = _examples(backbone, batch, targets, threat, key)
    return AdversarialBaseline(
        threat=threat.describe(),
        examples=examples,
        classes=wanted,
        own_rate=top_k_recognised(backbone, examples, wanted, k).rate,
        clean_rates=clean_rates,
        rates={
            name: top_k_recognised(judge, examples, wanted, k).rate
            for name, judge in judges.items()
        },
    )


def _checked(
    backbone: Backbone, pictures: Any, classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """``(N, H, W, 3)`` float32 pictures, ``(C,)`` target classes and the network's class count,
    or a ``UserError`` that says what is wrong with the inputs."""
    batch = np.asarray(pictures, np.float32)
    if batch.ndim != 4 or batch.shape[-1] != 3 or 0 in batch.shape:
        raise UserError(f"pictures must be a batch (N, H, W, 3) of RGB images, got {batch.shape}")
    if not np.all((batch >= 0.0) & (batch <= 1.0)):
        raise UserError(
            f"pictures must hold RGB values in [0, 1], got values from {np.min(batch):g} to "
            f"{np.max(batch):g}"
        )
    targets = np.asarray(classes)
    if targets.ndim != 1 or len(targets) == 0 or not np.issubdtype(targets.dtype, np.integer):
        raise UserError(f"classes must be a non-empty sequence of class indices, got {classes!r}")
    count = _class_count(backbone, "the attacked network", batch.shape[1:3])
    if outside := [int(c) for c in targets if not 0 <= c < count]:
        raise UserError(
            f"classes {outside} out of range: the attacked network ({backbone.arch}) has "
            f"{count} classes (0 to {count - 1})"
        )
    return batch, targets.astype(np.int32), count


def _class_count(network: Any, role: str, image_hw: tuple[int, int]) -> int:
    """How many classes ``network`` tells apart on pictures of this size; a ``UserError`` unless
    it is a Backbone with a ``"logits"`` layer that reaches them."""
    if not isinstance(network, Backbone):
        raise UserError(f"{role} must be a Backbone, got {type(network).__name__}")
    if LOGITS not in network.layer_names:
        raise UserError(
            f"{role} ({network.arch}) has no {LOGITS!r} layer (its last layer is "
            f"{network.layer_names[-1]!r}): only a classifier can name a class"
        )
    return network.check_layers((LOGITS,), image_hw)[LOGITS][-1]


def _examples(
    backbone: Backbone, batch: np.ndarray, targets: np.ndarray, threat: Threat, key: jax.Array
) -> np.ndarray:
    """:func:`targeted_examples` of checked inputs, one picture (all its targets) per call."""
    network = backbone.for_image_gradients((LOGITS,))
    return np.concatenate(
        [
            np.asarray(
                _attack(
                    network,
                    picture,
                    targets,
                    key,
                    index,
                    threat.eps,
                    threat.step_length,
                    norm=threat.norm,
                    steps=threat.steps,
                )
            )
            for index, picture in enumerate(batch)
        ]
    )


@functools.partial(xla.jit, static_argnames=("norm", "steps"))
def _attack(
    backbone: Backbone,
    picture: jax.Array,
    targets: jax.Array,
    key: jax.Array,
    index: int,
    eps: float,
    step_size: float,
    *,
    norm: str,
    steps: int,
) -> jax.Array:
    """One picture pushed towards each target: a batch of ``C``, so memory grows with the classes
    and not with pictures x classes. The network, ``eps`` and the step are arguments: one program
    serves every picture, radius (0 included) and network of the architecture."""

    def target_log_probability(images: jax.Array) -> jax.Array:
        log_p = jax.nn.log_softmax(backbone(images, (LOGITS,))[LOGITS])
        return jnp.take_along_axis(log_p, targets[:, None], axis=1)[:, 0]

    images = jnp.broadcast_to(picture, (len(targets), *picture.shape))
    return pgd(
        target_log_probability,
        images,
        norm=norm,
        eps=eps,
        steps=steps,
        step_size=step_size,
        key=jax.random.fold_in(key, index),
    )
