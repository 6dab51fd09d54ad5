"""Why the Fourier path made a 2-px checkerboard on the VGG-19 trunk: the same
style transfer and texture by variants that each remove one candidate cause, measured by
:func:`paramviz.experiments.metrics.colour_checkerboard_energy` at period 2 (whitened power near the
2-px frequencies over the 0.1-0.35 cycles/px band, worst opponent channel; ~1 for noise, below 1 for
photographs). Results: ``experiments/README.md``. Run::

    python -c "from experiments.fourier_checkerboard import main; main()"
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from paramviz import param, render, rng, tasks
from paramviz.experiments import metrics
from paramviz.experiments.pictures import load_picture
from paramviz.objectives import with_reference

LAYERS = ["relu1_1", "relu2_1", "relu3_1"]


class _SharedMoment(NamedTuple):
    first: Any
    second: Any
    count: jax.Array


def adam_shared_second_moment(learning_rate: float, b1: float = 0.9, b2: float = 0.999):
    """Adam whose second moment is one number per parameter array, not one per coefficient:
    the step keeps the gradient's own spectrum instead of giving every frequency the same size."""

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return _SharedMoment(zeros, jax.tree.map(lambda p: jnp.zeros(()), params), jnp.zeros(()))

    def update(grads, state, params=None):
        count = state.count + 1
        first = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.first, grads)
        second = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.mean(g * g), state.second, grads)
        step = jax.tree.map(
            lambda m, v: (
                -learning_rate * (m / (1 - b1**count)) / (jnp.sqrt(v / (1 - b2**count)) + 1e-8)
            ),
            first,
            second,
        )
        return step, _SharedMoment(first, second, count)

    return optax.GradientTransformation(init, update)


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    kind: str = "fourier"
    decorrelate: bool = True
    decay_power: float = 1.0
    gain: str = "lucid"
    transforms: str = "none"
    shared_moment: bool = False


VARIANTS = (
    Variant("pixels", kind="pixel", decorrelate=False),
    Variant("Fourier, Lucid's 1/f gain"),
    Variant("  without colour decorrelation", decorrelate=False),
    Variant("  Adam with one second moment per array", shared_moment=True),
    Variant("  under mild transforms", transforms="mild"),
    Variant("  gain 1/f^1.5 (Horama)", decay_power=1.5),
    Variant("Fourier, photographs' gain (the fix)", gain="photo"),
)


def run(variant: Variant, task: str, size: int, steps: int, trunk) -> dict[str, Any]:
    """One render of ``task`` (``style`` from the content picture, or ``texture`` from noise)."""
    content = load_picture("chelsea", size)
    style = load_picture("immunohistochemistry", size)
    joint = task == "style" and variant.transforms != "none"
    objective = tasks.style_objective(
        trunk,
        style,
        LAYERS,
        content_image=content if task == "style" else None,
        content_layers=["relu3_1"],
        joint=joint,
    )
    transform = render.resolve_transforms(variant.transforms)
    if joint:
        transform = with_reference(transform, content[None])
    key, init = rng.key(0), content[None] if task == "style" else None
    if variant.kind == "pixel":
        start = param.pixel(size, key=key, decorrelate=variant.decorrelate, init=init)
    else:
        start = param.fourier(
            size,
            key=key,
            decorrelate=variant.decorrelate,
            decay_power=variant.decay_power,
            gain=variant.gain,
            init=init,
        )
    optimizer = adam_shared_second_moment(0.05) if variant.shared_moment else "adam"
    clock = time.perf_counter()
    result = render.render(
        objective,
        start,
        trunk,
        transforms=transform,
        steps=steps,
        optimizer=optimizer,
        progress=False,
    )
    picture = result.image[0]
    return {
        "variant": variant.name,
        "task": task,
        "checkerboard_colour": float(metrics.colour_checkerboard_energy(picture, (2,))),
        "two_pixel_luminance": float(metrics.two_pixel_excess(metrics.luminance(picture))),
        "loss": result.final_loss,
        "seconds": time.perf_counter() - clock,
    }


def main(size: int = 96, steps: int = 150) -> list[dict[str, Any]]:
    """Every variant on both tasks; prints a Markdown table and returns the rows."""
    from paramviz.weights.local import real_vgg_trunk
    from paramviz.weights.resolve import resolve_backbone

    trunk = resolve_backbone(str(real_vgg_trunk()), pooling="avg")
    rows = [run(v, task, size, steps, trunk) for v in VARIANTS for task in ("style", "texture")]
    print(f"| variant ({size} px, Adam {steps} steps) | task | 2-px colour | 2-px luma | loss |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['variant']} | {row['task']} | {row['checkerboard_colour']:.2f} | "
            f"{row['two_pixel_luminance']:.2f} | {row['loss']:.3f} |"
        )
    return rows
