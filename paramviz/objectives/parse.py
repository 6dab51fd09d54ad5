"""The one grammar for objective strings, shared by the CLI, the experiments and :func:`render`.

A *unit* is one image's objective::

    layer:channel            channel(layer, channel)         e.g. layer4:12, relu3_1:0
    neuron:layer:channel     neuron(layer, channel)          the centre position
    logit:class              logit(class)

A *spec* may also name several units at once, one image each: a channel range ``layer:0-15`` or a
comma-separated list ``layer4:1,layer4:7``. :func:`expand` turns specs into units and
:func:`batch_objective` renders unit ``i`` into image ``i`` of one batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from paramviz.errors import UserError
from paramviz.objectives.activation import channel, logit, neuron
from paramviz.objectives.core import Objective

_RANGE = re.compile(r"^(?P<layer>[^:]+):(?P<start>\d+)-(?P<stop>\d+)$")
_INTEGER = re.compile(r"^-?\d+$")
GRAMMAR = (
    "expected 'layer:channel' (e.g. layer4:12), a range 'layer:0-15', "
    "'neuron:layer:channel' or 'logit:class'"
)


def expand(specs: Sequence[str]) -> list[str]:
    """Specs (ranges, comma lists, single units) → one unit string per image, in order."""
    units = []
    for spec in specs:
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if match := _RANGE.match(item):
                start, stop = int(match["start"]), int(match["stop"])
                if stop < start:
                    raise UserError(f"empty channel range in {item!r}")
                units += [f"{match['layer'].strip()}:{c}" for c in range(start, stop + 1)]
            else:
                units.append(item)
    if not units:
        raise UserError("no objective given")
    return units


def parse(unit: str, batch: int | None = None) -> Objective:
    """The objective a unit string names (see the module docstring), on image ``batch``."""
    kind, _, rest = unit.strip().partition(":")
    if kind == "neuron" and (found := _layer_index(rest)):
        return neuron(*found, batch=batch)
    if kind == "logit" and _INTEGER.match(rest.strip()):
        return logit(int(rest), batch=batch)
    if found := _layer_index(unit):
        return channel(*found, batch=batch)
    raise UserError(f"cannot read objective {unit!r}: {GRAMMAR}")


def _layer_index(text: str) -> tuple[str, int] | None:
    layer, sep, index = text.strip().rpartition(":")
    if sep and layer.strip() and _INTEGER.match(index.strip()):
        return layer.strip(), int(index)
    return None


def batch_objective(specs: Sequence[str]) -> tuple[Objective, list[str]]:
    """The sum of every unit of ``specs``, unit ``i`` on image ``i``, and the units (labels)."""
    units = expand(specs)
    return Objective.sum([parse(unit, batch=i) for i, unit in enumerate(units)]), units


def as_objective(spec: Objective | str) -> Objective:
    """An :class:`Objective` unchanged, or a unit string parsed with :func:`parse`."""
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str):
        return parse(spec)
    raise UserError(f"cannot read objective {spec!r}: {GRAMMAR}")
