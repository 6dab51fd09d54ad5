"""The three jobs as Python calls that return pictures: for notebooks and scripts.

``style_transfer(content, style)``, ``texture(style)`` and ``visualize("layer:unit")`` take
pictures as paths, arrays or PIL images, a network as a ``--weights`` name, a file or a loaded
:class:`~paramviz.backbones.Backbone` (left out: the best real weights on this machine, said when
used), and the command line's flags as keywords with the command line's defaults. Each returns an
:class:`~paramviz.outputs.Result`: nothing is written until ``result.save(path)``, which writes
what the command line writes (the command line calls these same functions). In Jupyter a result
draws itself, and long renders show a notebook progress bar.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paramviz import tasks
from paramviz.backbones import Backbone
from paramviz.errors import UserError
from paramviz.io import fitted_size, read_image
from paramviz.outputs import Result
from paramviz.vocabulary import (
    DEFAULT_SIZE,
    JOB_DEFAULTS,
    MAX_IMAGE_PIXELS,
    RELU_REDIRECT_STEPS,
    STYLE_SCALE,
)

Picture = str | os.PathLike | np.ndarray | Any  # Any: a PIL image
Weights = str | os.PathLike | Backbone | None

RENDER_KEYS = tuple(f.name for f in dataclasses.fields(tasks.RenderSettings))
STYLE_KEYS = tuple(f.name for f in dataclasses.fields(tasks.StyleSettings))


def style_transfer(
    content: Picture,
    style: Picture | Sequence[Picture],
    *,
    weights: Weights = None,
    size: int = DEFAULT_SIZE,
    **options: Any,
) -> Result:
    """Gatys et al.'s style transfer of ``style`` (one picture, or several whose Gram targets are
    blended) onto ``content``, read with its longer side ``size`` px.

    ``options``: ``sizes`` (stages, small to large), ``style_scale``, ``init_image``,
    ``backbone``, ``pooling``, ``max_pixels``, ``snapshot_to`` and every field of
    :class:`~paramviz.tasks.RenderSettings` and :class:`~paramviz.tasks.StyleSettings`.
    """
    return _style_job("style", content, style, weights, size, options)


def texture(
    style: Picture | Sequence[Picture],
    *,
    weights: Weights = None,
    size: int = DEFAULT_SIZE,
    **options: Any,
) -> Result:
    """A texture synthesised from noise that matches ``style``'s Gram statistics, ``size`` px
    on its longer side with the first style picture's aspect (options as :func:`style_transfer`)."""
    return _style_job("texture", None, style, weights, size, options)


def visualize(
    objective: str | Sequence[str],
    *,
    weights: Weights = None,
    size: int | tuple[int, int] = DEFAULT_SIZE,
    batch: int = 1,
    relu_redirect_steps: int = RELU_REDIRECT_STEPS,
    **options: Any,
) -> Result:
    """Activation maximisation of each objective (``"layer:unit"``, ``"logit:285"``, a range
    ``"layer:0-15"``; the grammar of ``paramviz visualize --help``), one image each, ``batch``
    random starts per objective; a batch saves as a labelled sheet.

    ``options``: ``init_image``, ``backbone``, ``pooling``, ``max_pixels``, ``snapshot_to`` and
    every field of :class:`~paramviz.tasks.RenderSettings`.
    """
    specs = [objective] if isinstance(objective, str) else list(objective)
    request = _Request("visualize", options, RENDER_KEYS)
    net, weights_record = _network(weights, request)
    init = request.picture("init_image", None)
    record = {
        "weights": weights_record,
        **request.inputs,
        "batch": batch,
        "init_image": request.described.get("init_image"),
    }
    return tasks.visualize(
        net,
        specs,
        size if isinstance(size, int) else tuple(size),
        tasks.RenderSettings(**request.render),
        relu_redirect_steps,
        record,
        copies=batch,
        init_image=init,
        snapshot_to=request.snapshot_to,
    )


def _style_job(
    job: str,
    content: Picture | None,
    style: Picture | Sequence[Picture],
    weights: Weights,
    size: int,
    options: Mapping[str, Any],
) -> Result:
    request = _Request(job, options, RENDER_KEYS + STYLE_KEYS + ("sizes", "style_scale"))
    styles = list(style) if isinstance(style, list | tuple) else [style]
    if not styles:
        raise UserError("style names no picture")
    if job == "texture" and request.settings.get("init") == "content":
        raise UserError("texture synthesis starts from noise; init 'content' needs style_transfer")
    net, weights_record = _network(weights, request)
    scale = request.settings.pop("style_scale", STYLE_SCALE)
    stage_sizes = request.settings.pop("sizes", None) or (size,)
    init = request.picture("init_image", None)
    if init is not None:
        request.settings["init"] = "image"
    stages = []
    for stage_size in stage_sizes:
        style_size = max(1, round(stage_size * scale))
        pictures = [request.picture(f"style {i}", s, style_size) for i, s in enumerate(styles)]
        if content is None:  # a texture of the first style picture's aspect
            first = pictures[0]
            if style_size != stage_size:
                first = request.picture("style 0", styles[0], stage_size)
            stages.append(tasks.Stage(pictures, None, first.shape[:2]))
        else:
            stages.append(tasks.Stage(pictures, request.picture("content", content, stage_size)))
    record = {
        "weights": weights_record,
        **request.inputs,
        "content": request.described.get("content"),
        "style": [request.described[f"style {i}"] for i in range(len(styles))],
        "size": size,
        "sizes": None if len(stage_sizes) == 1 and stage_sizes[0] == size else list(stage_sizes),
        "style_scale": scale,
        "init_image": request.described.get("init_image"),
    }
    return tasks.multiscale_style_transfer(
        net,
        stages,
        tasks.RenderSettings(**request.render),
        tasks.StyleSettings(**request.style),
        record,
        init_image=init,
        snapshot_to=request.snapshot_to,
    )


