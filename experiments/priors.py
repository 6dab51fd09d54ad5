"""Priors: named routes to a picture the grids compare -- a parameterisation, the transforms it
must survive, and optionally SWAG's activation smoothing in the losses.

Pixels without transforms (Gatys, Nakano), Lucid's decorrelated Fourier image, that plus Lucid's
``standard`` transforms, and the third route, pixels with SWAG's softmax smoothing (Wang, Li &
Vasconcelos 2021) across channels or over the whole layer. L-BFGS runs only with the
deterministic priors: its line search reuses values from the previous step's transform draw (see
:func:`paramviz.render.render`). The test bed's protocol (``headline``) uses ``mild`` transforms,
whose reflected borders add no grey frame to a small picture.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from paramviz import tasks
from paramviz.experiments.registry import Settings


@dataclasses.dataclass(frozen=True)
class Prior:
    """How the picture is parameterised and which transforms it must survive."""

    param: str
    decorrelate: bool
    transforms: str
    smoothing: str = "none"

    @property
    def deterministic(self) -> bool:
        return self.transforms == "none"


PRIORS: dict[str, Prior] = {
    "pixel": Prior("pixel", False, "none"),
    "fourier+decorrelate": Prior("fourier", True, "none"),
    "fourier+decorrelate+transforms": Prior("fourier", True, "standard"),
    "pixel+smooth-channel": Prior("pixel", False, "none", "channel"),
    "pixel+smooth-tensor": Prior("pixel", False, "none", "tensor"),
}
"""The grids' columns."""
PROTOCOL_PRIORS: dict[str, Prior] = {
    "fourier+decorrelate+mild": Prior("fourier", True, "mild"),
    "maco+transforms": Prior("maco", True, "standard"),
}
"""Further routes: the test bed's protocol's, and MACO (Fel et al. 2023) for the neurons."""
KNOWN = PRIORS | PROTOCOL_PRIORS
OPTIMIZERS = ("lbfgs", "adam")
QUICK_OPTIMIZERS = ("adam",)
"""A quick run skips L-BFGS: its compiled line search costs 3x Adam's compile time."""
LEARNING_RATE = 0.05  # Lucid's Adam step


def prior_settings(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{name: {param, decorrelate, transforms}}`` for settings.json."""
    return {name: dataclasses.asdict(KNOWN[name]) for name in names}


def prior_of(settings: Settings, name: str) -> Prior:
    return Prior(**settings["priors"][name])


def prior_optimizer_runs(priors: Sequence[str], optimizers: Sequence[str]) -> list[list[str]]:
    """Every ``[prior, optimizer]``, except L-BFGS with random transforms."""
    return [
        [prior, optimizer]
        for prior in priors
        for optimizer in optimizers
        if optimizer != "lbfgs" or KNOWN[prior].deterministic
    ]


def image_param(prior: Prior, seed: int, batch: int, size: int, init: Any = None):
    """The prior's parameterisation (:func:`paramviz.tasks.make_param`, as the CLI makes it)."""
    return tasks.make_param(
        prior.param, batch, (size, size), seed=seed, decorrelate=prior.decorrelate, init=init
    )
