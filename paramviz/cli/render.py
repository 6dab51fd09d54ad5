"""``paramviz style``, ``texture`` and ``visualize``: flags → :mod:`paramviz.tasks` calls.

The three commands share one flag set; each handler resolves ``--weights``, reads the pictures,
builds :class:`~paramviz.tasks.RenderSettings` and prints the files the task wrote.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from paramviz.cli.checks import (
    add_force_flag,
    add_max_pixels_flag,
    count,
    number,
    numbers,
    positive,
    rate,
    seed,
    sizes,
    weight,
    whole,
)
from paramviz.cli.common import add_command, add_progress_flags, from_flags, split_list
from paramviz.errors import UserError
from paramviz.settings import RenderSettings, StyleSettings, default
from paramviz.vocabulary import (
    DEFAULT_SIZE,
    JOB_DEFAULTS,
    OBJECTIVE_KINDS,
    OPTIMIZERS,
    PARAMETERISATIONS,
    RELU_REDIRECT_STEPS,
    SMOOTHING,
    STYLE_LOSSES,
    STYLE_SCALE,
    TRANSFORM_PRESETS,
)

IMAGE_START = "image:"
MAX_STYLE_SCALE = 8.0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``style``, ``texture`` and ``visualize``."""
    style = add_command(subparsers, "style", run_style)
    style.add_argument("--content", required=True, help="content image (PNG/JPEG)")
    add_style_pictures_flags(style)
    add_render_flags(style, **JOB_DEFAULTS["style"], output="style.png")
    add_style_flags(style)
    style.add_argument(
        "--original-colors",
        action="store_true",
        help="keep the content's colours: the result's luminance with the content's chroma "
        "(YIQ), as neural-style's -original_colors 1",
    )
    add_max_pixels_flag(style)

    texture = add_command(subparsers, "texture", run_texture)
    add_style_pictures_flags(texture)
    add_render_flags(texture, **JOB_DEFAULTS["texture"], output="texture.png")
    add_style_flags(texture)
    add_max_pixels_flag(texture)

    sheet = add_command(subparsers, "sheet", run_sheet)
    sheet.add_argument("pictures", nargs="+", help="pictures, tiled row by row in this order")
    sheet.add_argument("--labels", help="one label per picture, comma-separated")
    sheet.add_argument("--columns", type=whole(1), help="pictures per row (default: all in one)")
    sheet.add_argument("-o", "--output", required=True, help="the sheet, a .png")
    add_max_pixels_flag(sheet)

    visualize = add_command(subparsers, "visualize", run_visualize)
    visualize.add_argument(
        "--objective",
        action="append",
        required=True,
        metavar="OBJECTIVE",
        help="what to maximise (repeatable): 'layer:channel' (e.g. layer4:12), a channel range "
        "'layer:0-15' or a comma-separated list, one image each; or "
        + "; ".join(f"'{e.grammar or e.name}': {e.help}" for e in OBJECTIVE_KINDS),
    )
    add_render_flags(visualize, **JOB_DEFAULTS["visualize"], output="visualize.png", rectangle=True)
    visualize.add_argument(
        "--batch",
        type=positive,
        default=1,
        metavar="N",
        help="render every objective from N random starts (with diversity: N different ones)",
    )
    visualize.add_argument(
        "--relu-redirect-steps",
        type=count,
        default=RELU_REDIRECT_STEPS,
        help="Lucid's redirected ReLU",
    )
    add_max_pixels_flag(visualize)


def add_style_pictures_flags(parser: argparse.ArgumentParser) -> None:
    """``--style`` (one picture or several), their blend, their scale and ``--sizes``."""
    parser.add_argument(
        "--style",
        required=True,
        help="style image (PNG/JPEG), or several separated by commas: their Gram targets are "
        "blended (neural-style's -style_image a.jpg,b.jpg)",
    )
    parser.add_argument(
        "--style-blend-weights",
        type=numbers,
        metavar="W1,W2,...",
        help="one weight per style image (default: equal); they are normalised to sum to 1",
    )
    parser.add_argument(
        "--style-scale",
        type=number(above=0.0, maximum=MAX_STYLE_SCALE),
        default=STYLE_SCALE,
        help="read the style images at this times the output size (neural-style's -style_scale)",
    )
    parser.add_argument(
        "--sizes",
        type=sizes,
        metavar="S1,S2,...",
        help="render in stages of these sizes (longer side, increasing), each starting from the "
        "one before upsampled; replaces --size",
    )


