"""The data a config names and the untrained network it starts from."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from paramviz import rng
from paramviz.backbones import Backbone, init
from paramviz.errors import UserError
from paramviz.experiments.datasets import (
    Dataset,
    fashion_mnist,
    scene_dataset,
    skimage_texture_dataset,
    texture_dataset,
)
from paramviz.experiments.train.config import TrainConfig

FASHION_MNIST_SIZE = 28


def load_data(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """``(train, test)`` for ``config.dataset``, NHWC RGB in [0, 1]."""
    if config.dataset == "fashion-mnist":
        return tuple(fashion_mnist_rgb(split, config.image_size) for split in ("train", "test"))
    make = {
        "textures": texture_dataset,
        "skimage-textures": skimage_texture_dataset,
        "scenes": scene_dataset,
    }[config.dataset]
    counts = {"train": config.train_per_class, "test": config.test_per_class}
    return tuple(
        make(size=config.image_size, n_per_class=counts[split], seed=config.seed, split=split)
        for split in ("train", "test")
    )


def fashion_mnist_rgb(split: str, size: int = FASHION_MNIST_SIZE) -> Dataset:
    """Fashion-MNIST repeated to 3 channels (so RGB backbones apply), zero-padded to ``size``."""
    if size < FASHION_MNIST_SIZE:
        raise UserError(f"Fashion-MNIST images are 28x28; image size {size} is too small")
    data = fashion_mnist(split)
    before = (size - FASHION_MNIST_SIZE) // 2
    after = size - FASHION_MNIST_SIZE - before
    padded = np.pad(data.images, ((0, 0), (before, after), (before, after), (0, 0)))
    return Dataset(np.repeat(padded, 3, axis=-1), data.labels, data.class_names)


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation (rounded: they end up in file metadata)."""
    mean = images.mean(axis=(0, 1, 2), dtype=np.float64)
    std = images.std(axis=(0, 1, 2), dtype=np.float64)
    return tuple(round(float(m), 4) for m in mean), tuple(round(float(s), 4) for s in std)


def build_backbone(
    config: TrainConfig, num_classes: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Backbone:
    """The untrained network: Flax init, then He-normal kernels and zero-γ residual branches."""
    size = (config.image_size, config.image_size)
    options = {"width": config.width, "num_classes": num_classes, "mean": mean, "std": std}
    backbone = init(config.arch, rng.key(config.seed), image_size=size, **options)
    check_fixed_statistics(backbone.variables)
    params = zero_residual_branches(he_normal_kernels(backbone.variables["params"], config.seed))
    return with_params(backbone, params)


def with_params(backbone: Backbone, params: Any) -> Backbone:
    """The same backbone with new ``params`` (batch statistics untouched)."""
    return backbone.replace(variables={**backbone.variables, "params": params})


def check_fixed_statistics(variables: Mapping[str, Any]) -> None:
    """Training keeps batch-norm statistics fixed; they must be the identity (mean 0, var 1)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(variables.get("batch_stats", {})):
        expected = 0.0 if path[-1].key == "mean" else 1.0
        if not np.all(np.asarray(leaf) == expected):
            raise ValueError(f"batch_stats {jax.tree_util.keystr(path)} is not {expected} at init")


def he_normal_kernels(params: Any, seed: int) -> Any:
    """Every kernel except the classifier's drawn He-normal (variance 2 / fan-in).

    Drawn with numpy: as reproducible as ``jax.random`` and free of the per-shape compilations
    that made eager ``jax.nn.initializers`` take half a minute on a ResNet.
    """
    rng = np.random.default_rng(seed)

    def reinit(path, leaf):
        names = [entry.key for entry in path]
        if names[-1] != "kernel" or names[0] == "logits":
            return leaf
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.standard_normal(leaf.shape) * np.sqrt(2.0 / fan_in), leaf.dtype)

    return jax.tree_util.tree_map_with_path(reinit, params)


def zero_residual_branches(params: Any) -> Any:
    """Scale 0 on the last batch norm of each residual block's main branch (ResNets only)."""

    def zero_last_norm(block: dict) -> dict:
        last = max((name for name in block if name.startswith("bn")), key=_number)
        return {**block, last: {**block[last], "scale": jnp.zeros_like(block[last]["scale"])}}

    return {
        name: {index: zero_last_norm(block) for index, block in value.items()}
        if name.startswith("layer")
        else value
        for name, value in params.items()
    }


def _number(name: str) -> int:
    return int("".join(char for char in name if char.isdigit()))


LogitsFn = Callable[[Any, jax.Array], jax.Array]


def make_logits_fn(backbone: Backbone) -> LogitsFn:
    """``(params, images) -> logits`` with every other variable collection held fixed."""
    fixed = {name: value for name, value in backbone.variables.items() if name != "params"}

    def logits(params, images):
        variables = {**fixed, "params": params}
        return backbone.module.apply(variables, images, layers=("logits",))["logits"]

    return logits


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example softmax cross-entropy."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
