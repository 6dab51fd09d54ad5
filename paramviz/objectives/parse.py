"""The one grammar for objective strings, shared by the CLI, the experiments and :func:`render`.

The kinds written ``kind:...`` are the entries of
:data:`paramviz.vocabulary.OBJECTIVE_KINDS` (each with its grammar and its parser, here for the
built-in ones); a plain ``layer:channel`` is a channel. The built-in ones: a *unit* is one image's
objective::

    layer:channel            channel(layer, channel)         e.g. layer4:12, relu3_1:0
    neuron:layer:channel     neuron(layer, channel)          the centre position
    logit:class              logit(class)
    direction:layer:VECTOR   direction(layer, vector)        VECTOR: a .npy file or numbers
                                                             separated by spaces, one per channel

A *batch term* has no image of its own; it is added to the objective of the whole batch::

    diversity:layer[:weight] -weight * diversity(layer)      weight 100 unless given (Lucid's
                                                             notebooks: ``- 1e2 * diversity``)

A *spec* may also name several units at once, one image each: a channel range ``layer:0-15`` or a
comma-separated list ``layer4:1,layer4:7``. :func:`expand` turns specs into units and
:func:`batch_objective` renders unit ``i`` into image ``i`` of one batch (``copies`` random starts
of each unit), plus the batch terms.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paramviz.errors import UserError
from paramviz.objectives.activation import channel, direction, diversity, logit, neuron
from paramviz.objectives.core import PSEUDO_LAYERS, Objective
from paramviz.vocabulary import OBJECTIVE_KINDS

_RANGE = re.compile(r"^(?P<layer>[^:]+):(?P<start>\d+)-(?P<stop>\d+)$")
_INTEGER = re.compile(r"^-?\d+$")
DIVERSITY_WEIGHT = 100.0
"""Lucid's notebooks subtract ``1e2 * diversity(layer)``."""


def grammar() -> str:
    """How an objective is written, every registered kind included (for error messages)."""
    kinds = ", ".join(f"'{entry.grammar or entry.name}'" for entry in OBJECTIVE_KINDS)
    return f"expected 'layer:channel' (e.g. layer4:12), a range 'layer:0-15', or one of {kinds}"


@dataclasses.dataclass(frozen=True)
class ChannelRange:
    """A channel range ``layer:start-stop`` as written in a spec."""

    text: str
    layer: str
    start: int
    stop: int


def _items(specs: Sequence[str]) -> list[str]:
    """Every comma-separated item of ``specs``, stripped, empty ones left out."""
    return [item for spec in specs for item in (part.strip() for part in spec.split(",")) if item]


def channel_ranges(specs: Sequence[str]) -> list[ChannelRange]:
    """The channel ranges of ``specs``, not expanded, so each can be checked against its layer
    before it becomes one objective per channel (``relu3_1:0-99999999``)."""
    return [
        ChannelRange(item, found["layer"].strip(), int(found["start"]), int(found["stop"]))
        for item in _items(specs)
        if (found := _RANGE.match(item))
    ]


def spec_layers(specs: Sequence[str]) -> list[str]:
    """The layers ``specs`` read, found without expanding a range into its channels."""
    layers: set[str] = set()
    for item in _items(specs):
        if match := _RANGE.match(item):
            layers.add(match["layer"].strip())
        else:
            layers |= {layer for _, layer in parse(item).layers}
    return sorted(layers - PSEUDO_LAYERS)


def _is_batch_term(item: str) -> bool:
    kind = item.partition(":")[0].strip()
    return kind in OBJECTIVE_KINDS and OBJECTIVE_KINDS[kind].batch_term


def expand(specs: Sequence[str]) -> list[str]:
    """Specs (ranges, comma lists, single units) → one unit string per image, in order; batch
    terms (``diversity:...``) are not units and are left out."""
    units = []
    for item in _items(specs):
        if _is_batch_term(item):
            continue
        if match := _RANGE.match(item):
            start, stop = int(match["start"]), int(match["stop"])
            if stop < start:
                raise UserError(f"empty channel range in {item!r}")
            units += [f"{match['layer'].strip()}:{c}" for c in range(start, stop + 1)]
        else:
            units.append(item)
    if not units:
        raise UserError(f"no objective with an image of its own given: {grammar()}")
    return units