def add_render_flags(
    parser: argparse.ArgumentParser,
    *,
    init: str,
    transforms: str,
    steps: int,
    output: str,
    rectangle: bool = False,
) -> None:
    """The flags every render command shares; ``rectangle``: ``--size`` also takes ``H W``."""
    parser.add_argument("--backbone", help="architecture (checked against the weights)")
    parser.add_argument(
        "--weights",
        help="converted .safetensors file, a registry name (see `paramviz weights list`), "
        "or 'random' for random weights of --backbone; left out, the best real weights on "
        "this machine, chosen as the demo chooses them (said when used)",
    )
    parser.add_argument("--pooling", choices=("max", "avg"), help="VGG pooling (Gatys: avg)")
    parser.add_argument(
        "--param",
        choices=PARAMETERISATIONS.names(),
        default=default(RenderSettings, "param"),
        help="image parameterisation: "
        + "; ".join(f"{e.name}: {e.help}" for e in PARAMETERISATIONS),
    )
    parser.add_argument(
        "--decorrelate",
        action=argparse.BooleanOptionalAction,
        default=default(RenderSettings, "decorrelate"),
        help="Lucid's decorrelated colour space",
    )
    parser.add_argument(
        "--transforms",
        choices=TRANSFORM_PRESETS.names(),
        default=transforms,
        help="random transforms each step (standard: Lucid's pad, jitter, scale, rotate)",
    )
    parser.add_argument("--steps", type=count, default=steps, help="optimiser steps")
    if rectangle:
        parser.add_argument(
            "--size",
            type=positive,
            nargs="+",
            default=[DEFAULT_SIZE],
            metavar="S | H W",
            help="picture size in pixels: S for S x S, or height and width",
        )
    else:
        parser.add_argument(
            "--size", type=positive, default=DEFAULT_SIZE, help="longer image side in pixels"
        )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMIZERS.names(),
        default=default(RenderSettings, "optimizer"),
        help="optimiser",
    )
    parser.add_argument(
        "--lr", type=rate, default=default(RenderSettings, "lr"), help="Adam learning rate"
    )
    parser.add_argument(
        "--seed",
        type=seed,
        default=default(RenderSettings, "seed"),
        help="seed of the random start and the transforms, 0 to 2**32 - 1",
    )
    parser.add_argument(
        "--init",
        type=start,
        default=init,
        metavar="{content,noise,image:PATH}",
        help="starting picture: the content image, noise, or the picture at PATH",
    )
    parser.add_argument(
        "--save-every",
        type=count,
        default=default(RenderSettings, "save_every"),
        metavar="N",
        help="also save a snapshot PNG every N steps (and an animated GIF)",
    )
    parser.add_argument(
        "--tv-weight",
        type=weight,
        default=default(RenderSettings, "tv_weight"),
        help="total-variation penalty on the picture (default 0: off); summed over its pixels, "
        "so its pull grows with the picture's size (neural-style's default 1e-3 is on another "
        "scale)",
    )
    parser.add_argument("-o", "--output", default=output, help="output PNG (sidecar: .json)")
    add_progress_flags(parser)
    add_force_flag(parser)