class _Request:
    """A job's keywords sorted into settings and inputs, with the job's defaults; pictures are
    read here and described for the sidecar (a path as given, an array by its shape)."""

    INPUT_KEYS = ("backbone", "pooling", "max_pixels", "snapshot_to", "init_image")

    def __init__(self, job: str, options: Mapping[str, Any], setting_keys: Sequence[str]):
        known = (*setting_keys, *self.INPUT_KEYS)
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise UserError(
                f"{job}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
            )
        defaults = {key: value for key, value in JOB_DEFAULTS[job].items() if key in setting_keys}
        self.settings = {**defaults, **{k: v for k, v in options.items() if k in setting_keys}}
        self.options = options
        self.max_pixels = options.get("max_pixels") or MAX_IMAGE_PIXELS
        self.snapshot_to = options.get("snapshot_to")
        self.inputs = {"backbone": options.get("backbone"), "pooling": options.get("pooling")}
        self.described: dict[str, Any] = {}

    @property
    def render(self) -> dict[str, Any]:
        return {k: v for k, v in self.settings.items() if k in RENDER_KEYS}

    @property
    def style(self) -> dict[str, Any]:
        return {k: v for k, v in self.settings.items() if k in STYLE_KEYS}

    def picture(self, role: str, picture: Picture | None, size: int | None = None) -> Any:
        """``picture`` (or, with ``None``, the option named ``role``) as float32 RGB in [0, 1],
        its longer side ``size`` px when given; None when there is none."""
        if picture is None:
            picture = self.options.get(role)
        if picture is None:
            return None
        if isinstance(picture, str | os.PathLike):
            self.described[role] = str(picture)
            return read_image(Path(picture), size, self.max_pixels)
        height, width = picture.size[::-1] if hasattr(picture, "getbands") else picture.shape[:2]
        self.described[role] = f"picture {height}x{width}"  # as given, before any resize
        return as_rgb(picture, size)


def as_rgb(picture: Any, size: int | None = None) -> np.ndarray:
    """A PIL image or an array (``(H, W)`` grey or ``(H, W, 3)`` RGB; 8-bit, or floats in
    [0, 1]) as float32 ``(H, W, 3)`` in [0, 1], its longer side ``size`` px when given. 8-bit
    pictures are resized as files are read (PIL's Lanczos), so a path, its PIL image and its
    array give the same picture."""
    from PIL import Image

    if not isinstance(picture, Image.Image):
        picture = np.asarray(picture)
        if picture.ndim == 2:
            picture = np.repeat(picture[..., None], 3, axis=-1)
        if picture.ndim != 3 or picture.shape[-1] != 3:
            raise UserError(f"a picture must be (H, W) or (H, W, 3), got shape {picture.shape}")
        if picture.dtype == np.uint8:
            picture = Image.fromarray(picture)
    if isinstance(picture, Image.Image):
        picture = picture.convert("RGB")
        if size is not None:
            picture = picture.resize(fitted_size(picture.size, size), Image.Resampling.LANCZOS)
        return np.asarray(picture, dtype=np.float32) / 255.0
    image = picture.astype(np.float32)
    if not np.all(np.isfinite(image)) or image.min() < 0.0 or image.max() > 1.0:
        raise UserError("a picture of floats must lie in [0, 1] (8-bit pictures: dtype uint8)")
    if size is None:
        return image
    width, height = fitted_size((image.shape[1], image.shape[0]), size)
    return tasks.resized(image, (height, width))


def _network(weights: Weights, request: _Request) -> tuple[Backbone, Any]:
    """The backbone ``weights`` names, and how the sidecar names it (a path or name as given)."""
    if isinstance(weights, Backbone):
        return weights, weights.arch
    from paramviz.weights.resolve import resolve_backbone

    if weights is None:
        from paramviz.weights.local import default_weights

        found = default_weights()
        print(f"weights not given: using {found.why}\n  {found.path}")
        weights = found.path
    arch, pooling = request.inputs["backbone"], request.inputs["pooling"]
    return resolve_backbone(str(weights), arch, pooling=pooling), str(weights)
