"""The default matched pairs (``paramviz train-pairs``) and the demo's fallback network."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

from experiments.train.config import TrainConfig
from experiments.train.loop import TrainReport, train
from paramviz.errors import UserError
from paramviz.paths import trained_dir

# Sized so that the six models train in under 30 minutes in all on 2 CPU cores (measured times:
# the module docstring).
TEXTURES = TrainConfig(dataset="textures", image_size=32, train_per_class=64, test_per_class=16)


FASHION = TrainConfig(dataset="fashion-mnist", image_size=28, epochs=2, norm="linf", eps=0.1)


def matched_pair(name: str, config: TrainConfig) -> dict[str, TrainConfig]:
    """``{name-standard, name-robust}``: the same settings with and without PGD training."""
    return {
        f"{name}-standard": dataclasses.replace(config, adversarial="none"),
        f"{name}-robust": dataclasses.replace(config, adversarial="pgd"),
    }


DEFAULT_PAIRS: dict[str, TrainConfig] = {
    **matched_pair("textures-resnet18", dataclasses.replace(TEXTURES, arch="resnet18")),
    # the plain (batch-norm-free) VGG trains best with a lower learning rate
    **matched_pair(
        "textures-vgg16",
        dataclasses.replace(TEXTURES, arch="vgg16", epochs=6, learning_rate=1e-3),
    ),
    **matched_pair("fashion-mnist-resnet18", dataclasses.replace(FASHION, arch="resnet18")),
}


DEMO_CONFIG = TrainConfig(
    arch="resnet18",
    width=0.25,
    dataset="skimage-textures",
    train_per_class=256,
    test_per_class=64,
    epochs=10,
    adversarial="pgd",
)


def train_pairs(
    names: Iterable[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    *,
    progress: bool = True,
) -> list[TrainReport]:
    """Train the default pairs (or ``names`` of them) into ``out_dir``; finished ones are reused."""
    names = list(DEFAULT_PAIRS) if names is None else list(names)
    if unknown := [name for name in names if name not in DEFAULT_PAIRS]:
        raise UserError(f"unknown models {unknown}; known: {', '.join(DEFAULT_PAIRS)}")
    out_dir = Path(out_dir) if out_dir is not None else trained_dir()
    reports = []
    for name in names:
        path, config = out_dir / f"{name}.safetensors", DEFAULT_PAIRS[name]
        reports.append(train(config, path, progress=progress))
    return reports


def demo_backbone_path() -> Path:
    """The cached demo checkpoint (its name carries the settings' digest)."""
    return trained_dir() / f"demo-textures-{DEMO_CONFIG.digest()}.safetensors"


def ensure_demo_backbone(progress: bool = True) -> Path:
    """The small robust texture backbone of ``paramviz demo``: cached, or trained now (seeded).

    Training runs in ``trained/.partial/`` and the finished file is renamed into place, so the
    cached name only ever holds a complete model; a lock keeps two processes from training it
    at once.
    """
    path = demo_backbone_path()
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(f".{path.name}.lock")):
        if not path.is_file():
            work = path.parent / ".partial" / path.name
            train(DEMO_CONFIG, work, progress=progress, checkpoint_every=100)
            os.replace(work, path)
    return path
