"""A parameterisation and an objective kind of one's own, each one ``register`` call: importing
this module (or naming it in ``$PARAMVIZ_PLUGINS``) makes both known to the command line, the
settings, the parser and the sidecar (tests/test_registries.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

from paramviz import objectives, param
from paramviz.vocabulary import OBJECTIVE_KINDS, PARAMETERISATIONS, Entry


def grey_pixels(hw, batch, *, key, decorrelate, init: Any = None) -> param.ImageParam:
    """Pixels that start from mid-grey instead of noise."""
    start = np.full((batch, *hw, 3), 0.5, np.float32) if init is None else init
    return param.pixel(hw, batch, key=key, decorrelate=decorrelate, init=start)


def channel_pair(rest: str, unit: str, batch: int | None) -> objectives.Objective | None:
    """``pair:layer:a+b``: two channels of a layer maximised together on one image."""
    layer, _, pair = rest.partition(":")
    first, plus, second = pair.partition("+")
    if not (layer and plus and first.isdigit() and second.isdigit()):
        return None
    return objectives.channel(layer, int(first), batch) + objectives.channel(
        layer, int(second), batch
    )


PARAMETERISATIONS.register(Entry("grey", "pixels from mid-grey", f"{__name__}:grey_pixels"))
OBJECTIVE_KINDS.register(
    Entry("pair", "two channels together", f"{__name__}:channel_pair", "pair:layer:a+b")
)
