"""Held-out accuracy, clean and under a PGD attack."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from paramviz import xla
from paramviz.experiments.attacks import Threat
from paramviz.experiments.datasets import (
    Dataset,
)
from paramviz.experiments.train.model import LogitsFn, cross_entropy


@dataclass(frozen=True)
class Evaluation:
    """Held-out accuracy, clean and under ``threat`` (recorded in the weights' metadata)."""

    clean_accuracy: float
    robust_accuracy: float
    clean_examples: int
    robust_examples: int
    threat: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def count_correct(
    correct_fn: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    key: jax.Array,
) -> int:
    """How many examples ``correct_fn(x, y, key)`` gets right; the last batch is padded by
    wrapping around so every call has the same shape (one compilation)."""
    batch_size = min(batch_size, len(images))
    counts = []
    for start in range(0, len(images), batch_size):
        index = np.arange(start, start + batch_size) % len(images)
        correct = correct_fn(images[index], labels[index], jax.random.fold_in(key, start))
        counts.append(jnp.sum(correct[: min(batch_size, len(images) - start)]))
    return int(sum(counts))


def evaluate(
    logits_fn: LogitsFn,
    params: Any,
    dataset: Dataset,
    threat: Threat,
    *,
    key: jax.Array,
    robust_limit: int | None = None,
    batch_size: int = 250,
) -> Evaluation:
    """Clean accuracy on all of ``dataset``; PGD accuracy on a seeded random ``robust_limit``."""

    @xla.jit
    def clean(images, labels, _key):
        return jnp.argmax(logits_fn(params, images), axis=-1) == labels

    @xla.jit
    def robust(images, labels, key):
        loss = lambda x: cross_entropy(logits_fn(params, x), labels)  # noqa: E731
        return jnp.argmax(logits_fn(params, threat.attack(loss, images, key)), axis=-1) == labels

    n = len(dataset.images)
    subset = np.random.default_rng(0).permutation(n)[: min(robust_limit or n, n)]
    clean_correct = count_correct(clean, dataset.images, dataset.labels, batch_size, key)
    robust_correct = count_correct(
        robust, dataset.images[subset], dataset.labels[subset], batch_size, key
    )
    return Evaluation(
        clean_correct / n, robust_correct / len(subset), n, len(subset), threat.describe()
    )
