"""``layer-robustness``: Engstrom et al.'s R(f) for the first layers/stages of every backbone.

    R(f) = E_x[ max_{||x' - x||_2 <= eps} ||f(x') - f(x)||_2 ] / E_{x1 != x2}[ ||f(x1) - f(x2)||_2 ]

how far a layer's output can be pushed within a small pixel ball, relative to how far apart it
puts two different pictures (Engstrom et al., Distill 2019, response to Nakano). The paper states
neither the ball nor its radius, so the choices here are documented defaults and flags:

* **Ball**: L2 in [0, 1] pixel space, radius ``eps`` = the robust member's training radius at the
  images' size (``imagenet``: 3.0 at 224 px, the robust ResNet-50's ball; ``small``: 0.5 at 32 px,
  the texture pairs' ball): the perturbations the robust nets were trained to resist.
* **Inner max**: :func:`experiments.attacks.pgd` maximising ``||f(x') - f(x)||^2`` from a random
  start on the sphere (the gradient of the norm is undefined at ``x' = x``), ``steps`` steps of
  ``step_size`` (default Madry et al.'s ``2.5 eps / steps``). PGD finds a lower bound of the max.
* **Images**: scikit-image photos and textures, centre square, resized to the set's input size;
  the denominator averages over all pairs of them.
* **Layers**: each backbone's style layers (ResNet stages, VGG ``relu*_1``, AlexNet ``relu1-4``),
  the networks as trained (VGG max pools, not the style experiments' average pools).

Published values (read off Engstrom et al.'s figure, first four layers): standard ResNet-50 ≈ 0.54,
0.45, 0.45, 0.58; AlexNet ≈ 0.06, 0.12, 0.37, 0.50; VGG-16 ≈ 0.06, 0.11, 0.16, 0.21; robust
ResNet-50 ≈ 0.07, 0.07, 0.06, 0.05 (see /work/shared/reference/anchors.md §4.2).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments import grid
from experiments.attacks import Threat, pgd
from experiments.runner import (
    Cell,
    CellOutput,
    Experiment,
    RunContext,
    Settings,
    cell_id,
    read_json,
)

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
QUICK_LAYERS = 2
SHOWN = 3  # pictures on each cell's sheet: clean, attacked, amplified perturbation
SHEET_TILE = 96  # px: small pictures are enlarged (nearest neighbour) to about this on sheets
PUBLISHED: dict[str, tuple[float, ...]] = {
    "resnet50": (0.54, 0.45, 0.445, 0.58),
    "alexnet": (0.06, 0.12, 0.37, 0.50),
    "vgg16": (0.055, 0.11, 0.16, 0.21),
    "resnet50-robust-l2-eps3": (0.07, 0.065, 0.062, 0.05),
}
"""R(f) of the first four layers read off Engstrom et al.'s figure (anchors.md §4.2)."""
ATTACK_KEYS = ("pictures", "size", "norm", "eps", "steps", "step_size", "seed")


# ---------------------------------------------------------------------------------- measuring


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


@functools.partial(jax.jit, static_argnames=("layer", "steps"))
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


# ----------------------------------------------------------------------------------- settings


def threat_of(settings: Mapping[str, Any]) -> Threat:
    return Threat(settings["norm"], settings["eps"], settings["steps"], settings["step_size"])


def attack_settings(context: RunContext) -> Settings:
    """The R(f) attack and pictures: set defaults, overridden by the run options (flags)."""
    options, backbone_set = context.options, context.backbone_set
    steps = options.robustness_steps or (QUICK_STEPS if context.quick else STEPS)
    eps = options.robustness_eps if options.robustness_eps is not None else backbone_set.robust_eps
    threat = Threat("l2", eps, steps, options.robustness_step_size)
    pictures = PICTURES[:QUICK_PICTURES] if context.quick else PICTURES
    return {
        "pictures": list(pictures),
        "size": backbone_set.robustness_size,
        "norm": "l2",
        "eps": eps,
        "steps": steps,
        "step_size": threat.step_length,
        "attack": threat.describe(),
        "seed": options.seed,
    }


def settings(context: RunContext) -> Settings:
    names = list(context.backbone_set.names)
    table = grid.layer_table(context, names, None)
    count = QUICK_LAYERS if context.quick else None
    return {
        "weights_set": context.backbone_set.name,
        "quick": context.quick,
        "backbones": names,
        "layers": {name: table[name]["style"][:count] for name in names},
        **attack_settings(context),
        "definition": "R(f) = mean_x ||f(PGD(x)) - f(x)||_2 / mean_{i<j} ||f(x_i) - f(x_j)||_2",
    }


