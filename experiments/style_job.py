"""One style-transfer or texture cell: its layers, its normalised objective, its render and the
numbers its picture gets. The style experiments (style grid, texture grid, content vs style net,
single-layer style) each plan cells and make them through :func:`run_style_job`.

Choices, and why:

* **Content under transforms.** Content loss compares activations position by position, but the
  transforms pad, shift, scale and rotate the picture. As in Lucid's style-transfer notebook the
  content picture is appended to the batch and transformed by the *same* draw
  (:func:`with_reference`); the content term compares the two transformed images and the style
  term reads only the rendered one.
* **Loss scales.** Each style layer's L1 Gram loss is divided by its target's mean ``|G|`` and each
  content layer's squared error by the target's mean square, so every layer and every network
  starts on the same footing (Nakano's per-network grid search is not repeated; one
  ``content_weight`` serves all networks). The judge's distances use the same relative form.
* **Layers.** Each architecture's own preset (:func:`paramviz.backbones.style_preset`: Gatys for
  VGG, Nakano for ResNet, Engstrom et al.'s ``conv_1 ... conv_4`` for AlexNet; partial nets keep
  what they have).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from experiments import metrics
from experiments.pictures import CONTENT_STYLE_PAIRS
from experiments.priors import LEARNING_RATE, image_param, prior_of
from experiments.records import CellRecord
from experiments.registry import Cell, CellOutput, Settings
from experiments.runner import RunContext
from paramviz import objectives
from paramviz.backbones import style_preset
from paramviz.objectives import IMAGE, MAIN, Objective

# ------------------------------------------------------------------------------------- layers


def layer_table(
    context: RunContext, names: Sequence[str], pooling: str | None
) -> dict[str, dict[str, Any]]:
    """``{backbone: {"style": [...], "content": [...]}}`` for settings.json."""
    table = {}
    for name in names:
        style, content = style_preset(context.backbone(name, pooling))
        table[name] = {"style": style, "content": content}
    return table


# ---------------------------------------------------------------------------------- objective


def _mean_abs(target: jax.Array) -> float:
    return max(float(jnp.mean(jnp.abs(target))), 1e-12)


def _mean_square(target: jax.Array) -> float:
    return max(float(jnp.mean(jnp.square(target))), 1e-12)


def relative_weights(
    targets: Mapping[str, jax.Array], weight: float, scale
) -> dict[str, np.ndarray]:
    """``weight / scale(target)`` per layer: a relative loss, comparable across layers and nets.

    0-d arrays, not floats: render passes an objective's arrays into its compiled step as
    arguments, so cells that differ only in weights share one compiled program.
    """
    return {
        layer: np.asarray(weight / scale(target), np.float32) for layer, target in targets.items()
    }


def _first_image_value(fn, features):
    """``fn`` on the first image of every batch (the rendered one; the rest are references)."""
    return fn(
        {
            network: {name: value if name == IMAGE else value[:1] for name, value in layers.items()}
            for network, layers in features.items()
        }
    )


def on_first_image(objective: Objective) -> Objective:
    """``objective`` reading only batch element 0 of every layer."""
    fn = Partial(_first_image_value, objective.fn)
    return Objective(fn, objective.layers, objective.name)


def _aligned_content_value(network: str, weights: Mapping[str, Any], features) -> jax.Array:
    total = jnp.zeros((), jnp.float32)
    for layer, weight in weights.items():
        acts = features[network][layer]
        total = total + weight * jnp.mean(jnp.square(acts[:1] - jax.lax.stop_gradient(acts[1:2])))
    return -total


def aligned_content(weights: Mapping[str, Any], network: str = MAIN) -> Objective:
    """Content loss against batch element 1: the content picture under the same transform."""
    fn = Partial(_aligned_content_value, network, dict(weights))
    return Objective(fn, frozenset((network, layer) for layer in weights), "content(aligned)")


def style_transfer_objective(
    style_targets: Mapping[str, jax.Array],
    content_targets: Mapping[str, jax.Array],
    settings: Settings,
    *,
    joint: bool = False,
    content_network: str = MAIN,
) -> Objective:
    """The normalised style (+ content) objective; ``joint``: content is batch element 1."""
    style_weights = relative_weights(style_targets, settings["style_weight"], _mean_abs)
    content_weights = relative_weights(content_targets, settings["content_weight"], _mean_square)
    style_term = objectives.style(style_targets, style_weights, settings["style_loss"])
    if not joint:
        terms = [style_term.named("style")]
        if content_targets:
            content_term = objectives.content(
                content_targets, content_weights, "mse", network=content_network
            )
            terms.append(content_term.named("content"))
        return Objective.sum(terms)
    return Objective.sum(
        [
            on_first_image(style_term).named("style"),
            aligned_content(content_weights, content_network).named("content"),
        ]
    )


def with_reference(transform, reference: np.ndarray):
    """``transform`` applied to the batch with ``reference`` appended: one draw for both (a
    Partial, so the reference picture is an argument of the compiled step, not a constant)."""
    return Partial(_joint_transform, transform, np.asarray(reference, np.float32))


def _joint_transform(transform, reference: jax.Array, key: jax.Array, images: jax.Array):
    return transform(key, jnp.concatenate([images, reference.astype(images.dtype)]))


# ------------------------------------------------------------------------------------- render


@dataclasses.dataclass(frozen=True)
class StyleJob:
    """One style transfer (``content_picture`` None: texture synthesis).

    ``content_net`` None: the style network also carries the content loss. ``style_layers``
    None: the settings' layer table.
    """

    style_net: str
    style_picture: str
    prior: str
    optimizer: str
    seed: int
    content_picture: str | None = None
    content_net: str | None = None
    style_layers: tuple[str, ...] | None = None

    @classmethod
    def from_cell(cls, cell: Cell, **overrides: Any) -> StyleJob:
        """The job of a cell whose spec names its pictures (and, optionally, its networks)."""
        spec = cell.spec
        job = cls(
            style_net=spec.get("style_net", cell.backbone),
            content_net=spec.get("content_net"),
            style_picture=spec["style"],
            content_picture=spec.get("content"),
            prior=cell.prior,
            optimizer=cell.optimizer,
            seed=cell.seed,
        )
        return dataclasses.replace(job, **overrides)


@dataclasses.dataclass(frozen=True)
class StyleBudget:
    """Picture size, optimiser steps and number of content/style pairs of a style experiment."""

    size: int
    adam_steps: int
    lbfgs_steps: int
    pairs: int


STYLE_BUDGETS = {
    "imagenet": StyleBudget(size=256, adam_steps=300, lbfgs_steps=100, pairs=3),
    "small": StyleBudget(size=96, adam_steps=150, lbfgs_steps=30, pairs=1),
}
"""``imagenet``: Gatys/Nakano-like sizes and step counts (L-BFGS converges in 100-300 steps, see
anchors.md §5); ``small``: what a 2-core CPU renders for the whole grid in minutes (the texture
nets were trained on 32 px crops, so 96 px already spans three of their receptive fields)."""
QUICK_STYLE_BUDGET = StyleBudget(size=32, adam_steps=3, lbfgs_steps=2, pairs=1)
CONTENT_WEIGHT = 1.0


def style_budget(context: RunContext) -> StyleBudget:
    return QUICK_STYLE_BUDGET if context.quick else STYLE_BUDGETS[context.backbone_set.name]


def picture_pairs(context: RunContext) -> list[list[str]]:
    """The budget's first content/style pairs."""
    return [list(pair) for pair in CONTENT_STYLE_PAIRS[: style_budget(context).pairs]]


