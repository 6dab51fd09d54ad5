"""Real weights that lie beside the checkout on a machine without network (``../shared``).

``$PARAMVIZ_SHARED/weights`` (default: ``shared/weights`` beside the repository) may hold the
normalised VGG-19 trunk to ``conv3_1`` (see its SOURCES.md). It is converted once into the cache;
the demo and the experiments' ``small`` set use it when it is there.
"""

from __future__ import annotations

import os
from pathlib import Path

from paramviz import paths

REAL_TRUNK = "vgg_normalised_conv3_1.fp16.pth"
TRUNK_NAME = "vgg19-normalised-conv3_1"
REPO = Path(__file__).resolve().parents[1]


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
    from weights.convert import convert

    print(f"converting the real VGG-19 trunk {source} -> {converted}")
    return convert(source, converted)
