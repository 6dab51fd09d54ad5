"""A plain CNN described by a short spec string, e.g. a user's own ``nn.Sequential``.

Spec: comma-separated items, each one ``nn.Sequential`` index, in order::

    conv{out}k{kernel}[s{stride}][p{padding}]   nn.Conv2d (with bias)
    bn                                          nn.BatchNorm2d
    relu                                        nn.ReLU
    maxpool{k}[s{stride}][p{padding}]           nn.MaxPool2d (stride defaults to k)
    avgpool{k}[s{stride}][p{padding}]           nn.AvgPool2d (stride defaults to k)
    flatten                                     nn.Flatten (C, H, W order)
    linear{out}                                 nn.Linear (a spatial input is flattened first)

Tap names count per kind: ``conv1, conv2, ...``, ``bn1, ...``, ``relu1, relu2, ...``,
``pool1, pool2, ...`` (max and average pools together), ``flatten``, ``fc1, fc2, ...``; the last
linear layer is ``logits``. Example: ``"conv16k4s2p1,relu,conv32k4s2p1,relu,flatten,linear100,relu,
linear10"`` has taps ``conv1, relu1, conv2, relu2, flatten, fc1, relu3, logits`` and PyTorch keys
``0.*, 2.*, 5.*, 7.*``.

Networks with a linear layer after ``flatten`` only run at the size they were trained at; give it as
``input_size=(H, W)`` so that converted weights can be shape-checked completely.
"""

from __future__ import annotations

import re
from collections import Counter

from paramviz.backbones.architecture import Architecture, register
from paramviz.backbones.base import (
    AvgPool,
    BatchNorm,
    Conv,
    Dense,
    Flatten,
    MaxPool,
    ReLU,
    Step,
    TapNetwork,
)
from paramviz.errors import UserError

_CONV = re.compile(r"conv(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?")
_POOL = re.compile(r"(max|avg)pool(\d+)(?:s(\d+))?(?:p(\d+))?")
_LINEAR = re.compile(r"linear(\d+)")
SPEC_HELP = (
    "items: conv{out}k{k}[s{stride}][p{pad}], bn, relu, maxpool{k}[s{stride}][p{pad}], "
    "avgpool{k}[s{stride}][p{pad}], flatten, linear{out}"
)


def parse_spec(spec: str) -> tuple[Step, ...]:
    """Spec string → steps, with tap names and ``nn.Sequential`` indices as torch keys."""
    items = [item.strip().lower() for item in spec.split(",")]
    if not spec.strip() or not all(items):
        raise UserError(f"empty item in sequential spec {spec!r}; {SPEC_HELP}")
    linears = sum(bool(_LINEAR.fullmatch(item)) for item in items)
    counts: Counter[str] = Counter()

    def numbered(kind: str) -> str:
        counts[kind] += 1
        return f"{kind}{counts[kind]}"

    steps = []
    for index, item in enumerate(items):
        steps.append(_parse_item(item, str(index), numbered, linears, spec))
    return tuple(steps)


def _parse_item(item, torch, numbered, linears, spec) -> Step:
    if conv := _CONV.fullmatch(item):
        out, kernel, stride, padding = conv.groups()
        _check_sizes(item, spec, out, kernel, stride)
        return Conv(
            name=numbered("conv"),
            features=int(out),
            kernel=int(kernel),
            stride=int(stride or 1),
            padding=int(padding or 0),
            torch=torch,
        )
    if pool := _POOL.fullmatch(item):
        kind, window, stride, padding = pool.groups()
        _check_sizes(item, spec, window, stride)
        cls = MaxPool if kind == "max" else AvgPool
        window = int(window)
        return cls(
            name=numbered("pool"),
            window=window,
            stride=int(stride or window),
            padding=int(padding or 0),
        )
    if linear := _LINEAR.fullmatch(item):
        _check_sizes(item, spec, linear.group(1))
        name = numbered("fc")
        if name == f"fc{linears}":
            name = "logits"
        return Dense(name=name, features=int(linear.group(1)), torch=torch)
    if item == "relu":
        return ReLU(name=numbered("relu"))
    if item == "bn":
        return BatchNorm(name=numbered("bn"), torch=torch)
    if item == "flatten":
        name = numbered("flatten")
        return Flatten(name="flatten" if name == "flatten1" else name)
    raise UserError(f"cannot read item {item!r} of sequential spec {spec!r}; {SPEC_HELP}")


def _check_sizes(item: str, spec: str, *sizes: str | None) -> None:
    """Channels, kernels, strides and widths are at least 1 (``None``: not given)."""
    if any(size is not None and int(size) == 0 for size in sizes):
        raise UserError(
            f"item {item!r} of sequential spec {spec!r} has a size of 0; channels, kernels, "
            "strides and widths are at least 1"
        )


class Sequential(TapNetwork):
    """A plain ``nn.Sequential`` CNN given by ``spec`` (see the module docstring)."""

    spec: str = ""
    input_size: tuple[int, int] | None = None

    def arch_name(self) -> str:
        return "sequential"

    def all_steps(self) -> tuple[Step, ...]:
        return parse_spec(self.spec)

    def probe_size(self) -> tuple[int, int]:
        if self.input_size is None:
            return super().probe_size()
        size = tuple(self.input_size) if isinstance(self.input_size, list | tuple) else ()
        if len(size) != 2 or not all(type(side) is int and side > 0 for side in size):
            raise UserError(
                f"input_size should be two whole numbers above 0 (height, width), got "
                f"{self.input_size!r}"
            )
        return size

    def free_dimensions(self) -> dict[str, int]:
        """Without ``input_size``, the input width of the first linear layer is not known."""
        if self.input_size:
            return {}
        first_dense = next((step for step in self.steps() if isinstance(step, Dense)), None)
        return {f"params/{first_dense.name}/kernel": 0} if first_dense else {}


register(Architecture("sequential", Sequential))  # never guessed: its layers need a spec
