"""``paramviz style``, ``texture`` and ``visualize``: flags → :mod:`paramviz.tasks` calls.

The three commands share one flag set; each handler resolves ``--weights``, reads the pictures,
builds :class:`~paramviz.tasks.RenderSettings` and prints the files the task wrote.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from paramviz.cli.common import add_command, split_list
from paramviz.errors import UserError

TRANSFORM_PRESETS = ("none", "standard", "mild")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``style``, ``texture`` and ``visualize``."""
    style = add_command(
        subparsers, "style", "neural style transfer", "Neural style transfer (Gatys et al.)."
    )
    style.add_argument("--content", required=True, help="content image (PNG/JPEG)")
    style.add_argument("--style", required=True, help="style image (PNG/JPEG)")
    add_render_flags(style, init="content", transforms="none", steps=300, output="style.png")
    add_style_flags(style)
    style.set_defaults(run=run_style)

    texture = add_command(
        subparsers, "texture", "texture synthesis from noise", "Texture synthesis from noise."
    )
    texture.add_argument("--style", required=True, help="texture/style image (PNG/JPEG)")
    add_render_flags(texture, init="noise", transforms="none", steps=300, output="texture.png")
    add_style_flags(texture)
    texture.set_defaults(run=run_texture)

    visualize = add_command(
        subparsers,
        "visualize",
        "activation maximisation (channels, neurons, logits)",
        "Activation maximisation. OBJECTIVE is 'layer:channel' (e.g. layer4:12), a channel "
        "range 'layer:0-15', 'neuron:layer:channel' or 'logit:class'. Several objectives or a "
        "range render as one batch and a labelled contact sheet.",
    )
    visualize.add_argument("--objective", action="append", required=True, metavar="OBJECTIVE")
    add_render_flags(
        visualize, init="noise", transforms="standard", steps=512, output="visualize.png"
    )
    visualize.add_argument(
        "--relu-redirect-steps", type=int, default=16, help="Lucid's redirected ReLU"
    )
    visualize.set_defaults(run=run_visualize)


def add_render_flags(
    parser: argparse.ArgumentParser, *, init: str, transforms: str, steps: int, output: str
) -> None:
    """The flags every render command shares."""
    parser.add_argument("--backbone", help="architecture (checked against the weights)")
    parser.add_argument(
        "--weights",
        required=True,
        help="converted .safetensors file, a registry name (see `paramviz weights list`), "
        "or 'random' for random weights of --backbone",
    )
    parser.add_argument("--pooling", choices=("max", "avg"), help="VGG pooling (Gatys: avg)")
    parser.add_argument(
        "--param",
        choices=("pixel", "fourier"),
        default="fourier",
        help="image parameterisation: pixels or Lucid's decorrelated Fourier spectrum",
    )
    parser.add_argument(
        "--decorrelate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Lucid's decorrelated colour space",
    )
    parser.add_argument(
        "--transforms",
        choices=TRANSFORM_PRESETS,
        default=transforms,
        help="random transforms each step (standard: Lucid's pad, jitter, scale, rotate)",
    )
    parser.add_argument("--steps", type=int, default=steps, help="optimiser steps")
    parser.add_argument("--size", type=int, default=256, help="longer image side in pixels")
    parser.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam", help="optimiser")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random start and the transforms"
    )
    parser.add_argument(
        "--init", choices=("content", "noise"), default=init, help="starting picture"
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="also save a snapshot PNG every N steps (and an animated GIF)",
    )
    parser.add_argument(
        "--tv-weight", type=float, default=0.0, help="total-variation penalty on the picture"
    )
    parser.add_argument("-o", "--output", default=output, help="output PNG (sidecar: .json)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_style_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``style`` and ``texture``."""
    parser.add_argument("--style-layers", help="comma-separated (default: the backbone's preset)")
    parser.add_argument("--content-layers", help="comma-separated (default: the preset)")
    parser.add_argument("--style-weight", type=float, default=1.0, help="weight of the style loss")
    parser.add_argument(
        "--content-weight", type=float, default=1.0, help="weight of the content loss"
    )
    parser.add_argument(
        "--style-loss", choices=("l1", "mse"), default="l1", help="l1 (Lucid) or mse (Gatys)"
    )


def render_settings(args: argparse.Namespace):
    """The :class:`~paramviz.tasks.RenderSettings` the shared flags describe."""
    from paramviz.tasks import RenderSettings

    return RenderSettings(
        param=args.param,
        decorrelate=args.decorrelate,
        transforms=args.transforms,
        steps=args.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
        save_every=args.save_every,
        tv_weight=args.tv_weight,
        progress=not args.quiet,
    )


def flag_record(args: argparse.Namespace) -> dict[str, Any]:
    """Every flag as given, for the sidecar (so the command can be run again)."""
    return {key: value for key, value in vars(args).items() if key != "run"}


def _backbone(args: argparse.Namespace):
    from weights.resolve import resolve_backbone

    return resolve_backbone(args.weights, args.backbone, pooling=args.pooling)


def _style_like(args: argparse.Namespace, content: Path | None) -> int:
    from paramviz.io import read_image
    from paramviz.tasks import StyleSettings, style_transfer

    backbone = _backbone(args)
    style_image = read_image(args.style, args.size)
    content_image = read_image(content, args.size) if content is not None else None
    style = StyleSettings(
        style_layers=split_list(args.style_layers),
        content_layers=split_list(args.content_layers),
        style_weight=args.style_weight,
        content_weight=args.content_weight,
        style_loss=args.style_loss,
        init=args.init,
    )
    files = style_transfer(
        backbone,
        style_image,
        content_image,
        args.output,
        render_settings(args),
        style,
        flag_record(args),
    )
    print_files(files)
    return 0


def run_style(args: argparse.Namespace) -> int:
    return _style_like(args, Path(args.content))


def run_texture(args: argparse.Namespace) -> int:
    if args.init == "content":
        raise UserError(
            "texture synthesis starts from noise; --init content needs `paramviz style`"
        )
    return _style_like(args, None)


def run_visualize(args: argparse.Namespace) -> int:
    from paramviz.tasks import visualize

    files = visualize(
        _backbone(args),
        args.objective,
        args.output,
        args.size,
        render_settings(args),
        relu_redirect_steps=args.relu_redirect_steps,
        record=flag_record(args),
    )
    print_files(files)
    return 0


def print_files(files: dict[str, Path]) -> None:
    for kind, path in files.items():
        print(f"{kind}: {path}")