def plan(settings: Settings) -> list[Cell]:
    return [
        Cell(
            id=cell_id(backbone, layer),
            group=backbone,
            backbone=backbone,
            prior="none",
            optimizer="pgd",
            seed=settings["seed"],
            spec={"layer": layer},
        )
        for backbone in settings["backbones"]
        for layer in settings["layers"][backbone]
    ]


# ------------------------------------------------------------------------------------ running


@functools.lru_cache(maxsize=4)
def pictures(names: tuple[str, ...], size: int) -> np.ndarray:
    """The R(f) pictures as one ``(N, size, size, 3)`` batch (read once per run)."""
    return np.stack([grid.load_picture(name, size) for name in names])


def measure(context: RunContext, backbone_name: str, layer: str, attack: Settings) -> Attack:
    """The PGD attack on ``layer`` of ``backbone_name`` over the settings' pictures."""
    from paramviz.commands import check_layers

    backbone = context.backbone(backbone_name)
    size = attack["size"]
    check_layers(backbone, [layer], (size, size))
    return attack_layer(
        backbone,
        jnp.asarray(pictures(tuple(attack["pictures"]), size)),
        jax.random.PRNGKey(attack["seed"]),
        attack["eps"],
        attack["step_size"],
        layer=layer,
        steps=attack["steps"],
    )


def attack_sheet(attack: Attack, clean: np.ndarray, names: list[str]) -> tuple[np.ndarray, list]:
    """Clean, attacked and perturbation (amplified to the full range) for the first pictures."""
    from paramviz import outputs

    shown = min(SHOWN, len(clean))
    adversarial = np.asarray(attack.adversarial[:shown])
    delta = adversarial - clean[:shown]
    scale = 0.5 / max(float(np.max(np.abs(delta))), 1e-12)
    tiles, labels = [], []
    for i in range(shown):
        tiles += [clean[i], adversarial[i], 0.5 + scale * delta[i]]
        labels += [names[i], "attacked", "x'-x (amplified)"]
    zoom = max(1, SHEET_TILE // clean.shape[1])  # pixel-exact enlargement of small pictures
    tiles = np.repeat(np.repeat(np.stack(tiles), zoom, axis=1), zoom, axis=2)
    return outputs.contact_sheet(tiles, labels, columns=3), labels


def run_cell(context: RunContext, settings: Settings, cell: Cell) -> CellOutput:
    attack = measure(context, cell.backbone, cell.spec["layer"], settings)
    names = settings["pictures"]
    picture, labels = attack_sheet(attack, pictures(tuple(names), settings["size"]), names)
    values = {
        "R": robustness_ratio(attack),
        "attacked_distance": float(np.mean(np.asarray(attack.moved))),
        "pair_distance": mean_pairwise_distance(attack.features),
        "perturbation_l2": float(np.mean(np.asarray(attack.radius))),
    }
    return CellOutput(picture, values, {}, labels, {"layer": cell.spec["layer"]})


def rows(settings: Settings, records) -> list[dict[str, Any]]:
    """The R(f) table, with the published value where Engstrom et al. give one."""
    table = []
    for record in records:
        layer = record["spec"]["layer"]
        position = settings["layers"][record["backbone"]].index(layer)
        published = PUBLISHED.get(record["backbone"], ())
        table.append(
            {
                "backbone": record["backbone"],
                "layer": layer,
                "R": record["metrics"]["R"],
                "eps": settings["eps"],
                "steps": settings["steps"],
                "published_R": published[position] if position < len(published) else None,
            }
        )
    return table


def layer_r(context: RunContext, attack: Settings, backbone: str, layer: str) -> float:
    """R(f) of one layer: the ``layer-robustness`` cell of this run when it was measured with
    the same attack and pictures, else measured now (so both experiments report one number)."""
    folder = context.run_dir / LAYER_ROBUSTNESS.name
    record_path = folder / "cells" / f"{cell_id(backbone, layer)}.json"
    if record_path.is_file() and (folder / "settings.json").is_file():
        measured = read_json(folder / "settings.json")
        if all(measured.get(key) == attack.get(key) for key in ATTACK_KEYS):
            value = read_json(record_path)["metrics"].get("R")
            if value is not None:
                return float(value)
    return robustness_ratio(measure(context, backbone, layer, attack))


LAYER_ROBUSTNESS = Experiment(
    name="layer-robustness",
    title="R(f): how far a small pixel ball moves each layer",
    question="Engstrom et al. (2019): a standard ResNet-50's layers are far less robust "
    "(R ≈ 0.45-0.58) than VGG's and AlexNet's early layers (R ≈ 0.06-0.2) or a robust "
    "ResNet-50's (R ≈ 0.05-0.07), which is why its style transfer fails.",
    columns=("R", "attacked_distance", "pair_distance", "perturbation_l2"),
    settings=settings,
    plan=plan,
    run_cell=run_cell,
    rows=rows,
)
