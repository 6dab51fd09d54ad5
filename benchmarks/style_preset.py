"""Measure candidate style presets of a network: the preset is chosen by this, not by taste.

    python benchmarks/style_preset.py [--weights efficientnet-lite0] [--size 128] [--steps 200]

For each candidate list of style layers, a texture is synthesised from noise (``paramviz
texture``'s defaults otherwise) for each style picture, and judged by a judge without learned
weights: the Portilla-Simoncelli texture-statistics distance to the style picture
(:mod:`paramviz.experiments.texture_statistics`, plenoptic), and the colour checkerboard energy at
the layers' strides (:func:`paramviz.experiments.metrics.colour_checkerboard_energy`). Lower is
better.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

CANDIDATES = {
    "efficientnet-lite0": {
        "stages 1-5": ("block1", "block2", "block3", "block4", "block5"),
        "stem + stages 2-4": ("stem", "block2", "block3", "block4"),
        "stem + stages 2-4, 6": ("stem", "block2", "block3", "block4", "block6"),
        "stages 2-6": ("block2", "block3", "block4", "block5", "block6"),
    },
}
STYLES = ("gravel", "immunohistochemistry", "hubble_deep_field", "brick")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="efficientnet-lite0", choices=sorted(CANDIDATES))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    from paramviz import tasks
    from paramviz.experiments import metrics, texture_statistics
    from paramviz.experiments.pictures import load_picture
    from paramviz.weights.resolve import resolve_backbone

    backbone = resolve_backbone(args.weights)
    print(f"{args.weights}, textures from noise at {args.size} px, {args.steps} steps")
    print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'preset':<24} {'P-S distance':>12} {'checkerboard':>12}  per style (P-S)")
    for name, layers in CANDIDATES[args.weights].items():
        start, distances, boards = time.perf_counter(), [], []
        for style_name in STYLES:
            style = load_picture(style_name, args.size)
            texture = tasks.style_transfer(
                backbone,
                style,
                None,
                tasks.RenderSettings(steps=args.steps, progress=False),
                tasks.StyleSettings(style_layers=layers, init="noise"),
            ).picture
            distances.append(float(texture_statistics.style_distance(texture, style)))
            periods = metrics.stride_periods(backbone, layers, args.size)
            boards.append(float(metrics.colour_checkerboard_energy(texture, periods)))
        print(
            f"{name:<24} {np.mean(distances):>12.3f} {np.mean(boards):>12.3f}  "
            + " ".join(f"{d:.3f}" for d in distances)
            + f"  ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
