"""``paramviz demo``: a style transfer, a texture and a neuron visualisation, offline.

Weights, best first: the real normalised VGG-19 trunk (converted once into the cache from
``$PARAMVIZ_SHARED/weights`` or ``../shared/weights`` beside the checkout), else a small texture
network trained on scikit-image's textures (cached after the first run). Inputs are scikit-image's
bundled pictures, so nothing is downloaded. Each picture is made by the same library functions a
command line calls, and the equivalent command is printed so it can be re-run by hand.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from paramviz.cli.common import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    demo = add_command(
        subparsers,
        "demo",
        "render a style transfer, a texture and a neuron visualisation offline",
        "Render a style transfer, a texture and a sheet of channel visualisations "
        "from scikit-image's pictures, with the best weights this machine has, and print "
        "where they are.",
    )
    demo.add_argument("-o", "--output", default="paramviz-demo", help="output folder")
    demo.add_argument("--steps", type=int, default=200, help="optimiser steps per picture")
    demo.add_argument("--size", type=int, default=160, help="picture size in pixels")
    demo.set_defaults(run=run_demo)


def demo_weights() -> Path:
    """A converted weights file for the demo, making it if needed (see the module docstring)."""
    from weights.local import real_vgg_trunk

    trunk = real_vgg_trunk()
    if trunk is not None:
        return trunk
    from experiments.train import ensure_demo_backbone

    print("no real weights found: using a small texture network trained on scikit-image textures")
    return ensure_demo_backbone(progress=True)


def write_inputs(folder: Path) -> tuple[Path, Path]:
    """Content (chelsea the cat) and style (a stained-tissue micrograph) from scikit-image."""
    from skimage import data

    from paramviz.io import save_png

    content = save_png(folder / "content.png", data.chelsea() / 255.0)
    style = save_png(folder / "style.png", data.immunohistochemistry() / 255.0)
    return content, style


def run_demo(args: argparse.Namespace) -> int:
    run(Path(args.output), steps=args.steps, size=args.size)
    return 0


def run(folder: Path, *, steps: int = 200, size: int = 160) -> dict[str, Path]:
    """Render the three pictures into ``folder`` and say where they are."""
    from paramviz import tasks
    from paramviz.backbones import load
    from paramviz.io import read_image

    folder.mkdir(parents=True, exist_ok=True)
    weights = demo_weights()
    backbone = load(weights)
    content, style = write_inputs(folder)
    relus = [name for name in backbone.layer_names if name.startswith("relu")]
    units = f"{relus[-1]}:0-3"
    channel_size = min(size, 112)
    common = ["--weights", str(weights), "--steps", str(steps)]
    settings = tasks.RenderSettings(steps=steps)
    made = {}

    def announce(title: str, argv: list[str]) -> None:
        print(f"\n== {title}\n$ paramviz {shlex.join(argv)}")

    output = folder / "style_transfer.png"
    argv = ["style", "--content", str(content), "--style", str(style), *common]
    announce(
        "style transfer", [*argv, "--size", str(size), "--style-weight", "10", "-o", str(output)]
    )
    tasks.style_transfer(
        backbone,
        read_image(style, size),
        read_image(content, size),
        output,
        settings,
        tasks.StyleSettings(style_weight=10.0),
    )
    made["style transfer"] = output

    output = folder / "texture.png"
    announce(
        "texture",
        ["texture", "--style", str(style), *common, "--size", str(size), "-o", str(output)],
    )
    tasks.style_transfer(
        backbone, read_image(style, size), None, output, settings, tasks.StyleSettings(init="noise")
    )
    made["texture"] = output

    output = folder / "channels.png"
    announce(
        "neuron visualisation",
        [
            "visualize",
            "--objective",
            units,
            *common,
            "--size",
            str(channel_size),
            "-o",
            str(output),
        ],
    )
    tasks.visualize(
        backbone,
        [units],
        output,
        channel_size,
        tasks.RenderSettings(transforms="standard", steps=steps),
    )
    made["neuron visualisation"] = output

    print("\nDone. Pictures (each with a .json sidecar that records how to re-make it):")
    for title, path in made.items():
        print(f"  {title:22s} {path.resolve()}")
    return made