def style_settings(context: RunContext) -> Settings:
    """Size, steps and loss settings shared by the style experiments."""
    budget = style_budget(context)
    return {
        "weights_set": context.backbone_set.name,
        "quick": context.quick,
        "seed": context.options.seed,
        "size": budget.size,
        "steps": {"adam": budget.adam_steps, "lbfgs": budget.lbfgs_steps},
        "learning_rate": LEARNING_RATE,
        "style_weight": 1.0,
        "content_weight": CONTENT_WEIGHT,
        "style_loss": "l1",
        "content_loss": "mse",
        "loss_normalisation": "style layer l: L1(G_l - G_l(style)) / mean|G_l(style)|; content "
        "layer l: MSE(F_l - F_l(content)) / mean(F_l(content)^2)",
        "pooling": "avg",
        "judge": {
            "name": context.backbone_set.judge.name,
            "layers": list(context.backbone_set.judge_layers),
        },
    }


def run_style_job(context: RunContext, settings: Settings, job: StyleJob) -> CellOutput:
    """Render one style transfer or texture and measure the picture."""
    from paramviz import render

    size, pooling, table = settings["size"], settings["pooling"], settings["layers"]
    style_net = context.backbone(job.style_net, pooling)
    layers = list(job.style_layers or table[job.style_net]["style"])
    style_net.check_layers(layers, (size, size))
    style_image = context.picture(job.style_picture, size)
    inputs = {"style": job.style_picture}
    content_image, content_targets, extra = None, {}, {}
    content_network = MAIN
    content_name = job.content_net or job.style_net
    content_layers: list[str] = []
    if job.content_picture is not None:
        content_image = context.picture(job.content_picture, size)
        inputs = {"content": job.content_picture, **inputs}
        content_layers = list(table[content_name]["content"])
        content_net = context.backbone(content_name, pooling)
        content_net.check_layers(content_layers, (size, size))
        if content_name != job.style_net:
            content_network, extra = "content", {"content": content_net}
        content_targets = objectives.content_targets(content_net, content_image, content_layers)
    prior = prior_of(settings, job.prior)
    joint = content_image is not None and not prior.deterministic
    objective = style_transfer_objective(
        objectives.style_targets(style_net, style_image, layers),
        content_targets,
        settings,
        joint=joint,
        content_network=content_network,
    )
    transform = render.resolve_transforms(prior.transforms)
    if joint:
        transform = with_reference(transform, content_image[None])
    from_content = settings["init"] == "content" and content_image is not None
    init = content_image[None] if from_content else None
    result = render.render(
        objective,
        image_param(prior, job.seed, 1, size, init),
        style_net,
        transforms=transform,
        steps=settings["steps"][job.optimizer],
        optimizer=job.optimizer,
        learning_rate=settings["learning_rate"],
        seed=job.seed,
        backbones=extra or None,
        progress=context.options.progress,
    )
    picture = result.image[0]
    periods = metrics.stride_periods(style_net, layers, size)
    values = picture_metrics(context, picture, periods, style=style_image, content=content_image)
    details = {
        "style_net": job.style_net,
        "content_net": content_name if content_image is not None else None,
        "style_layers": layers,
        "content_layers": content_layers,
        "checkerboard_periods": list(periods),
        "final_loss": result.final_loss,
        "terms": result.terms,
        "steps_run": result.steps_run,
        "stopped_reason": result.stopped_reason,
    }
    return CellOutput(picture, values, inputs, None, details)


