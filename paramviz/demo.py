"""``paramviz demo``: a style transfer, a texture and a neuron visualisation, offline.

Weights, best first: the real normalised VGG-19 trunk (converted once into the cache from
``$PARAMVIZ_SHARED/weights`` or ``../shared/weights`` beside the checkout), else a small texture
network trained on scikit-image's textures (cached after the first run). Inputs are scikit-image's
bundled pictures, so nothing is downloaded. Each picture is made by the same parser and code path
a user's command line takes, and the command is printed so it can be re-run by hand.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from paramviz import paths

REAL_TRUNK = "vgg_normalised_conv3_1.fp16.pth"
REPO = Path(__file__).resolve().parents[1]


def shared_weights_dir() -> Path:
    """Where real weights may lie on a machine without network (../shared/weights/SOURCES.md)."""
    return Path(os.environ.get("PARAMVIZ_SHARED", REPO.parent / "shared")) / "weights"


def demo_weights() -> Path:
    """A converted weights file for the demo, making it if needed (see the module docstring)."""
    converted = paths.converted_dir() / "vgg19-normalised-conv3_1.safetensors"
    if converted.is_file():
        return converted
    source = shared_weights_dir() / REAL_TRUNK
    if source.is_file():
        from weights.convert import convert

        print(f"converting the real VGG-19 trunk {source} -> {converted}")
        return convert(source, converted)
    from experiments.train import ensure_demo_backbone

    print("no real weights found: using a small texture network trained on scikit-image textures")
    return ensure_demo_backbone(progress=True)


def write_inputs(folder: Path, size: int) -> tuple[Path, Path]:
    """Content (chelsea the cat) and style (a stained-tissue micrograph) from scikit-image."""
    from skimage import data

    from paramviz.io import save_png

    content = save_png(folder / "content.png", data.chelsea() / 255.0)
    style = save_png(folder / "style.png", data.immunohistochemistry() / 255.0)
    return content, style


def run(folder: Path, *, steps: int = 200, size: int = 160) -> dict[str, Path]:
    """Render the three pictures into ``folder`` and say where they are."""
    from paramviz.backbones import load
    from paramviz.cli import build_parser

    folder.mkdir(parents=True, exist_ok=True)
    weights = demo_weights()
    backbone = load(weights)
    content, style = write_inputs(folder, size)
    relus = [name for name in backbone.layer_names if name.startswith("relu")]
    common = ["--weights", str(weights), "--size", str(size), "--steps", str(steps)]
    jobs = {
        "style transfer": [
            "style",
            "--content",
            str(content),
            "--style",
            str(style),
            *common,
            "--style-weight",
            "10",
            "-o",
            str(folder / "style_transfer.png"),
        ],
        "texture": ["texture", "--style", str(style), *common, "-o", str(folder / "texture.png")],
        "neuron visualisation": [
            "visualize",
            "--objective",
            f"{relus[-1]}:0-3",
            *common,
            "--size",
            str(min(size, 112)),
            "-o",
            str(folder / "channels.png"),
        ],
    }
    parser = build_parser()
    made = {}
    for title, argv in jobs.items():
        print(f"\n== {title}\n$ paramviz {shlex.join(argv)}")
        args = parser.parse_args(argv)
        args.run(args)
        made[title] = Path(argv[-1])
    print("\nDone. Pictures (each with a .json sidecar that records how to re-make it):")
    for title, path in made.items():
        print(f"  {title:22s} {path.resolve()}")
    return made
