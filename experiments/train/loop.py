"""The training loop: one compiled step, exact checkpoints and resume, then evaluation."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from paramviz import progress as progress_bars
from paramviz import rng, xla
from paramviz.backbones import Backbone, read_metadata, save
from paramviz.errors import UserError
from paramviz.experiments.attacks import ascent_step, constrain
from paramviz.experiments.datasets import (
    Dataset,
    make_batches,
)
from paramviz.experiments.train.config import TrainConfig
from paramviz.experiments.train.evaluation import Evaluation, evaluate
from paramviz.experiments.train.model import (
    LogitsFn,
    build_backbone,
    channel_stats,
    cross_entropy,
    load_data,
    make_logits_fn,
    with_params,
)
from paramviz.io import atomic_path

STATE_SUFFIX = ".train-state"


EVAL_SEED_OFFSET = 1000  # the evaluation attack's key is independent of the training stream


class TrainState(NamedTuple):
    """Everything a step changes. The attack key of step ``s`` is ``fold_in(key, s)``, so the
    state at step ``s`` determines the rest of training exactly."""

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array
    delta: jax.Array  # free training's perturbation; zeros otherwise


def make_optimizer(config: TrainConfig, total_updates: int) -> optax.GradientTransformation:
    """AdamW with linear warm-up and cosine decay; weight decay on kernels only."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, max(1, total_updates // 20), max(2, total_updates)
    )
    return optax.adamw(
        schedule,
        weight_decay=config.weight_decay,
        mask=lambda params: jax.tree.map(lambda leaf: leaf.ndim > 1, params),
    )


def initial_state(
    backbone: Backbone,
    optimizer: optax.GradientTransformation,
    config: TrainConfig,
    image_shape: tuple[int, ...],
) -> TrainState:
    """Step 0: the backbone's parameters, a fresh optimiser, the seeded attack key."""
    params = backbone.variables["params"]
    delta_shape = (config.batch_size, *image_shape)
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        key=rng.key(config.seed + 1),
        delta=jnp.zeros(delta_shape if config.adversarial == "free" else (1,), jnp.float32),
    )


