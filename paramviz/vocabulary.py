"""The names a render request is spelled in, kept free of heavy imports so that the command
line builds its parser (and ``--help``) without loading jax.

A kind a user names by string (a parameterisation, an objective kind) is an :class:`Entry` in a
:class:`Registry`: its name, its help, its grammar and where its code is (``module:attribute``,
imported only when it is used). The command line's choices and help, the settings' checks and the
parsers all read the registry, so a new kind is one ``register`` call in one file (a plugin named
in ``$PARAMVIZ_PLUGINS`` for the command line).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from typing import Any

from paramviz.errors import UserError


@dataclasses.dataclass(frozen=True)
class Entry:
    """One name a user spells: ``help`` says what it means, ``target`` (``module:attribute``) is
    its code, ``grammar`` how it is written where that is more than its name."""

    name: str
    help: str
    target: str
    grammar: str = ""
    batch_term: bool = False  # an objective kind that reads the whole batch, not one image

    def load(self) -> Any:
        """The code the entry names, imported now."""
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry:
    """The entries of one kind, in the order they were registered."""

    def __init__(self, kind: str, *entries: Entry):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        for entry in entries:
            self.register(entry)

    def register(self, entry: Entry) -> Entry:
        """Add ``entry``; a second, different entry of the same name is refused."""
        known = self._entries.get(entry.name)
        if known is not None and known != entry:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered as {known}")
        self._entries[entry.name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __getitem__(self, name: str) -> Entry:
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}; choose one of {self.names()}")
        return self._entries[name]


PARAMETERISATIONS = Registry(
    "parameterisation",
    Entry("pixel", "one value per pixel and channel", "paramviz.param:pixel"),
    Entry(
        "fourier",
        "Lucid's decorrelated Fourier spectrum (with the gain of photographs)",
        "paramviz.param:photo_fourier",
    ),
    Entry(
        "maco",
        "MACO: the spectrum's phase only, against a fixed natural-image magnitude",
        "paramviz.param:maco",
    ),
)
"""Image parameterisations: ``target(hw, batch, *, key, decorrelate, init) -> ImageParam``."""

OBJECTIVE_KINDS = Registry(
    "objective kind",
    Entry(
        "neuron",
        "a channel's centre position",
        "paramviz.objectives.parse:neuron_of",
        "neuron:layer:channel",
    ),
    Entry("logit", "a class's logit", "paramviz.objectives.parse:logit_of", "logit:class"),
    Entry(
        "direction",
        "a direction in a layer's channels (a .npy file, or numbers separated by spaces)",
        "paramviz.objectives.parse:direction_of",
        "direction:layer:VECTOR",
    ),
    Entry(
        "diversity",
        "Lucid's diversity of the whole batch at a layer, subtracted (weight 100 unless given)",
        "paramviz.objectives.parse:diversity_of",
        "diversity:layer[:weight]",
        batch_term=True,
    ),
)
"""Objective kinds written ``kind:...`` (a plain ``layer:channel`` is a channel):
``target(rest, unit, batch) -> Objective | None``, ``None`` when ``rest`` is not of the kind.
A batch term (``diversity``) has no image of its own and is added to the whole batch's objective."""


STYLE_LOSSES = ("l1", "mse")
"""Gram distances: Lucid's mean absolute difference, or Gatys' mean square."""

SMOOTHING = ("none", "channel", "tensor")
"""SWAG's activation smoothing (Wang, Li & Vasconcelos, CVPR 2021), applied before the losses:
``channel`` is a softmax across channels at every position (PyTorch's ``nn.Softmax2d``, as in the
authors' code), ``tensor`` a softmax over all values of an image's layer (the paper's formula)."""

SEED_LIMIT = 2**32
"""Seeds are below this: JAX keys hold 32 bits of a seed (64-bit mode is off), so larger seeds
would collide silently."""

MAX_IMAGE_PIXELS = 89_478_485
"""PIL's own decompression-bomb limit (1024 * 1024 * 1024 // 4 // 3)."""


DEFAULT_SIZE = 256
"""Pixels on a picture's longer side when a job is not told (``--size``)."""

RELU_REDIRECT_STEPS = 16
"""Lucid's redirected ReLU: a visualisation's first steps take its gradient."""

STYLE_SCALE = 1.0
"""Style pictures are read at this times the output size (neural-style's ``-style_scale``)."""

JOB_DEFAULTS = {
    "style": {"init": "content", "transforms": "none", "steps": 300},
    "texture": {"init": "noise", "transforms": "none", "steps": 300},
    "visualize": {"init": "noise", "transforms": "standard", "steps": 512},
}
"""Where each job's settings differ from the settings' own defaults: the command line's flags
and the Python calls (:mod:`paramviz.jobs`) both take them from here."""

OPTIMIZERS = Registry(
    "optimizer",
    Entry("adam", "Adam (Lucid's, learning rate 0.05)", "paramviz.render:adam"),
    Entry(
        "lbfgs",
        "L-BFGS with a zoom line search (ignores the learning rate; best without random "
        "transforms)",
        "paramviz.render:lbfgs",
    ),
)
"""Optimizers by name: ``target(learning_rate) -> optax.GradientTransformation``."""

TRANSFORM_PRESETS = Registry(
    "transform preset",
    Entry("none", "no transforms", "paramviz.transforms:none"),
    Entry(
        "standard",
        "Lucid's: pad 12, jitter 8, scale, rotate, jitter 4",
        "paramviz.transforms:standard",
    ),
    Entry(
        "mild",
        "pad 4, jitter 4, +-5 % scale, +-5 degrees, reflected borders",
        "paramviz.transforms:mild",
    ),
)
"""Random transforms by name: ``target(key, images) -> images``."""

WEIGHTS_SETS = ("imagenet", "small", "testbed", "real")
"""The experiments' network sets (:mod:`paramviz.experiments.backbone_sets`)."""
