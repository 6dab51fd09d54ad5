"""The objective value and its algebra, and the building blocks every objective is made of.

An :class:`Objective` is a function ``fn(features) -> scalar`` plus the ``(network, layer)``
pairs it reads, so render computes exactly those activations and nothing else.
``features[network][layer]`` holds NHWC activations (dense outputs are ``(N, C)``); every
network also sees two pseudo-layers:

* ``"input"`` -- the transformed batch exactly as fed to the networks (Lucid's ``T("input")``);
* ``"image"`` -- the parameterisation's output before the transforms (the picture that is saved).

Array data an objective carries (style/content targets, direction vectors) lives in the arguments
of a :class:`jax.tree_util.Partial`; render passes those arrays into its jitted step as arguments
instead of baking them into the compiled program as constants. A new objective is a function
that returns :func:`on_layer` (or an ``Objective``) built from module-level functions, so it stays
a pytree of its arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from paramviz.errors import UserError

MAIN = "main"
"""The network passed to render as ``backbone``."""
INPUT = "input"
"""Pseudo-layer: the transformed image batch as fed to every network."""
IMAGE = "image"
"""Pseudo-layer: the parameterisation's image batch before the transforms."""
PSEUDO_LAYERS = frozenset({INPUT, IMAGE})

Features = Mapping[str, Mapping[str, jax.Array]]
Layers = frozenset[tuple[str, str]]


@dataclasses.dataclass(frozen=True)
class IndexCheck:
    """An index an objective takes along one axis of one layer (a channel, an image of the
    batch, a position). Indices are arrays inside the compiled step, so one program serves every
    channel; JAX would clamp an out-of-range one silently, so render checks them first."""

    network: str
    layer: str
    axis: int
    index: int
    what: str

    def check(self, shape: Sequence[int]) -> None:
        size = shape[self.axis]
        if not -size <= self.index < size:
            raise UserError(
                f"{self.what} {self.index} is out of range for layer {self.layer!r} (size {size})"
            )


@dataclasses.dataclass(frozen=True, eq=False)
class Objective:
    """A scalar function of network features to be maximised, and the layers it needs.

    ``terms`` lists the summands of a sum (empty for a single objective); render reports each
    summand's final value under its ``name``. ``checks`` are the indices it takes, checked
    against the layers' shapes before anything runs.
    """

    fn: Callable[[Features], jax.Array]
    layers: Layers = frozenset()
    name: str = "objective"
    terms: tuple[Objective, ...] = dataclasses.field(default=(), repr=False)
    checks: tuple[IndexCheck, ...] = dataclasses.field(default=(), repr=False)

    def check_indices(self, shapes: Mapping[str, Mapping[str, Sequence[int]]]) -> None:
        """``UserError`` for an index past its layer; ``shapes[network][layer]`` (NHWC)."""
        for check in self.checks:
            check.check(_nhwc_shape(shapes[check.network][check.layer]))

    def __call__(self, features: Features) -> jax.Array:
        """The value on ``features`` (its indices are checked against their shapes first)."""
        for check in self.checks:
            if check.layer in features.get(check.network, {}):
                check.check(_nhwc_shape(jnp.shape(features[check.network][check.layer])))
        return self.fn(features)

    def summands(self) -> tuple[Objective, ...]:
        """The terms of a sum, or ``(self,)``: what render reports separately."""
        return self.terms or (self,)

    def named(self, name: str) -> Objective:
        """The same objective under another name, reported as a single term."""
        return dataclasses.replace(self, name=name, terms=())

    @staticmethod
    def sum(objectives: Iterable[Objective | float]) -> Objective:
        """Sum of objectives (and scalars); nested sums are flattened into one list of terms."""
        items = [_lift(o) for o in objectives]
        if any(o is None for o in items):
            raise TypeError("Objective.sum takes objectives and real scalars only")
        terms = tuple(t for o in items for t in o.summands())
        if not terms:
            return _constant(0.0)
        if len(terms) == 1:
            return terms[0]
        name = " + ".join(t.name for t in terms).replace(" + -", " - ")
        fn = Partial(_sum_of, tuple(t.fn for t in terms))
        return Objective(fn, _union(terms), name, terms, _checks(terms))

    def __add__(self, other: Any) -> Objective:
        if _lift(other) is None:
            return NotImplemented
        return Objective.sum([self, other])

    def __radd__(self, other: Any) -> Objective:
        if isinstance(other, numbers.Real) and other == 0:  # builtin sum() starts from 0
            return self
        if _lift(other) is None:
            return NotImplemented
        return Objective.sum([other, self])

    def __neg__(self) -> Objective:
        name = f"-{_parenthesised(self)}"
        return Objective(Partial(_negated, self.fn), self.layers, name, checks=self.checks)

    def __sub__(self, other: Any) -> Objective:
        lifted = _lift(other)
        return NotImplemented if lifted is None else self + (-lifted)

    def __rsub__(self, other: Any) -> Objective:
        lifted = _lift(other)
        return NotImplemented if lifted is None else lifted + (-self)

    def __mul__(self, other: Any) -> Objective:
        return _binary(operator.mul, "*", self, other)

    def __rmul__(self, other: Any) -> Objective:
        return _binary(operator.mul, "*", other, self)

    def __truediv__(self, other: Any) -> Objective:
        return _binary(operator.truediv, "/", self, other)

    def __rtruediv__(self, other: Any) -> Objective:
        return _binary(operator.truediv, "/", other, self)


