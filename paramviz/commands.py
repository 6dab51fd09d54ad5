"""Sub-commands that render: ``style``, ``texture``, ``visualize`` and ``demo``.

The three render commands share one flag set and one path: resolve the backbone, build the
parameterisation, build the objective, :func:`paramviz.render.render`, save the picture with its
JSON sidecar. Heavy imports (jax) happen inside the handlers so ``paramviz --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paramviz.errors import UserError

TRANSFORM_PRESETS = ("none", "standard", "mild")


def register(subparsers) -> None:
    """Add ``style``, ``texture``, ``visualize`` and ``demo``."""
    style = subparsers.add_parser(
        "style", help="neural style transfer", description="Neural style transfer (Gatys et al.)."
    )
    style.add_argument("--content", required=True, help="content image (PNG/JPEG)")
    style.add_argument("--style", required=True, help="style image (PNG/JPEG)")
    _add_render_flags(style, init="content", transforms="none", steps=300, output="style.png")
    _add_style_flags(style)
    style.set_defaults(run=run_style)

    texture = subparsers.add_parser(
        "texture", help="texture synthesis from noise", description="Texture synthesis from noise."
    )
    texture.add_argument("--style", required=True, help="texture/style image (PNG/JPEG)")
    _add_render_flags(texture, init="noise", transforms="none", steps=300, output="texture.png")
    _add_style_flags(texture)
    texture.set_defaults(run=run_texture)

    visualize = subparsers.add_parser(
        "visualize",
        help="activation maximisation (channels, neurons, logits)",
        description=(
            "Activation maximisation. OBJECTIVE is 'layer:channel' (e.g. layer4:12), a channel "
            "range 'layer:0-15', 'neuron:layer:channel' or 'logit:class'. Several objectives or a "
            "range render as one batch and a labelled contact sheet."
        ),
    )
    visualize.add_argument("--objective", action="append", required=True, metavar="OBJECTIVE")
    _add_render_flags(
        visualize, init="noise", transforms="standard", steps=512, output="visualize.png"
    )
    visualize.add_argument(
        "--relu-redirect-steps", type=int, default=16, help="Lucid's redirected ReLU (default 16)"
    )
    visualize.set_defaults(run=run_visualize)

    demo = subparsers.add_parser(
        "demo", help="render a style transfer, a texture and a neuron visualisation offline"
    )
    demo.add_argument("-o", "--output", default="paramviz-demo", help="output folder")
    demo.add_argument("--steps", type=int, default=200)
    demo.add_argument("--size", type=int, default=160)
    demo.set_defaults(run=run_demo)


# --------------------------------------------------------------------------------------- flags


def _add_render_flags(
    parser: argparse.ArgumentParser, *, init: str, transforms: str, steps: int, output: str
) -> None:
    parser.add_argument("--backbone", help="architecture (checked against the weights)")
    parser.add_argument(
        "--weights",
        required=True,
        help="converted .safetensors file, a registry name (see `paramviz weights list`), "
        "or 'random' for random weights of --backbone",
    )
    parser.add_argument("--pooling", choices=("max", "avg"), help="VGG pooling (Gatys: avg)")
    parser.add_argument("--param", choices=("pixel", "fourier"), default="fourier")
    parser.add_argument(
        "--decorrelate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Lucid's decorrelated colour space (default on)",
    )
    parser.add_argument("--transforms", choices=TRANSFORM_PRESETS, default=transforms)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--size", type=int, default=256, help="longer image side in pixels")
    parser.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", choices=("content", "noise"), default=init)
    parser.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="also save a snapshot PNG every N steps (and an animated GIF)",
    )
    parser.add_argument("--tv-weight", type=float, default=0.0)
    parser.add_argument("-o", "--output", default=output, help="output PNG (sidecar: .json)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_style_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--style-layers", help="comma-separated (default: the backbone's preset)")
    parser.add_argument("--content-layers", help="comma-separated (default: the preset)")
    parser.add_argument("--style-weight", type=float, default=1.0)
    parser.add_argument("--content-weight", type=float, default=1.0)
    parser.add_argument(
        "--style-loss", choices=("l1", "mse"), default="l1", help="l1 (Lucid) or mse (Gatys)"
    )


# ------------------------------------------------------------------------------------ backbone


def resolve_backbone(weights: str, arch: str | None = None, **overrides: Any):
    """The backbone named by ``--weights`` (a file, a registry name or 'random')."""
    import jax

    from paramviz import backbones

    if weights == "random":
        if not arch:
            raise UserError("--weights random needs --backbone ARCH")
        return backbones.init(arch, jax.random.PRNGKey(0), **overrides)
    path = Path(weights)
    if not path.suffix:
        from weights import registry

        entry = registry.get(weights)  # UserError with suggestions for unknown names
        path = registry.converted_path(entry.name)
        if not path.is_file():
            raise UserError(
                f"weights {entry.name!r} are not in the cache ({path}); "
                f"run `paramviz weights fetch {entry.name}` first"
            )
    backbone = backbones.load(path)
    if arch and arch != backbone.arch:
        raise UserError(f"{path} holds weights for {backbone.arch!r}, not for --backbone {arch!r}")
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if overrides:
        module = backbones.create(backbone.arch, **{**backbone.module.options(), **overrides})
        backbone = dataclasses.replace(backbone, module=module)
    return backbone


def check_layers(backbone, layers: Sequence[str], image_hw: tuple[int, int]) -> None:
    """Unknown layers, or an image too small to reach them, fail before any work."""
    import jax
    import jax.numpy as jnp

    backbone.module.check_layers(layers)  # UserError listing valid names
    images = jax.ShapeDtypeStruct((1, *image_hw, 3), jnp.float32)
    try:
        shapes = jax.eval_shape(lambda x: backbone(x, layers), images)
    except (TypeError, ValueError) as err:
        raise UserError(
            f"a {image_hw[0]}x{image_hw[1]} image is too small for layers "
            f"{', '.join(layers)} of {backbone.arch}: {err}"
        ) from None
    empty = [name for name, s in shapes.items() if 0 in s.shape]
    if empty:
        raise UserError(
            f"a {image_hw[0]}x{image_hw[1]} image is too small for {', '.join(empty)} of "
            f"{backbone.arch}; use a larger --size or earlier layers"
        )


def style_preset(backbone):
    """Gatys for VGGs, Nakano for ResNets; partial networks keep the layers they have."""
    from paramviz import objectives

    available = set(backbone.layer_names)
    if backbone.arch.startswith("resnet"):
        preset = objectives.NAKANO_RESNET50
    elif backbone.arch.startswith("vgg"):
        preset = objectives.GATYS_VGG19
    else:
        relus = [name for name in backbone.layer_names if name.startswith("relu")]
        return relus, relus[-1:]
    style_layers = [layer for layer in preset.style_layers if layer in available]
    content_layers = [layer for layer in preset.content_layers if layer in available]
    return style_layers, content_layers or style_layers[-1:]


# ------------------------------------------------------------------------------------- running


def _split(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def make_param(args, batch: int, hw: tuple[int, int], init=None):
    """The parameterisation the flags ask for, optionally starting from ``init`` images."""
    import jax

    from paramviz import param

    make = param.fourier if args.param == "fourier" else param.pixel
    return make(
        hw, batch, key=jax.random.PRNGKey(args.seed), decorrelate=args.decorrelate, init=init
    )


def _render_and_save(args, objective, image_param, backbone, *, labels=None, extra=None, **kw):
    """Render with the shared flags and write PNG + JSON (+ GIF and snapshots with --save-every)."""
    from paramviz import outputs, render

    output = Path(args.output)
    if output.suffix.lower() != ".png":
        raise UserError(f"--output must end in .png: {output}")
    thresholds = (
        tuple(range(args.save_every, args.steps, args.save_every)) if args.save_every else ()
    )

    def save_snapshot(step, image, loss):
        from paramviz.io import save_png

        save_png(
            output.with_name(f"{output.stem}_step{step:05d}.png"), outputs.picture(image, labels)
        )

    result = render.render(
        objective,
        image_param,
        backbone,
        transforms=args.transforms,
        steps=args.steps,
        optimizer=args.optimizer,
        learning_rate=args.lr,
        seed=args.seed,
        thresholds=thresholds,
        callback=save_snapshot if thresholds else None,
        progress=not args.quiet,
        **kw,
    )
    settings = {key: value for key, value in vars(args).items() if key != "run"}
    settings.update(extra or {})
    files = outputs.save_result(
        result, output, settings, backbones=backbone, labels=labels, gif=bool(thresholds)
    )
    for kind, path in files.items():
        print(f"{kind}: {path}")
    return result


def _style_like(args, content_image):
    """Shared by ``style`` and ``texture``: everything but the starting point."""
    from paramviz import objectives
    from paramviz.io import read_image

    backbone = resolve_backbone(args.weights, args.backbone, pooling=args.pooling)
    style_image = read_image(args.style, args.size)
    preset_style, preset_content = style_preset(backbone)
    style_layers = _split(args.style_layers) or preset_style
    content_layers = (
        (_split(args.content_layers) or preset_content) if content_image is not None else []
    )
    hw = (content_image if content_image is not None else style_image).shape[:2]
    check_layers(backbone, style_layers + content_layers, style_image.shape[:2])
    check_layers(backbone, style_layers + content_layers, hw)
    objective = objectives.style_transfer_objective(
        objectives.content_targets(backbone, content_image, content_layers)
        if content_layers
        else {},
        objectives.style_targets(backbone, style_image, style_layers),
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        style_loss=args.style_loss,
    )
    init = content_image[None] if args.init == "content" and content_image is not None else None
    image_param = make_param(args, 1, hw, init=init)
    extra = {"style_layers": style_layers, "content_layers": content_layers}
    return _render_and_save(args, objective, image_param, backbone, extra=extra)


def run_style(args) -> int:
    from paramviz.io import read_image

    _style_like(args, read_image(args.content, args.size))
    return 0


def run_texture(args) -> int:
    if args.init == "content":
        raise UserError(
            "texture synthesis starts from noise; --init content needs `paramviz style`"
        )
    _style_like(args, None)
    return 0


_RANGE = re.compile(r"^(?P<layer>[\w.]+):(?P<start>\d+)-(?P<stop>\d+)$")


def parse_units(specs: Sequence[str]) -> list[str]:
    """Expand ``layer:0-3`` ranges and comma lists into one objective string per image."""
    units = []
    for spec in specs:
        for item in _split(spec) or []:
            if match := _RANGE.match(item):
                start, stop = int(match["start"]), int(match["stop"])
                if stop < start:
                    raise UserError(f"empty channel range in {item!r}")
                units += [f"{match['layer']}:{c}" for c in range(start, stop + 1)]
            else:
                units.append(item)
    if not units:
        raise UserError("no objective given")
    return units


def unit_objective(unit: str, batch: int | None = None):
    """``layer:c`` (channel), ``neuron:layer:c`` (centre neuron) or ``logit:k`` for one image."""
    from paramviz import objectives

    kind, _, rest = unit.partition(":")
    try:
        if kind == "neuron":
            layer, _, channel = rest.rpartition(":")
            return objectives.neuron(layer, int(channel), batch=batch)
        if kind == "logit":
            return objectives.logit(int(rest), batch=batch)
        layer, _, channel = unit.rpartition(":")
        if layer:
            return objectives.channel(layer, int(channel), batch=batch)
    except ValueError:
        pass
    raise UserError(
        f"cannot read objective {unit!r}: expected 'layer:channel' (e.g. layer4:12), a range "
        "'layer:0-15', 'neuron:layer:channel' or 'logit:class'"
    )


def run_visualize(args) -> int:
    from paramviz import objectives

    backbone = resolve_backbone(args.weights, args.backbone, pooling=args.pooling)
    units = parse_units(args.objective)
    terms = [unit_objective(unit, batch=i) for i, unit in enumerate(units)]
    layers = sorted(
        {layer for term in terms for _, layer in term.layers} - objectives.PSEUDO_LAYERS
    )
    hw = (args.size, args.size)
    check_layers(backbone, layers, hw)
    objective = objectives.Objective.sum(terms)
    if args.tv_weight:
        objective = objective - args.tv_weight * objectives.total_variation(objectives.IMAGE)
    image_param = make_param(args, len(units), hw)
    _render_and_save(
        args,
        objective,
        image_param,
        backbone,
        labels=units,
        relu_redirect_steps=args.relu_redirect_steps,
    )
    return 0


def run_demo(args) -> int:
    from paramviz import demo

    demo.run(Path(args.output), steps=args.steps, size=args.size)
    return 0