def add_style_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``style`` and ``texture``."""
    parser.add_argument("--style-layers", help="comma-separated (default: the backbone's preset)")
    parser.add_argument("--content-layers", help="comma-separated (default: the preset)")
    parser.add_argument(
        "--style-weight",
        type=weight,
        default=default(StyleSettings, "style_weight"),
        help="weight of the style loss",
    )
    parser.add_argument(
        "--content-weight",
        type=weight,
        default=default(StyleSettings, "content_weight"),
        help="weight of the content loss",
    )
    parser.add_argument(
        "--style-loss",
        choices=STYLE_LOSSES,
        default=default(StyleSettings, "style_loss"),
        help="l1 (Lucid) or mse (Gatys)",
    )
    parser.add_argument(
        "--smooth-activations",
        choices=SMOOTHING,
        default=default(StyleSettings, "smoothing"),
        help="SWAG: a softmax over each layer's activations before the Gram and content losses, "
        "across channels at every position or over the whole tensor",
    )


def render_settings(args: argparse.Namespace):
    """The :class:`~paramviz.tasks.RenderSettings` the shared flags describe."""
    from paramviz.tasks import RenderSettings

    return from_flags(RenderSettings, args)


def choose_weights(args: argparse.Namespace) -> None:
    """``--weights`` left out: the best real weights already on this machine, as the demo
    chooses them but without downloading anything; the choice is printed."""
    if args.weights is not None:
        return
    from paramviz.weights.local import default_weights

    found = default_weights()
    args.weights = str(found.path)
    print(f"--weights not given: using {found.why}\n  {found.path}")


def start(text: str) -> str:
    """An argparse type for ``--init``: ``content``, ``noise`` or ``image:PATH``."""
    if text in ("content", "noise") or (text.startswith(IMAGE_START) and text[len(IMAGE_START) :]):
        return text
    raise argparse.ArgumentTypeError(f"expected content, noise or image:PATH, got {text!r}")


def init_path(args: argparse.Namespace) -> Path | None:
    """The picture ``--init image:PATH`` names, else None."""
    if args.init.startswith(IMAGE_START):
        return Path(args.init[len(IMAGE_START) :])
    return None


def style_paths(args: argparse.Namespace) -> list[Path]:
    """The style pictures ``--style a.png,b.png`` names, with as many blend weights."""
    paths = [Path(name) for name in split_list(args.style) or ()]
    if not paths:
        raise UserError("--style names no picture")
    blend = args.style_blend_weights
    if blend is not None and len(blend) != len(paths):
        raise UserError(
            f"--style-blend-weights gives {len(blend)} weights for {len(paths)} style pictures"
        )
    return paths


def check_render_output(args: argparse.Namespace, *inputs: str | Path | None) -> None:
    """Before any work: the picture (PNG, JPEG or WebP), its sidecar, GIF and snapshots
    (``.json``, ``.gif``, ``.png``) overwrite no input (the pictures, the start picture, the
    weights file), in a writable folder."""
    from paramviz.io import PICTURE_FORMATS, check_not_inputs, check_output
    from paramviz.tasks import output_files
    from paramviz.weights.resolve import weights_path

    sources = [*inputs, init_path(args), weights_path(args.weights)]
    check_output(args.output, tuple(PICTURE_FORMATS), inputs=sources)
    check_not_inputs(output_files(args.output, render_settings(args))[1:], sources)


def job_options(args: argparse.Namespace, settings: tuple[str, ...]) -> dict[str, Any]:
    """The keywords of a :mod:`paramviz.jobs` call that the flags give: every setting in
    ``settings`` plus the inputs (the output path takes the snapshots as they come)."""
    options = {key: getattr(args, key) for key in settings if hasattr(args, key)}
    return {
        **options,
        "backbone": args.backbone,
        "pooling": args.pooling,
        "max_pixels": args.max_pixels,
        "snapshot_to": args.output,
        "init_image": init_path(args),
    }


def _style_like(args: argparse.Namespace, content: Path | None) -> int:
    from paramviz import jobs

    styles = style_paths(args)
    choose_weights(args)
    check_render_output(args, *styles, content)
    options = job_options(args, jobs.RENDER_KEYS + jobs.STYLE_KEYS + ("sizes", "style_scale"))
    options.update(
        style_layers=split_list(args.style_layers),
        content_layers=split_list(args.content_layers),
        init="image" if init_path(args) else args.init,
        smoothing=args.smooth_activations,
    )
    if content is None:
        result = jobs.texture(styles, weights=args.weights, size=args.size, **options)
    else:
        result = jobs.style_transfer(
            content, styles, weights=args.weights, size=args.size, **options
        )
    print_files(result.save(args.output))
    return 0


def run_style(args: argparse.Namespace) -> int:
    """Neural style transfer (Gatys et al.)."""
    return _style_like(args, Path(args.content))


def run_texture(args: argparse.Namespace) -> int:
    """Texture synthesis from noise."""
    if args.init == "content":
        raise UserError(
            "texture synthesis starts from noise; --init content needs `paramviz style`"
        )
    return _style_like(args, None)


def run_visualize(args: argparse.Namespace) -> int:
    """Activation maximisation (channels, neurons, logits).

    Render every --objective, one image each; several objectives, a range
    or --batch render as one batch and a labelled contact sheet."""
    from paramviz import jobs

    if args.init == "content":
        raise UserError("visualize starts from noise or --init image:PATH; it has no content")
    if len(args.size) > 2:
        raise UserError(f"--size takes S or H W, not {len(args.size)} numbers")
    choose_weights(args)
    check_render_output(args)
    result = jobs.visualize(
        args.objective,
        weights=args.weights,
        size=args.size[0] if len(args.size) == 1 else tuple(args.size),
        batch=args.batch,
        relu_redirect_steps=args.relu_redirect_steps,
        **job_options(args, jobs.RENDER_KEYS),
    )
    print_files(result.save(args.output))
    return 0


def run_sheet(args: argparse.Namespace) -> int:
    """Put pictures side by side, labelled, in one PNG.

    Tile pictures (e.g. one unit rendered by a network and by its robust twin) on one labelled
    sheet; pictures of other sizes are resized to the first one's."""
    import numpy as np

    from paramviz.io import check_output, read_image, save_png
    from paramviz.outputs import contact_sheet
    from paramviz.tasks import resized

    labels = split_list(args.labels) if args.labels else None
    if labels is not None and len(labels) != len(args.pictures):
        raise UserError(f"{len(labels)} --labels for {len(args.pictures)} pictures")
    output = check_output(args.output, ".png", inputs=args.pictures)
    pictures = [read_image(path, max_pixels=args.max_pixels) for path in args.pictures]
    pictures = [resized(picture, pictures[0].shape[:2]) for picture in pictures]
    columns = args.columns or len(pictures)
    print(save_png(output, contact_sheet(np.stack(pictures), labels, columns)))
    return 0


def print_files(files: dict[str, Path]) -> None:
    for kind, path in files.items():
        print(f"{kind}: {path}")