# ------------------------------------------------------------------------------------ metrics


def picture_metrics(
    context: RunContext,
    picture: np.ndarray,
    periods: Sequence[int],
    *,
    style: np.ndarray | None = None,
    content: np.ndarray | None = None,
) -> dict[str, float]:
    """The judge's style and content distances (when given) and the spectral metrics."""
    judge, layers = context.judge(), context.backbone_set.judge_layers
    values = {}
    if style is not None:
        values["style_distance"] = float(metrics.style_distance(judge, picture, style, layers))
    if content is not None:
        values["content_distance"] = float(
            metrics.content_distance(judge, picture, content, layers)
        )
    return values | metrics.spectral_metrics(picture, periods)


STYLE_COLUMNS = (
    "style_distance",
    "content_distance",
    "high_frequency_ratio",
    "spectrum_slope",
    "checkerboard",
)


def mean_rows(
    records: Sequence[CellRecord], keys: Sequence[str], columns: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per distinct ``keys`` combination: the mean of each metric over its cells."""
    groups: dict[tuple, list[CellRecord]] = {}
    for record in records:
        groups.setdefault(tuple(getattr(record, key) for key in keys), []).append(record)
    rows = []
    for values, members in groups.items():
        row = dict(zip(keys, values, strict=True)) | {"cells": len(members)}
        for column in columns:
            numbers = [m.metrics.get(column) for m in members]
            numbers = [n for n in numbers if n is not None]
            row[column] = float(np.mean(numbers)) if numbers else None
        rows.append(row)
    return rows