# --------------------------------------------------------------------------------------------
# algebra helpers (module-level functions so that objectives stay pytrees of their arrays)


def _sum_of(fns: Sequence[Callable], features: Features) -> jax.Array:
    return functools.reduce(operator.add, (f(features) for f in fns))


def _negated(fn: Callable, features: Features) -> jax.Array:
    return -fn(features)


def _applied(op: Callable, fn_a: Callable, fn_b: Callable, features: Features) -> jax.Array:
    return op(fn_a(features), fn_b(features))


def _constant_value(value: jax.Array, features: Features) -> jax.Array:
    return jnp.asarray(value, jnp.float32)


def _constant(value: float) -> Objective:
    """A constant; its value is an array leaf, so weights do not change the compiled step."""
    fn = Partial(_constant_value, np.float32(value))
    return Objective(fn, frozenset(), f"{float(value):g}")


def _lift(value: Any) -> Objective | None:
    """An objective as is, a real scalar as a constant objective, anything else None."""
    if isinstance(value, Objective):
        return value
    if isinstance(value, numbers.Real) or (
        isinstance(value, np.ndarray | jax.Array) and np.ndim(value) == 0
    ):
        return _constant(float(value))
    return None


def _parenthesised(objective: Objective) -> str:
    return f"({objective.name})" if " " in objective.name else objective.name


def _union(objectives: Iterable[Objective]) -> Layers:
    return frozenset().union(*(o.layers for o in objectives))


def _checks(objectives: Iterable[Objective]) -> tuple[IndexCheck, ...]:
    return tuple(dict.fromkeys(check for o in objectives for check in o.checks))


def _binary(op: Callable, symbol: str, a: Any, b: Any) -> Objective:
    a, b = _lift(a), _lift(b)
    if a is None or b is None:
        return NotImplemented
    name = f"{_parenthesised(a)} {symbol} {_parenthesised(b)}"
    fn = Partial(_applied, op, a.fn, b.fn)
    return Objective(fn, _union((a, b)), name, checks=_checks((a, b)))


# --------------------------------------------------------------------------------------------
# reading activations


def describe(kind: str, *args: Any, network: str = MAIN, **options: Any) -> str:
    shown = [str(a) for a in args]
    shown += [f"{k}={v}" for k, v in options.items() if v is not None]
    if network != MAIN:
        shown.append(f"network={network}")
    return f"{kind}({', '.join(shown)})"


def as_nhwc(tensor: jax.Array) -> jax.Array:
    """Dense ``(N, C)`` outputs become ``(N, 1, 1, C)`` so spatial objectives apply (as Lucid)."""
    return tensor[:, None, None, :] if tensor.ndim == 2 else tensor


def _nhwc_shape(shape: Sequence[int]) -> tuple[int, ...]:
    return (shape[0], 1, 1, shape[1]) if len(shape) == 2 else tuple(shape)


def index(value: int) -> np.ndarray:
    """An index as an array leaf (one compiled step serves every value)."""
    return np.int32(value)


def activations(features: Features, network: str, layer: str, batch: jax.Array | None) -> jax.Array:
    """``features[network][layer]`` as NHWC, cut to image ``batch`` (kept as a batch of 1)."""
    try:
        tensor = as_nhwc(features[network][layer])
    except KeyError:
        raise UserError(f"layer {layer!r} of network {network!r} was not computed") from None
    if batch is not None:
        tensor = jax.lax.dynamic_index_in_dim(tensor, batch % len(tensor), axis=0, keepdims=True)
    return tensor


def _layer_value(
    reduce: Callable[..., jax.Array],
    network: str,
    layer: str,
    batch: jax.Array | None,
    data: Any,
    features: Features,
) -> jax.Array:
    return reduce(activations(features, network, layer, batch), data)


def on_layer(
    name: str,
    layer: str,
    reduce: Callable[[jax.Array, Any], jax.Array],
    *,
    batch: int | None = None,
    network: str = MAIN,
    data: Any = None,
    checks: Sequence[tuple[int, int, str]] = (),
) -> Objective:
    """Objective ``reduce(activations, data)`` of one layer.

    ``reduce`` must be a module-level function and ``data`` a pytree of arrays (see
    :func:`index`): render caches its compiled step by the objective's structure, so two
    objectives that differ only in their arrays share one program. ``checks`` are
    ``(axis, index, what)`` of the indices ``data`` holds, checked before anything runs;
    ``batch`` is checked here.
    """
    declared = [(0, batch, "batch index")] if batch is not None else []
    declared += list(checks)
    batch_index = None if batch is None else index(batch)
    fn = Partial(_layer_value, reduce, network, layer, batch_index, data)
    return Objective(
        fn,
        frozenset({(network, layer)}),
        name,
        checks=tuple(IndexCheck(network, layer, a, int(i), what) for a, i, what in declared),
    )
