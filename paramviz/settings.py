"""What a render and a style transfer are asked for, as typed settings that check themselves.

Free of jax, so the command line takes its flags' defaults from here (stated once) and builds
its parser and ``--help`` without loading it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from paramviz.errors import UserError
from paramviz.vocabulary import (
    OPTIMIZERS,
    PARAMETERISATIONS,
    SEED_LIMIT,
    SMOOTHING,
    STYLE_LOSSES,
)

STARTS = ("content", "noise", "image")  # "image": the init_image the task is given


def check_setting(name: str, ok: bool, wanted: str, value: Any) -> None:
    if not ok:
        raise UserError(f"{name} must be {wanted}, got {value!r}")


def is_whole(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def is_finite(value: Any) -> bool:
    return (
        isinstance(value, int | float | np.number)
        and not isinstance(value, bool)
        and (math.isfinite(value))
    )


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """How a picture is optimised (the CLI's shared flags, with their defaults)."""

    param: str = "fourier"
    """The image parameterisation (:data:`~paramviz.vocabulary.PARAMETERISATIONS`)."""
    decorrelate: bool = True
    transforms: str = "none"
    """A transforms preset (:data:`~paramviz.vocabulary.TRANSFORM_PRESETS`)."""
    steps: int = 300
    optimizer: str = "adam"
    lr: float = 0.05
    """Adam's learning rate (Lucid's 0.05); L-BFGS ignores it."""
    seed: int = 0
    save_every: int = 0
    tv_weight: float = 0.0
    progress: bool | None = None  # None: a bar on a terminal only (paramviz.progress)
    force: bool = False  # render even when the memory estimate exceeds what the machine has

    def __post_init__(self) -> None:
        """Absurd values fail here, before anything is built."""
        names = PARAMETERISATIONS.names()
        check_setting("param", self.param in PARAMETERISATIONS, f"one of {names}", self.param)
        check_setting(
            "optimizer",
            self.optimizer in OPTIMIZERS,
            f"one of {OPTIMIZERS.names()}",
            self.optimizer,
        )
        check_setting(
            "steps", is_whole(self.steps) and self.steps >= 0, "a whole number >= 0", self.steps
        )
        check_setting("lr", is_finite(self.lr) and self.lr > 0, "a finite number above 0", self.lr)
        check_setting(
            "seed",
            is_whole(self.seed) and self.seed in range(SEED_LIMIT),
            "in 0 .. 2**32 - 1",
            self.seed,
        )
        check_setting(
            "save_every",
            is_whole(self.save_every) and self.save_every >= 0,
            ">= 0",
            self.save_every,
        )
        check_setting(
            "tv_weight",
            is_finite(self.tv_weight) and self.tv_weight >= 0,
            "finite, >= 0",
            self.tv_weight,
        )

    def thresholds(self) -> tuple[int, ...]:
        """The snapshot steps ``save_every`` asks for."""
        if not self.save_every:
            return ()
        return tuple(range(self.save_every, self.steps, self.save_every))


@dataclasses.dataclass(frozen=True)
class StyleSettings:
    """What a style transfer or texture matches (``None`` layers: the backbone's preset)."""

    style_layers: tuple[str, ...] | None = None
    content_layers: tuple[str, ...] | None = None
    style_weight: float = 1.0
    content_weight: float = 1.0
    style_loss: str = "l1"
    init: str = "content"
    smoothing: str = "none"  # SWAG: objectives.SMOOTHING
    style_blend_weights: tuple[float, ...] | None = None  # one per style picture; None: equal
    original_colors: bool = False  # keep the content's colours (neural-style's luminance transfer)

    def __post_init__(self) -> None:
        """Absurd values fail here, before anything is built."""
        for name in ("style_weight", "content_weight"):
            value = getattr(self, name)
            check_setting(name, is_finite(value) and value >= 0, "a finite number >= 0", value)
        check_setting(
            "style_loss", self.style_loss in STYLE_LOSSES, f"one of {STYLE_LOSSES}", self.style_loss
        )
        check_setting("init", self.init in STARTS, f"one of {STARTS}", self.init)
        smoothing = SMOOTHING
        check_setting(
            "smoothing", self.smoothing in smoothing, f"one of {smoothing}", self.smoothing
        )
        if self.style_blend_weights is not None:
            blend = self.style_blend_weights
            check_setting(
                "style_blend_weights",
                all(is_finite(w) and w >= 0 for w in blend) and sum(blend) > 0,
                "finite numbers >= 0, not all 0",
                blend,
            )
        colours = self.original_colors
        check_setting("original_colors", isinstance(colours, bool), "True or False", colours)

    def blend_shares(self, count: int) -> tuple[float, ...]:
        """Each of ``count`` style pictures' share of the blended Gram targets (summing to 1)."""
        weights = self.style_blend_weights or (1.0,) * count
        if len(weights) != count:
            raise UserError(f"{len(weights)} style blend weights for {count} style pictures")
        return tuple(float(w) / float(sum(weights)) for w in weights)


def default(settings: type, name: str) -> Any:
    """The default of field ``name`` of the settings dataclass ``settings``."""
    return next(f.default for f in dataclasses.fields(settings) if f.name == name)
