"""The three jobs a user asks for by name: style transfer, texture synthesis, unit visualisation.

Each takes a :class:`~paramviz.backbones.Backbone`, pictures as arrays and typed settings, renders,
and writes the picture with its JSON sidecar (and snapshots and a GIF with ``save_every``). The
command line and the demo are thin callers of these functions; so is any script.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from paramviz import objectives, outputs, param, render
from paramviz.backbones import Backbone, style_preset
from paramviz.errors import UserError
from paramviz.io import save_png

PARAMETERISATIONS = ("pixel", "fourier")


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """How a picture is optimised (the CLI's shared flags, with their defaults)."""

    param: str = "fourier"
    decorrelate: bool = True
    transforms: str = "none"
    steps: int = 300
    optimizer: str = "adam"
    lr: float = 0.05
    seed: int = 0
    save_every: int = 0
    tv_weight: float = 0.0
    progress: bool = True

    def thresholds(self) -> tuple[int, ...]:
        """The snapshot steps ``save_every`` asks for."""
        if not self.save_every:
            return ()
        return tuple(range(self.save_every, self.steps, self.save_every))


@dataclasses.dataclass(frozen=True)
class StyleSettings:
    """What a style transfer or texture matches (``None`` layers: the backbone's preset)."""

    style_layers: tuple[str, ...] | None = None
    content_layers: tuple[str, ...] | None = None
    style_weight: float = 1.0
    content_weight: float = 1.0
    style_loss: str = "l1"
    init: str = "content"


def make_param(
    kind: str,
    batch: int,
    hw: tuple[int, int],
    *,
    seed: int = 0,
    decorrelate: bool = True,
    init: Any = None,
) -> param.ImageParam:
    """The parameterisation called ``kind`` (``pixel`` or ``fourier``), from noise or ``init``."""
    if kind not in PARAMETERISATIONS:
        raise UserError(f"unknown parameterisation {kind!r}; choose one of {PARAMETERISATIONS}")
    make = param.fourier if kind == "fourier" else param.pixel
    return make(hw, batch, key=jax.random.PRNGKey(seed), decorrelate=decorrelate, init=init)


def style_transfer(
    backbone: Backbone,
    style_image: np.ndarray,
    content_image: np.ndarray | None,
    output: str | Path,
    settings: RenderSettings = RenderSettings(),
    style: StyleSettings = StyleSettings(),
    record: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Style transfer onto ``content_image``, or texture synthesis when it is ``None``.

    ``record`` adds entries to the sidecar's settings (e.g. the input paths). Returns the files
    written, ``{kind: path}``.
    """
    preset_style, preset_content = style_preset(backbone)
    style_layers = list(style.style_layers or preset_style)
    content_layers = []
    if content_image is not None:
        content_layers = list(style.content_layers or preset_content)
    hw = (content_image if content_image is not None else style_image).shape[:2]
    backbone.check_layers(style_layers + content_layers, style_image.shape[:2])
    backbone.check_layers(style_layers + content_layers, hw)
    content_targets = {}
    if content_layers:
        content_targets = objectives.content_targets(backbone, content_image, content_layers)
    objective = objectives.style_transfer_objective(
        content_targets,
        objectives.style_targets(backbone, style_image, style_layers),
        content_weight=style.content_weight,
        style_weight=style.style_weight,
        tv_weight=settings.tv_weight,
        style_loss=style.style_loss,
    )
    from_content = style.init == "content" and content_image is not None
    init = content_image[None] if from_content else None
    image_param = make_param(
        settings.param, 1, hw, seed=settings.seed, decorrelate=settings.decorrelate, init=init
    )
    layers = {"style_layers": style_layers, "content_layers": content_layers}
    settings_record = {**dataclasses.asdict(style), **(record or {}), **layers}
    return render_and_save(objective, image_param, backbone, output, settings, settings_record)


def visualize(
    backbone: Backbone,
    specs: Sequence[str],
    output: str | Path,
    size: int,
    settings: RenderSettings = RenderSettings(transforms="standard", steps=512),
    relu_redirect_steps: int = 16,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Activation maximisation of the units ``specs`` name, one image each, as a labelled sheet."""
    objective, units = objectives.batch_objective(specs)
    layers = sorted({layer for _, layer in objective.layers} - objectives.PSEUDO_LAYERS)
    hw = (size, size)
    backbone.check_layers(layers, hw)
    if settings.tv_weight:
        objective = objective - settings.tv_weight * objectives.total_variation(objectives.IMAGE)
    image_param = make_param(
        settings.param, len(units), hw, seed=settings.seed, decorrelate=settings.decorrelate
    )
    extra = {"objective": list(specs), "units": units, "size": size, **(record or {})}
    extra["relu_redirect_steps"] = relu_redirect_steps
    return render_and_save(
        objective,
        image_param,
        backbone,
        output,
        settings,
        extra,
        labels=units,
        relu_redirect_steps=relu_redirect_steps,
    )


def render_and_save(
    objective: objectives.Objective,
    image_param: param.ImageParam,
    backbone: Backbone,
    output: str | Path,
    settings: RenderSettings,
    record: Mapping[str, Any],
    *,
    labels: Sequence[str] | None = None,
    **render_options: Any,
) -> dict[str, Path]:
    """Render with ``settings`` and write PNG + JSON (+ GIF and snapshots with ``save_every``)."""
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise UserError(f"--output must end in .png: {output}")
    thresholds = settings.thresholds()

    def save_snapshot(step: int, image: np.ndarray, loss: float) -> None:
        snapshot = output.with_name(f"{output.stem}_step{step:05d}.png")
        save_png(snapshot, outputs.picture(image, labels))

    result = render.render(
        objective,
        image_param,
        backbone,
        transforms=settings.transforms,
        steps=settings.steps,
        optimizer=settings.optimizer,
        learning_rate=settings.lr,
        seed=settings.seed,
        thresholds=thresholds,
        callback=save_snapshot if thresholds else None,
        progress=settings.progress,
        **render_options,
    )
    written = {**dataclasses.asdict(settings), **record}
    return outputs.save_result(
        result, output, written, backbones=backbone, labels=labels, gif=bool(thresholds)
    )