def batch_metrics(loss: jax.Array, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``[summed loss, correct count, examples]`` for the progress bar."""
    correct = jnp.sum(jnp.argmax(logits, axis=-1) == labels)
    return jnp.stack([loss * len(labels), correct, len(labels)]).astype(jnp.float32)


def eps_scale(step: jax.Array, warmup_steps: int) -> jax.Array:
    """The fraction of ε used at ``step`` (0-based): linear up to 1 over ``warmup_steps``."""
    return jnp.minimum(1.0, (step + 1) / max(warmup_steps, 1))


def make_train_step(
    logits_fn: LogitsFn,
    optimizer: optax.GradientTransformation,
    config: TrainConfig,
    total: int,
) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, jax.Array]]:
    """The jit-compiled step ``(state, images, labels) -> (state, metrics)`` for the mode;
    ``total`` steps in all (for the ε warm-up)."""
    threat = config.training_threat()
    warmup_steps = round(config.eps_warmup * total)

    def objective(params, images, labels):
        logits = logits_fn(params, images)
        return cross_entropy(logits, labels).mean(), logits

    def update(params, opt_state, images, labels):
        (loss, logits), grads = jax.value_and_grad(objective, has_aux=True)(params, images, labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, batch_metrics(loss, logits, labels)

    def attacked(params, images, labels, key, scale):
        if config.adversarial == "none":
            return images
        loss = lambda x: cross_entropy(logits_fn(params, x), labels)  # noqa: E731
        return threat.attack(loss, images, key, scale=scale)

    def step(state: TrainState, images, labels):
        key = jax.random.fold_in(state.key, state.step)
        scale = eps_scale(state.step, warmup_steps)
        images = attacked(state.params, images, labels, key, scale)
        params, opt_state, metrics = update(state.params, state.opt_state, images, labels)
        return state._replace(params=params, opt_state=opt_state, step=state.step + 1), metrics

    def free_step(state: TrainState, images, labels):
        """Shafahi et al.: each replay's gradient updates both the weights and the perturbation."""
        scale = eps_scale(state.step, warmup_steps)
        eps, step_size = threat.eps * scale, threat.step_length * scale

        def replay(_, carry):
            params, opt_state, x_adv, metrics = carry
            grad_fn = jax.value_and_grad(objective, argnums=(0, 1), has_aux=True)
            (loss, logits), (grads, input_grad) = grad_fn(params, x_adv, labels)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            x_adv = ascent_step(
                x_adv,
                images,
                input_grad,
                norm=threat.norm,
                eps=eps,
                step_size=step_size,
            )
            return params, opt_state, x_adv, metrics + batch_metrics(loss, logits, labels)

        start = constrain(images + state.delta, images, threat.norm, eps)
        carry = (state.params, state.opt_state, start, jnp.zeros(3, jnp.float32))
        params, opt_state, x_adv, metrics = lax.fori_loop(
            0, config.free_replays, replay, carry, unroll=True
        )
        new_state = TrainState(params, opt_state, state.step + 1, state.key, x_adv - images)
        return new_state, metrics

    return xla.jit(free_step if config.adversarial == "free" else step)


def updates_per_step(config: TrainConfig) -> int:
    return config.free_replays if config.adversarial == "free" else 1


def total_steps(config: TrainConfig, train_size: int) -> int:
    """Batches over all epochs (an incomplete last batch is dropped)."""
    if config.batch_size > train_size:
        raise UserError(f"batch size {config.batch_size} exceeds the {train_size} training images")
    return config.epochs * (train_size // config.batch_size)


def state_path(weights_path: Path) -> Path:
    """Where the training state of ``weights_path`` lives (beside it)."""
    return weights_path.with_name(weights_path.name.removesuffix(".safetensors") + STATE_SUFFIX)


def save_state(path: Path, state: TrainState, config: TrainConfig, seconds: float) -> None:
    """Write the full training state atomically (msgpack, no pickle)."""
    from flax import serialization

    payload = {
        "state": serialization.to_state_dict(jax.device_get(state)),
        "config": config.to_json(),
        "data_seed": config.seed,
        "seconds": seconds,
    }
    with atomic_path(path) as tmp:
        tmp.write_bytes(serialization.msgpack_serialize(payload))


def restore_state(
    path: Path, template: TrainState, config: TrainConfig
) -> tuple[TrainState, float]:
    """The saved state and training seconds so far; ``UserError`` if it is for other settings."""
    from flax import serialization

    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        saved_config = payload["config"]
        state = serialization.from_state_dict(template, payload["state"])
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"cannot resume from {path}: damaged training state ({err})") from None
    if saved_config != config.to_json():
        raise UserError(
            f"{path} holds a training run with other settings ({saved_config}); "
            "delete it or pass --no-resume to start again"
        )
    state = jax.tree.map(jnp.asarray, state)
    return state, float(payload["seconds"])


def weights_metadata(
    name: str, config: TrainConfig, class_names: Iterable[str], step: int, total: int
) -> dict[str, str]:
    """What a trained file says about itself, beyond the architecture."""
    return {
        "source": name,
        "source_format": "paramviz-train",
        "training": config.to_json(),
        "training_steps": f"{step}/{total}",
        "class_names": json.dumps(list(class_names)),
    }


@dataclass(frozen=True)
class TrainReport:
    """The outcome of :func:`train` (``evaluation`` is None when it stopped early)."""

    path: Path
    config: TrainConfig
    steps_done: int
    total_steps: int
    seconds: float
    evaluation: Evaluation | None

    @property
    def complete(self) -> bool:
        return self.evaluation is not None


def train(config: TrainConfig, out: str | os.PathLike, **options: Any) -> TrainReport:
    """Train (or resume) ``config`` into ``out`` (.safetensors), then evaluate on the test split.

    A finished run of the same settings already at ``out`` is returned as is (unless
    ``resume=False``). ``options`` go to :func:`fit` (checkpoints, resume, progress,
    ``stop_after``).
    """
    out = Path(out)
    if options.get("resume", True) and (done := finished_report(out, config)):
        return done
    train_set, test_set = load_data(config)
    backbone = build_backbone(config, train_set.num_classes, *channel_stats(train_set.images))
    return fit(backbone, train_set, test_set, config, out, **options)


@xla.hands_memory_back
def fit(
    backbone: Backbone,
    train_set: Dataset,
    test_set: Dataset,
    config: TrainConfig,
    out: Path,
    *,
    checkpoint_every: int = 500,
    resume: bool = True,
    progress: bool | None = None,
    refresh_every: int = 10,
    stop_after: int | None = None,
) -> TrainReport:
    """The training loop on given data and initial weights (``config``'s data fields unused).

    ``stop_after`` stops after that many steps in all, with a checkpoint, as an interruption would;
    calling again resumes. The host reads the metrics every ``refresh_every`` steps only.
    """
    total = total_steps(config, len(train_set.images))
    optimizer = make_optimizer(config, total * updates_per_step(config))
    state = initial_state(backbone, optimizer, config, train_set.images.shape[1:])
    seconds = 0.0
    if resume and state_path(out).is_file():
        state, seconds = restore_state(state_path(out), state, config)
    start = int(state.step)
    end = total if stop_after is None else min(total, stop_after)
    logits_fn = make_logits_fn(backbone)
    step_fn = make_train_step(logits_fn, optimizer, config, total)

    def checkpoint(state: TrainState, elapsed: float) -> None:
        step = int(state.step)
        save_state(state_path(out), state, config, elapsed)
        metadata = weights_metadata(out.stem, config, train_set.class_names, step, total)
        save(out, with_params(backbone, state.params), **metadata)

    batches = itertools.islice(
        make_batches(
            train_set.images,
            train_set.labels,
            config.batch_size,
            seed=config.seed,
            epochs=config.epochs,
        ),
        start,
        end,
    )
    metrics = jnp.zeros(3)

    def step(_: int, refresh: bool) -> dict[str, str]:
        nonlocal state, metrics
        state, batch = step_fn(state, *next(batches))
        metrics = metrics + batch
        if not refresh:
            return {}
        loss, correct, count = np.asarray(metrics)
        metrics = jnp.zeros(3)
        return {"loss": f"{loss / count:.3f}", "acc": f"{correct / count:.3f}"}

    seconds = run_checkpointed(
        step,
        lambda elapsed: checkpoint(state, elapsed),
        start=start,
        end=end,
        total=total,
        desc=out.stem,
        seconds=seconds,
        progress=progress,
        checkpoint_every=checkpoint_every,
        refresh_every=refresh_every,
    )
    if end < total:
        checkpoint(state, seconds)
        return TrainReport(out, config, end, total, seconds, None)
    evaluation = evaluate(
        logits_fn,
        state.params,
        test_set,
        config.eval_threat(),
        key=rng.key(config.seed + EVAL_SEED_OFFSET),
        robust_limit=config.eval_robust_limit,
    )
    metadata = weights_metadata(out.stem, config, train_set.class_names, total, total)
    metadata |= {"evaluation": evaluation.to_json(), "training_seconds": f"{seconds:.1f}"}
    save(out, with_params(backbone, state.params), **metadata)
    state_path(out).unlink(missing_ok=True)
    return TrainReport(out, config, total, total, seconds, evaluation)


def run_checkpointed(
    step: Callable[[int, bool], dict[str, str]],
    checkpoint: Callable[[float], None],
    *,
    start: int,
    end: int,
    total: int,
    desc: str,
    seconds: float = 0.0,
    progress: bool | None = None,
    checkpoint_every: int = 500,
    refresh_every: int = 10,
) -> float:
    """Steps ``start`` to ``end`` (of ``total``) with a progress bar, a checkpoint every
    ``checkpoint_every`` and on Ctrl-C; returns the training seconds, ``seconds`` before included.

    ``step(index, refresh)`` runs one step; with ``refresh`` (every ``refresh_every`` steps and
    the last, the only times the host reads the device) it returns the bar's figures.
    ``checkpoint(elapsed)`` writes the resumable state.
    """
    bar = progress_bars.bar(total=total, initial=start, enabled=progress, desc=desc, unit="step")
    began = time.perf_counter() - seconds
    try:
        for index in range(start, end):
            refresh = (index + 1) % refresh_every == 0 or index + 1 == end
            shown = step(index, refresh)
            if refresh:
                bar.set_postfix(**shown)
                bar.update(index + 1 - bar.n)
            if (index + 1) % checkpoint_every == 0 and index + 1 < end:
                checkpoint(time.perf_counter() - began)
    except KeyboardInterrupt:
        checkpoint(time.perf_counter() - began)
        raise
    finally:
        bar.close()
    return time.perf_counter() - began


def finished_report(path: Path, config: TrainConfig) -> TrainReport | None:
    """The report of a completed run of ``config`` already at ``path``, else None."""
    if not path.is_file() or state_path(path).exists():
        return None
    try:
        info = read_metadata(path)
        trained = TrainConfig.from_json(info["training"])
    except (UserError, KeyError, TypeError, ValueError):
        return None  # not a finished training file: train again
    if trained != config or "evaluation" not in info:
        return None
    evaluation = Evaluation(**json.loads(info["evaluation"]))
    steps = int(info["training_steps"].split("/")[1])
    return TrainReport(path, config, steps, steps, float(info["training_seconds"]), evaluation)
