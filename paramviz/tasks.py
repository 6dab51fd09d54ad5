"""The three jobs a user asks for by name: style transfer, texture synthesis, unit visualisation.

Each takes a :class:`~paramviz.backbones.Backbone`, pictures as arrays and typed settings, renders,
and returns an :class:`~paramviz.outputs.Result` that writes nothing until it is saved (with
``snapshot_to``, snapshots are also written as they are reached, so a long run loses none).
:mod:`paramviz.jobs` takes names, paths and keywords on top of these; the command line and the
demo call those.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

import paramviz.transforms as transforms_lib
from paramviz import budget, objectives, outputs, param, render, rng
from paramviz.backbones import Backbone, style_preset
from paramviz.backbones.input_size import check_input_size, fixed_input_size
from paramviz.errors import UserError
from paramviz.io import save_png
from paramviz.objectives.parse import channel_ranges
from paramviz.settings import RenderSettings, StyleSettings, check_setting, is_whole
from paramviz.vocabulary import PARAMETERISATIONS, RELU_REDIRECT_STEPS


def make_param(
    kind: str,
    batch: int,
    hw: tuple[int, int],
    *,
    seed: int = 0,
    decorrelate: bool = True,
    init: Any = None,
) -> param.ImageParam:
    """The parameterisation called ``kind`` (:data:`~paramviz.vocabulary.PARAMETERISATIONS`),
    from noise or ``init``."""
    make = PARAMETERISATIONS[kind].load()
    return make(hw, batch, key=rng.key(seed), decorrelate=decorrelate, init=init)


StylePictures = np.ndarray | Sequence[np.ndarray]
"""One style picture ``(H, W, 3)``, or several whose Gram targets are blended."""


def style_pictures(style_image: StylePictures) -> list[np.ndarray]:
    """``style_image`` as a list of pictures (one picture is a list of one)."""
    if isinstance(style_image, np.ndarray | jax.Array) and np.ndim(style_image) == 3:
        return [style_image]
    pictures = list(style_image)
    if not pictures:
        raise UserError("no style picture given")
    return pictures


def blended_style_targets(
    backbone: Backbone, style_image: StylePictures, layers: Sequence[str], style: StyleSettings
) -> dict[str, jax.Array]:
    """The Gram targets of the style picture, or the weighted average of several pictures' (by
    ``style.style_blend_weights``, as neural-style's ``-style_blend_weights``): one target per
    layer either way, so the objective is the same function."""
    pictures = style_pictures(style_image)
    targets = [
        objectives.style_targets(backbone, picture, layers, style.smoothing) for picture in pictures
    ]
    if len(targets) == 1:
        return targets[0]
    shares = style.blend_shares(len(targets))
    return {
        layer: sum(share * target[layer] for share, target in zip(shares, targets, strict=True))
        for layer in layers
    }


def style_objective(
    style_net: Backbone,
    style_image: StylePictures,
    style_layers: Sequence[str],
    *,
    content_image: np.ndarray | None = None,
    content_layers: Sequence[str] = (),
    content_net: Backbone | None = None,
    style: StyleSettings = StyleSettings(),
    joint: bool = False,
    tv_weight: float = 0.0,
) -> objectives.Objective:
    """The objective of a style transfer (texture without ``content_image``): the one
    ``paramviz style`` and the experiments' style cells both optimise.

    ``content_net`` other than ``style_net`` is read as network ``"content"``; ``joint``: the
    content picture rides in the batch under the same transforms (see
    :func:`paramviz.objectives.with_reference`).
    """
    content_targets = {}
    if content_image is not None:
        content_targets = objectives.content_targets(
            content_net or style_net, content_image, content_layers, style.smoothing
        )
    separate = content_net is not None and content_net is not style_net
    return objectives.normalised_style_transfer(
        blended_style_targets(style_net, style_image, style_layers, style),
        content_targets,
        style_weight=style.style_weight,
        content_weight=style.content_weight,
        style_loss=style.style_loss,
        smoothing=style.smoothing,
        joint=joint,
        content_network="content" if separate else objectives.MAIN,
        tv_weight=tv_weight,
    )


@dataclasses.dataclass(frozen=True)
class Stage:
    """The pictures of one stage of a style transfer, each at the size it is read at.

    ``hw``: the size of a texture (no ``content``), by default the first style picture's; a
    style transfer is the content picture's size.
    """

    style: StylePictures
    content: np.ndarray | None = None
    hw: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class StyleJob:
    """One stage of a style transfer, checked and ready to render: its plan, the picture size,
    the content picture and what the sidecar records."""

    plan: RenderPlan
    hw: tuple[int, int]
    content_image: np.ndarray | None
    record: dict[str, Any]


def prepare_style(
    backbone: Backbone,
    stage: Stage,
    settings: RenderSettings,
    style: StyleSettings,
    content_net: Backbone | None = None,
) -> StyleJob:
    """The checked :class:`StyleJob` of one stage: layers and sizes are checked and the memory
    estimated before anything is rendered. ``content_net`` (default: ``backbone``) carries the
    content loss, its layers from its own preset unless ``style.content_layers`` names them."""
    pictures = style_pictures(stage.style)
    content_image = stage.content
    content_net = content_net or backbone
    style_layers = list(style.style_layers or style_preset(backbone)[0])
    content_layers = []
    if content_image is not None:
        content_layers = list(style.content_layers or style_preset(content_net)[1])
    hw = tuple(
        content_image.shape[:2] if content_image is not None else stage.hw or pictures[0].shape[:2]
    )
    style.blend_shares(len(pictures))  # as many blend weights as pictures
    reads = [(backbone, style_layers + content_layers)]
    if content_net is not backbone:
        reads = [(backbone, style_layers), (content_net, content_layers)]
    for image_hw in dict.fromkeys((*(picture.shape[:2] for picture in pictures), hw)):
        for net, layers in reads:
            check_input_size(net, layers, image_hw)
            net.check_layers(layers, image_hw)
    for picture in pictures:  # the forward pass that reads its Gram targets
        needed, _ = budget.forward_bytes(backbone, style_layers, picture.shape[:2], ())
        what = f"reading a {picture.shape[0]}x{picture.shape[1]} style picture with {backbone.arch}"
        budget.check_fits(needed, what, settings.force, "use a smaller --style-scale or --size")
    joint = content_image is not None and settings.transforms != "none"
    objective = style_objective(
        backbone,
        pictures,
        style_layers,
        content_image=content_image,
        content_layers=content_layers,
        content_net=content_net,
        style=style,
        joint=joint,
        tv_weight=settings.tv_weight,
    )
    transforms = render.resolve_transforms(settings.transforms)
    if joint:  # the content picture is compared under the same transform draw
        transforms = objectives.with_reference(transforms, content_image[None])
    networks = {"content": content_net} if content_net is not backbone else {}
    plan = plan_render(objective, backbone, 1, hw, settings, transforms, networks)
    record = {
        "style_layers": style_layers,
        "content_layers": content_layers,
        "style_sizes": [list(picture.shape[:2]) for picture in pictures],
    }
    return StyleJob(plan, hw, content_image, record)


def style_start(
    job: StyleJob, style: StyleSettings, init_image: np.ndarray | None
) -> np.ndarray | None:
    """The picture a stage starts from (``None``: noise): ``init_image`` resized to the stage's
    size when ``style.init == "image"``, else the content picture when ``"content"``."""
    if style.init == "image":
        if init_image is None:
            raise UserError("init 'image' needs the picture to start from (init_image)")
        return resized(init_image, job.hw)
    if style.init == "content" and job.content_image is not None:
        return job.content_image
    return None


def resized(image: np.ndarray, hw: Sequence[int]) -> np.ndarray:
    """``image`` ``(H, W, 3)`` at ``hw`` (Lanczos, clipped to [0, 1]); unchanged when it fits."""
    image = np.asarray(image, np.float32)
    if image.shape[:2] == tuple(hw):
        return image
    shape = (*hw, image.shape[-1])
    return np.clip(np.asarray(jax.image.resize(image, shape, "lanczos3")), 0.0, 1.0)


YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float32)
"""RGB -> YIQ: luminance Y and the two chroma channels I, Q (NTSC)."""


def original_colours(pictures: np.ndarray, content_image: np.ndarray) -> np.ndarray:
    """The pictures' luminance with the content picture's chroma (YIQ), clipped to [0, 1]:
    neural-style's ``-original_colors 1``, so only the style's texture is transferred."""
    luminance = np.asarray(pictures, np.float32) @ YIQ[0]
    chroma = np.broadcast_to(
        np.asarray(content_image, np.float32) @ YIQ[1:].T, (*luminance.shape, 2)
    )
    yiq = np.concatenate([luminance[..., None], chroma], axis=-1)
    return np.clip(yiq @ np.linalg.inv(YIQ).T, 0.0, 1.0).astype(np.float32)


def style_transfer(
    backbone: Backbone,
    style_image: StylePictures,
    content_image: np.ndarray | None,
    settings: RenderSettings = RenderSettings(),
    style: StyleSettings = StyleSettings(),
    record: Mapping[str, Any] | None = None,
    *,
    init_image: np.ndarray | None = None,
    texture_hw: tuple[int, int] | None = None,
    snapshot_to: str | Path | None = None,
) -> outputs.Result:
    """Style transfer onto ``content_image``, or texture synthesis when it is ``None`` (of
    ``texture_hw``, by default the style picture's size).

    ``style_image`` may be several pictures (their Gram targets blended by
    ``style.style_blend_weights``); ``init_image`` is the start when ``style.init == "image"``.
    ``record`` adds entries to the sidecar's settings (e.g. the input paths).
    """
    return multiscale_style_transfer(
        backbone,
        [Stage(style_image, content_image, texture_hw)],
        settings,
        style,
        record,
        init_image=init_image,
        snapshot_to=snapshot_to,
    )


def multiscale_style_transfer(
    backbone: Backbone,
    stages: Sequence[Stage],
    settings: RenderSettings = RenderSettings(),
    style: StyleSettings = StyleSettings(),
    record: Mapping[str, Any] | None = None,
    *,
    init_image: np.ndarray | None = None,
    snapshot_to: str | Path | None = None,
) -> outputs.Result:
    """A style transfer in stages, small to large, as neural-style users render large pictures:
    ``stages`` holds each stage's pictures at its size; each stage after the first starts from
    the one before, upsampled. Every stage is checked before the first renders; the result is the
    last (its sidecar lists every stage's size)."""
    if not stages:
        raise UserError("a style transfer needs at least one stage")
    if style.original_colors and stages[-1].content is None:
        raise UserError("original colours need a content picture (paramviz style)")
    early = dataclasses.replace(settings, save_every=0)  # only the last stage keeps snapshots
    jobs = [prepare_style(backbone, stage, early, style) for stage in stages[:-1]]
    jobs.append(prepare_style(backbone, stages[-1], settings, style))
    start = style_start(jobs[0], style, init_image)
    for job in jobs[:-1]:
        image_param = _style_param(job, early, start)
        result = run_render(job.plan, image_param, early)
        start = result.image[0]
    final = jobs[-1]
    finish = None
    if style.original_colors:
        finish = functools.partial(original_colours, content_image=final.content_image)
    stage_sizes = {"stage_sizes": [list(job.hw) for job in jobs]} if len(jobs) > 1 else {}
    settings_record = {**dataclasses.asdict(style), **(record or {}), **final.record, **stage_sizes}
    return render_result(
        final.plan,
        _style_param(final, settings, start),
        settings,
        settings_record,
        finish=finish,
        snapshot_to=snapshot_to,
    )


def _style_param(job: StyleJob, settings: RenderSettings, start: np.ndarray | None):
    init = None if start is None else resized(start, job.hw)[None]
    return make_param(
        settings.param, 1, job.hw, seed=settings.seed, decorrelate=settings.decorrelate, init=init
    )


def visualize(
    backbone: Backbone,
    specs: Sequence[str],
    size: int | tuple[int, int],
    settings: RenderSettings = RenderSettings(transforms="standard", steps=512),
    relu_redirect_steps: int = RELU_REDIRECT_STEPS,
    record: Mapping[str, Any] | None = None,
    *,
    copies: int = 1,
    init_image: np.ndarray | None = None,
    snapshot_to: str | Path | None = None,
) -> outputs.Result:
    """Activation maximisation of the units ``specs`` name, one image each, as a labelled sheet,
    of ``size`` pixels square or ``(height, width)``.

    ``copies`` renders each unit from that many random starts (one batch); ``init_image``
    starts every image from that picture instead of noise. A network that runs at one input
    size only (see :mod:`paramviz.backbones.input_size`) gets each transformed batch resized to
    it, so ``size`` is free.
    """
    hw = (size, size) if is_whole(size) else tuple(size)
    check_setting(
        "size",
        len(hw) == 2 and all(is_whole(side) and side >= 1 for side in hw),
        "a whole number of pixels >= 1, or (height, width)",
        size,
    )
    layers = objectives.spec_layers(specs)
    shapes = backbone.check_layers(layers, fixed_input_size(backbone, layers) or hw)
    check_channel_ranges(specs, shapes)
    objective, units = objectives.batch_objective(specs, copies)
    if settings.tv_weight:
        objective = objective - settings.tv_weight * objectives.total_variation(objectives.IMAGE)
    plan = plan_render(objective, backbone, len(units), hw, settings)
    init = None if init_image is None else np.repeat(resized(init_image, hw)[None], len(units), 0)
    image_param = make_param(
        settings.param,
        len(units),
        hw,
        seed=settings.seed,
        decorrelate=settings.decorrelate,
        init=init,
    )
    extra = {"objective": list(specs), "units": units, "size": size, **(record or {})}
    extra["relu_redirect_steps"] = relu_redirect_steps
    return render_result(
        plan,
        image_param,
        settings,
        extra,
        labels=units,
        relu_redirect_steps=relu_redirect_steps,
        snapshot_to=snapshot_to,
    )


def check_channel_ranges(specs: Sequence[str], shapes: Mapping[str, tuple[int, ...]]) -> None:
    """A channel range (``layer:0-15``) past its layer's channels (``shapes``, from the layer
    check) fails before it is expanded into one objective per channel (``relu3_1:0-99999999``
    would be a hundred million)."""
    for found in channel_ranges(specs):
        channels = shapes[found.layer][-1]
        if found.stop >= channels:
            raise UserError(
                f"channel range {found.text!r} goes past the {channels} channels of "
                f"{found.layer} (0-{channels - 1})"
            )


def network_transform(
    transforms: render.Transform | str | None, backbone: Backbone, layers: Sequence[str]
) -> render.Transform:
    """The random transforms, then a resize to the network's input size when ``layers`` are
    reached through a linear layer on a flattened map (that network runs at one size only)."""
    transform = render.resolve_transforms(transforms)
    fixed = fixed_input_size(backbone, layers)
    if fixed is None:
        return transform
    return transforms_lib.compose(transform, transforms_lib.resize_to(*fixed))


@dataclasses.dataclass(frozen=True)
class RenderPlan:
    """A render request, worked out once and checked before anything is built: the objective,
    the networks it reads (``main`` first), the layers it needs of each and the transform the
    images go through (with the resize to the input size of a network that runs at one size
    only). :func:`plan_render` checks it; :func:`run_render` executes it."""

    objective: objectives.Objective
    networks: dict[str, Backbone]
    layers: dict[str, tuple[str, ...]]
    transform: render.Transform

    @property
    def backbone(self) -> Backbone:
        return self.networks[objectives.MAIN]


def plan_render(
    objective: objectives.Objective,
    backbone: Backbone,
    batch: int,
    hw: tuple[int, int],
    settings: RenderSettings,
    transforms: render.Transform | None = None,
    networks: Mapping[str, Backbone] | None = None,
) -> RenderPlan:
    """The :class:`RenderPlan` of ``batch`` images of ``hw`` through ``transforms`` (default:
    the settings' preset); ``networks``: the others the objective reads (a separate content
    network). Before any array is built: the memory estimate (:mod:`paramviz.budget`, of the
    main network) against what the machine has (unless ``settings.force``), and every index the
    objective takes."""
    nets = {objectives.MAIN: backbone, **(networks or {})}
    layers = render.required_layers(objective, nets)
    transform = network_transform(
        transforms or settings.transforms, backbone, layers[objectives.MAIN]
    )
    needs = budget.render_needs(
        backbone,
        layers[objectives.MAIN],
        batch,
        hw,
        transform,
        steps=settings.steps,
        snapshots=len(settings.thresholds()),
    )
    what = f"rendering {batch} image(s) of {hw[0]}x{hw[1]} with {backbone.arch}"
    budget.check_fits(needs.bytes, what, settings.force)
    objective.check_indices({objectives.MAIN: needs.shapes})
    return RenderPlan(objective, nets, layers, transform)


def output_files(output: str | Path, settings: RenderSettings) -> list[Path]:
    """Every file a render with ``settings`` writes: the picture first, then its sidecar, its
    GIF and its snapshots (so they can all be checked against the inputs beforehand)."""
    thresholds = settings.thresholds()
    files = outputs.result_paths(output, gif=bool(thresholds))
    return [*files.values(), *(outputs.snapshot_path(output, step) for step in thresholds)]


def run_render(
    plan: RenderPlan, image_param: param.ImageParam, settings: RenderSettings, **render_options: Any
) -> render.RenderResult:
    """:func:`paramviz.render.render` of ``plan`` with ``settings``."""
    return render.render(
        plan.objective,
        image_param,
        plan.backbone,
        transforms=plan.transform,
        layers=plan.layers,
        backbones={k: v for k, v in plan.networks.items() if k != objectives.MAIN} or None,
        steps=settings.steps,
        optimizer=settings.optimizer,
        learning_rate=settings.lr,
        seed=settings.seed,
        thresholds=settings.thresholds(),
        progress=settings.progress,
        **render_options,
    )


def render_result(
    plan: RenderPlan,
    image_param: param.ImageParam,
    settings: RenderSettings,
    record: Mapping[str, Any],
    *,
    labels: Sequence[str] | None = None,
    finish: Callable[[np.ndarray], np.ndarray] | None = None,
    snapshot_to: str | Path | None = None,
    **render_options: Any,
) -> outputs.Result:
    """Render ``plan`` with ``settings`` into a :class:`~paramviz.outputs.Result` whose sidecar
    records ``settings`` and ``record``; ``finish`` maps every picture (e.g.
    :func:`original_colours`); ``snapshot_to``: write each snapshot beside that path as soon as
    it is reached."""
    finish = finish or np.asarray

    def save_snapshot(step: int, image: np.ndarray, loss: float) -> None:
        save_png(outputs.snapshot_path(snapshot_to, step), outputs.picture(finish(image), labels))

    result = run_render(
        plan,
        image_param,
        settings,
        callback=save_snapshot if snapshot_to is not None and settings.thresholds() else None,
        **render_options,
    )
    snapshots = {step: finish(images) for step, images in result.snapshots.items()}
    result = dataclasses.replace(result, image=finish(result.image), snapshots=snapshots)
    written = {**dataclasses.asdict(settings), **record}
    labels = None if labels is None else tuple(labels)
    snapshots_at = None if snapshot_to is None else Path(snapshot_to)
    return outputs.Result(result, written, plan.networks, labels, snapshots_at)