def parse(unit: str, batch: int | None = None) -> Objective:
    """The objective a unit string or batch term names (see the module docstring), on image
    ``batch`` (batch terms always read the whole batch)."""
    kind, _, rest = unit.strip().partition(":")
    if kind in OBJECTIVE_KINDS:
        objective = OBJECTIVE_KINDS[kind].load()(rest, unit, batch)
        if objective is not None:
            return objective
    if found := _layer_index(unit):
        return channel(*found, batch=batch)
    raise UserError(f"cannot read objective {unit!r}: {grammar()}")


def neuron_of(rest: str, unit: str, batch: int | None) -> Objective | None:
    """``neuron:layer:channel``."""
    found = _layer_index(rest)
    return None if found is None else neuron(*found, batch=batch)


def logit_of(rest: str, unit: str, batch: int | None) -> Objective | None:
    """``logit:class``."""
    return logit(_unit_index(rest, unit), batch=batch) if _INTEGER.match(rest.strip()) else None


def direction_of(rest: str, unit: str, batch: int | None) -> Objective | None:
    """``direction:layer:VECTOR``."""
    found = _layer_vector(rest)
    return None if found is None else direction(*found, batch=batch)


def diversity_of(rest: str, unit: str, batch: int | None) -> Objective | None:
    """``diversity:layer[:weight]``, subtracted (a batch term: ``batch`` is not used)."""
    found = _layer_weight(rest)
    return None if found is None else -found[1] * diversity(found[0])


def _layer_vector(text: str) -> tuple[str, np.ndarray] | None:
    """``layer:VECTOR`` → the layer and the vector (numbers, or a ``.npy``/text file of them)."""
    layer, sep, vector = text.strip().partition(":")
    if not (sep and layer.strip() and vector.strip()):
        return None
    try:
        values = np.asarray([float(value) for value in vector.split()], np.float32)
    except ValueError:
        values = _vector_file(Path(vector.strip()))
    if values.ndim != 1 or not values.size or not np.all(np.isfinite(values)):
        raise UserError(f"a direction is a list of finite numbers, one per channel: {vector!r}")
    return layer.strip(), values


def _vector_file(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(
            f"direction vector {str(path)!r} is neither numbers separated by spaces nor a file"
        )
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False).astype(np.float32).reshape(-1)
        return np.loadtxt(path, dtype=np.float32, ndmin=1).reshape(-1)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read the direction vector {path}: {err}") from None


def _layer_weight(text: str) -> tuple[str, float] | None:
    """``layer`` or ``layer:weight`` → the layer and the weight (:data:`DIVERSITY_WEIGHT`)."""
    layer, sep, weight = text.strip().partition(":")
    if not layer.strip():
        return None
    try:
        value = float(weight) if sep else DIVERSITY_WEIGHT
    except ValueError:
        return None
    if not np.isfinite(value) or value < 0:
        raise UserError(f"a diversity weight is a finite number >= 0, not {weight!r}")
    return layer.strip(), value


def _layer_index(text: str) -> tuple[str, int] | None:
    layer, sep, index = text.strip().rpartition(":")
    if sep and layer.strip() and _INTEGER.match(index.strip()):
        return layer.strip(), _unit_index(index, text)
    return None


def _unit_index(index: str, unit: str) -> int:
    """A unit's index in a string, counted from 0: a negative one would render a unit counted
    from the end while the sidecar records ``-1`` (Python callers may still pass one)."""
    value = int(index)
    if value < 0:
        raise UserError(f"unit indices count from 0, not {value} (in {unit.strip()!r})")
    return value


def batch_objective(specs: Sequence[str], copies: int = 1) -> tuple[Objective, list[str]]:
    """The sum of every unit of ``specs``, unit ``i`` on image ``i``, plus the batch terms, and
    the units (labels). ``copies`` > 1 renders each unit that many times (random starts of one
    unit, labelled ``unit #k``)."""
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise UserError(f"copies must be a whole number >= 1, got {copies!r}")
    units = expand(specs)
    if copies > 1:
        units = [f"{unit} #{k}" for unit in units for k in range(copies)]
    per_image = [parse(unit.partition(" #")[0], batch=i) for i, unit in enumerate(units)]
    batch_terms = [parse(item) for item in _items(specs) if _is_batch_term(item)]
    return Objective.sum(per_image + batch_terms), units


def as_objective(spec: Objective | str) -> Objective:
    """An :class:`Objective` unchanged, or a unit string parsed with :func:`parse`."""
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str):
        return parse(spec)
    raise UserError(f"cannot read objective {spec!r}: {grammar()}")
