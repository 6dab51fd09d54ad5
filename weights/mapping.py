"""PyTorch state_dict → Flax variables for every ``paramviz.backbones`` architecture.

Works on plain ``{key: numpy array}`` mappings (torch is not imported here): torchvision key names
for VGG/AlexNet/ResNet, ``nn.Sequential`` indices for ``vgg19_normalised`` and ``sequential``.
Conv weights go OIHW → HWIO, linear weights (out, in) → (in, out), batch norm
weight/bias/running_mean/running_var → scale/bias/mean/var; ``num_batches_tracked`` is ignored.
Because the backbones flatten in PyTorch's C, H, W order, the first linear layer needs no
permutation. Every array becomes float32.

Partial checkpoints (parameters present from the start up to some layer) become partial networks
whose ``last_layer`` is the deepest layer they can compute.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from paramviz.backbones import create, detection_order
from paramviz.backbones.base import (
    Backbone,
    Conv,
    Dense,
    ParamRef,
    TapNetwork,
    make_backbone,
    shape_fits,
    unflatten,
)
from paramviz.backbones.store import describe_problems
from paramviz.errors import UserError

IGNORED_SUFFIXES = ("num_batches_tracked",)


def _to_flax_layout(array: np.ndarray, layout: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if layout == "conv":
        array = array.transpose(2, 3, 1, 0)
    elif layout == "dense":
        array = array.T
    return np.ascontiguousarray(array)


def _torch_shape(flax_shape: tuple[int | None, ...], layout: str) -> tuple[int | None, ...]:
    """The PyTorch shape a Flax variable shape corresponds to (for messages and checks)."""
    if layout == "conv":
        h, w, i, o = flax_shape
        return (o, i, h, w)
    if layout == "dense":
        return tuple(reversed(flax_shape))
    return tuple(flax_shape)


def _refs(module: TapNetwork) -> list[ParamRef]:
    return [ref for step in module.steps() for ref in step.param_refs()]


def _flat_key(ref: ParamRef) -> str:
    return "/".join((ref.collection, *ref.path))


def _significant_keys(state_dict: Mapping[str, Any]) -> set[str]:
    return {key for key in state_dict if not key.endswith(IGNORED_SUFFIXES)}


def infer_last_layer(arch: str, state_dict: Mapping[str, Any], **options: Any) -> str | None:
    """Deepest layer computable from the parameters present, contiguous from the start.

    Walks the layers in order and stops before the first one whose tensors are not all there;
    e.g. a VGG-19 trunk that ends with conv3_1 gives ``"relu3_1"``. ``None`` when not even the
    first layer's tensors are present, or when the checkpoint also holds tensors past that point:
    then it is not a partial ``arch`` (a ResNet-18 read as a ResNet-50 shares its first layers)
    and must be compared with the whole network.
    """
    options = {key: v for key, v in options.items() if key != "last_layer"}
    last, prefix_keys = None, set()
    for step in create(arch, **options).steps():
        keys = {ref.torch_key for ref in step.param_refs()}
        if not keys <= state_dict.keys():
            break
        last, prefix_keys = step.name, prefix_keys | keys
    return None if _significant_keys(state_dict) - prefix_keys else last


def infer_options(arch: str, state_dict: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """Options read off the checkpoint: ``last_layer`` (partial), ``num_classes``, ``width``.

    Explicit ``options`` win over inferred ones.
    """
    module = create(arch, **options)
    inferred: dict[str, Any] = {}
    steps = module.all_steps()
    if "last_layer" not in options:
        last = infer_last_layer(arch, state_dict, **options)
        if last is not None and last != steps[-1].name:
            inferred["last_layer"] = last
    fields = module.options()
    logits = next((s for s in steps if isinstance(s, Dense) and s.name == "logits"), None)
    if "num_classes" in fields and "num_classes" not in options and logits is not None:
        weight = state_dict.get(f"{logits.torch}.weight")
        if weight is not None:
            inferred["num_classes"] = int(np.shape(weight)[0])
    first_conv = next((s for s in steps if isinstance(s, Conv)), None)
    if "width" in fields and "width" not in options and first_conv is not None:
        weight = state_dict.get(f"{first_conv.torch}.weight")
        if weight is not None and np.shape(weight)[0] != first_conv.features:
            inferred["width"] = np.shape(weight)[0] / first_conv.features * module.width
    return {**inferred, **options}


def convert(
    arch: str,
    state_dict: Mapping[str, Any],
    *,
    metadata: Mapping[str, str] | None = None,
    **options: Any,
) -> Backbone:
    """A ready :class:`Backbone` from a state_dict (partial checkpoints give partial networks)."""
    module = create(arch, **infer_options(arch, state_dict, **options))
    variables = _convert(module, state_dict)
    return make_backbone(module, variables, **{"source_format": "pytorch", **(metadata or {})})


def _convert(module: TapNetwork, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    refs = check_fit(module, state_dict)
    flat = {_flat_key(ref): _to_flax_layout(state_dict[ref.torch_key], ref.layout) for ref in refs}
    return unflatten(flat)


def check_fit(module: TapNetwork, state_dict: Mapping[str, Any]) -> list[ParamRef]:
    """The tensors ``module`` needs; ``UserError`` listing every key and shape that disagrees."""
    refs = _refs(module)
    expected = module.expected_shapes()
    missing, mismatched = [], []
    for ref in refs:
        if ref.torch_key not in state_dict:
            missing.append(ref.torch_key)
            continue
        actual = tuple(np.shape(state_dict[ref.torch_key]))
        want = _torch_shape(expected[_flat_key(ref)], ref.layout)
        if not shape_fits(want, actual):
            shown = "x".join("?" if n is None else str(n) for n in want)
            mismatched.append(f"{ref.torch_key} {'x'.join(map(str, actual))} (expected {shown})")
    unexpected = sorted(_significant_keys(state_dict) - {ref.torch_key for ref in refs})
    if missing or mismatched or unexpected:
        raise UserError(
            f"the checkpoint does not fit {module.arch_name()} (up to layer "
            f"{module.tap_names()[-1]!r}):"
            + describe_problems(
                missing_keys=missing, unexpected_keys=unexpected, shape_mismatches=mismatched
            )
        )
    return refs


def detect_arch(state_dict: Mapping[str, Any]) -> str | None:
    """The architecture whose key names and shapes fit ``state_dict`` exactly, if any.

    Architectures are tried in their declared ``detect_priority`` order; ``sequential`` is never
    detected (it needs a spec). A partial checkpoint that fits several architectures (a VGG cut
    before their layouts differ) gives the first, which computes exactly the same layers.
    """
    for arch in (architecture.name for architecture in detection_order()):
        first = _refs(create(arch))[0]
        if first.torch_key not in state_dict:
            continue
        try:
            check_fit(create(arch, **infer_options(arch, state_dict)), state_dict)
        except UserError:
            continue
        return arch
    return None
