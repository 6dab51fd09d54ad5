"""Train matched pairs of backbones offline: the same architecture trained once normally and once
adversarially (``paramviz train``, ``paramviz train-pairs``, :func:`ensure_demo_backbone`).

Everything is reproducible from ``TrainConfig.seed``: the dataset crops, the initial weights, the
data order and the attack's random starts. The result is a converted ``.safetensors`` file that
:func:`paramviz.backbones.load` reads, so every command that takes ``--weights`` takes it.

Choices, and why:

* **Batch norm as a fixed affine.** The backbones are inference modules (eval-mode batch norm,
  ``batch_stats`` = running mean / variance). Training only updates ``params``; the statistics stay
  as initialised (mean 0, variance 1, checked), so each batch norm is a learned per-channel scale
  and shift and the saved file runs exactly as trained. Without batch statistics a deep net needs
  careful initialisation: conv kernels and hidden dense kernels get He-normal initialisation
  (variance 2 / fan-in, which keeps ReLU activations at a constant scale), and the last batch norm
  of every residual block starts with scale 0, so each block starts as the identity (Fixup, Zhang
  et al. 2019; "zero-γ", Goyal et al. 2017). The VGG is the plain ``vgg16`` (no batch norm).
* **Small inputs.** The nets run at the dataset's size (32×32 textures; Fashion-MNIST 28×28, or
  zero-padded to ``image_size``). VGG's five pools take 32 px to 1 px; its adaptive average pool
  then repeats that pixel 7×7 times as torchvision does, so ``fc6`` keeps its real shape
  (512·w·49 inputs): at width 1/8 that is 3136 → 512, 1.6 M of the net's 2.2 M parameters, but
  cheap to run. VGG cannot run below 32 px.
* **Architectures and widths (measured on 2 CPU cores).** The ResNet-18 at width 1/8 is the
  main vehicle: its stride-4 stem makes it 4× cheaper per image than the VGG, and it reached
  76 % on the textures in 10 epochs (1 min) where VGG-16 at width 1/16 reached 47 %. Width 1/4
  gives 85 % but costs 2.5× (standard) to 3× (PGD) as much, too much for the 30-minute budget
  with the attacks. The VGG-16 is trained at width 1/8: below that its 4-channel first block
  starves it (47 %), and at these channel counts 1/8 runs as fast as 1/16.
* **Input convention.** Images are [0, 1]; the module's ``mean``/``std`` are the training set's
  per-channel statistics, stored in the file's ``input_convention`` like any converted net.
* **One compiled step.** Forward, the attack's inner loop (``lax.fori_loop``, unrolled: see
  :data:`experiments.attacks.MAX_UNROLLED_STEPS`), backward and the optax update are a single
  ``jax.jit`` function; the host syncs only to refresh the progress bar and at checkpoints.
* **ε warm-up** for adversarial training (``TrainConfig.eps_warmup``; see there).
* **Checkpoints.** Every ``checkpoint_every`` steps (and on Ctrl-C) two files are written
  atomically: the weights (``NAME.safetensors``, usable at once) and the training state
  (``NAME.train-state``: parameters, optimiser state, step, attack key, free-training
  perturbation, data-order seed, wall time, and the config). Running the same command again
  resumes exactly where the state left off; the state file is removed when training completes.

Default pairs (``make pairs`` = ``paramviz train-pairs``, seed 0), measured: 21 min wall in all
on 2 CPU cores that other jobs were sharing (the run got ~1 core). Robust accuracy: PGD with 20
steps of 2.5 ε / 20 from a random start, on 1000 held-out images (texture test crops are new
crops of the training textures; see :mod:`experiments.datasets`)::

    model                            clean   robust  attack          training
    textures-resnet18-standard       76.0 %   5.2 %  L2 ε = 0.5      1.6 min
    textures-resnet18-robust         42.4 %  23.5 %  L2 ε = 0.5      4.3 min
    textures-vgg16-standard          72.2 %   0.7 %  L2 ε = 0.5      1.8 min
    textures-vgg16-robust            58.2 %  27.7 %  L2 ε = 0.5      5.2 min
    fashion-mnist-resnet18-standard  83.2 %   0.0 %  L∞ ε = 0.1      0.6 min
    fashion-mnist-resnet18-robust    73.5 %  50.1 %  L∞ ε = 0.1      3.8 min

The demo backbone (:data:`DEMO_CONFIG`: ResNet-18 width 1/4, PGD L2 0.5, 6 scikit-image
textures) took 1.9 min in all (75 s training) on the same shared cores: 83 % clean, 67 % robust.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from experiments.attacks import Threat, ascent_step, constrain
from experiments.datasets import (
    Dataset,
    fashion_mnist,
    make_batches,
    skimage_texture_dataset,
    texture_dataset,
)
from paramviz import paths
from paramviz.backbones import Backbone, init, load, save
from paramviz.errors import UserError
from paramviz.io import atomic_path

DATASETS = ("textures", "skimage-textures", "fashion-mnist")
ADVERSARIAL_MODES = ("none", "pgd", "fgsm", "free")
TRAINABLE_ARCHS = ("resnet18", "resnet50", "vgg16", "vgg19", "vgg16_bn", "vgg19_bn")
STATE_SUFFIX = ".train-state"
FASHION_MNIST_SIZE = 28
EVAL_SEED_OFFSET = 1000  # the evaluation attack's key is independent of the training stream


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained weights (and nothing that does not).

    ``adversarial``: ``"none"`` (standard training); ``"pgd"`` (Madry et al.: train on PGD
    examples with ``attack_steps`` steps); ``"fgsm"`` (Wong et al. 2020: one step of 1.25 ε from a
    random start); ``"free"`` (Shafahi et al. 2019: every batch is replayed ``free_replays`` times,
    one optimiser update and one ε-sized ascent step per replay, the perturbation carried over to
    the next batch: set ``epochs`` ≈ the PGD epochs / ``free_replays`` for the same cost).
    ``eps_warmup``: the fraction of training over which the training ε grows linearly from 0 to
    ``eps``. Adversarial training from scratch at the full ε on the 174 texture classes never
    leaves the constant-prediction plateau (loss ln 174 throughout, measured); growing ε lets the
    net learn features first and make them robust as the ball grows.
    ``train_per_class`` / ``test_per_class`` apply to the texture datasets.
    """

    arch: str = "resnet18"
    width: float = 0.125
    dataset: str = "textures"
    image_size: int = 32
    train_per_class: int = 64
    test_per_class: int = 16
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    adversarial: str = "none"
    norm: str = "l2"
    eps: float = 0.5
    attack_steps: int = 3
    attack_step_size: float | None = None
    eps_warmup: float = 0.3
    free_replays: int = 4
    eval_steps: int = 20
    eval_robust_limit: int | None = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "arch": (self.arch, TRAINABLE_ARCHS),
            "dataset": (self.dataset, DATASETS),
            "adversarial": (self.adversarial, ADVERSARIAL_MODES),
        }
        for field, (value, allowed) in checks.items():
            if value not in allowed:
                raise UserError(f"unknown {field} {value!r}; expected one of {', '.join(allowed)}")
        positive = ("width", "image_size", "train_per_class", "test_per_class", "epochs")
        positive += ("batch_size", "learning_rate", "free_replays")
        if bad := [name for name in positive if not getattr(self, name) > 0]:
            raise UserError(f"training settings must be positive: {', '.join(bad)}")
        if not 0 <= self.eps_warmup <= 1:
            raise UserError(f"eps_warmup is a fraction of training, not {self.eps_warmup}")
        self.eval_threat()  # validates norm, eps and steps

    def training_threat(self) -> Threat:
        """The attack used while training (meaningless for ``adversarial="none"``)."""
        if self.adversarial == "fgsm":
            return Threat(self.norm, self.eps, 1, 1.25 * self.eps)
        if self.adversarial == "free":
            return Threat(self.norm, self.eps, self.free_replays, self.eps)
        return Threat(self.norm, self.eps, self.attack_steps, self.attack_step_size)

    def eval_threat(self) -> Threat:
        """The PGD attack for robust accuracy: same ball as training, ``eval_steps`` steps."""
        return Threat(self.norm, self.eps, self.eval_steps)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls(**json.loads(text))

    def digest(self) -> str:
        """A short hash naming cached weights: a changed setting never reuses old weights."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:10]


# ----------------------------------------------------------------------------------------- data


def load_data(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """``(train, test)`` for ``config.dataset``, NHWC RGB in [0, 1]."""
    if config.dataset == "fashion-mnist":
        return tuple(fashion_mnist_rgb(split, config.image_size) for split in ("train", "test"))
    make = texture_dataset if config.dataset == "textures" else skimage_texture_dataset
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


# ---------------------------------------------------------------------------------------- model


def build_backbone(
    config: TrainConfig, num_classes: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Backbone:
    """The untrained network: Flax init, then He-normal kernels and zero-γ residual branches."""
    size = (config.image_size, config.image_size)
    options = {"width": config.width, "num_classes": num_classes, "mean": mean, "std": std}
    backbone = init(config.arch, jax.random.PRNGKey(config.seed), image_size=size, **options)
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


# ------------------------------------------------------------------------------------- training


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
        key=jax.random.PRNGKey(config.seed + 1),
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

    return jax.jit(free_step if config.adversarial == "free" else step)


def updates_per_step(config: TrainConfig) -> int:
    return config.free_replays if config.adversarial == "free" else 1


def total_steps(config: TrainConfig, train_size: int) -> int:
    """Batches over all epochs (an incomplete last batch is dropped)."""
    if config.batch_size > train_size:
        raise UserError(f"batch size {config.batch_size} exceeds the {train_size} training images")
    return config.epochs * (train_size // config.batch_size)


# ---------------------------------------------------------------------------------- checkpoints


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


# ------------------------------------------------------------------------------------ evaluation


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

    @jax.jit
    def clean(images, labels, _key):
        return jnp.argmax(logits_fn(params, images), axis=-1) == labels

    @jax.jit
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


# ----------------------------------------------------------------------------------------- train


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


def fit(
    backbone: Backbone,
    train_set: Dataset,
    test_set: Dataset,
    config: TrainConfig,
    out: Path,
    *,
    checkpoint_every: int = 500,
    resume: bool = True,
    progress: bool = True,
    refresh_every: int = 10,
    stop_after: int | None = None,
) -> TrainReport:
    """The training loop on given data and initial weights (``config``'s data fields unused).

    ``stop_after`` stops after that many steps in all, with a checkpoint, as an interruption would;
    calling again resumes. The host reads the metrics every ``refresh_every`` steps only.
    """
    from tqdm.auto import tqdm

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

    batches = make_batches(
        train_set.images,
        train_set.labels,
        config.batch_size,
        seed=config.seed,
        epochs=config.epochs,
    )
    bar = tqdm(total=total, initial=start, desc=out.stem, disable=not progress, unit="step")
    began, metrics = time.perf_counter() - seconds, jnp.zeros(3)
    try:
        for step, (images, labels) in zip(
            range(start, end), itertools.islice(batches, start, end), strict=True
        ):
            state, batch = step_fn(state, images, labels)
            metrics = metrics + batch
            if (step + 1) % refresh_every == 0 or step + 1 == end:
                loss, correct, count = np.asarray(metrics)
                bar.set_postfix(loss=f"{loss / count:.3f}", acc=f"{correct / count:.3f}")
                bar.update(step + 1 - bar.n)
                metrics = jnp.zeros(3)
            if (step + 1) % checkpoint_every == 0 and step + 1 < end:
                checkpoint(state, time.perf_counter() - began)
    except KeyboardInterrupt:
        checkpoint(state, time.perf_counter() - began)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - began
    if end < total:
        checkpoint(state, seconds)
        return TrainReport(out, config, end, total, seconds, None)
    evaluation = evaluate(
        logits_fn,
        state.params,
        test_set,
        config.eval_threat(),
        key=jax.random.PRNGKey(config.seed + EVAL_SEED_OFFSET),
        robust_limit=config.eval_robust_limit,
    )
    metadata = weights_metadata(out.stem, config, train_set.class_names, total, total)
    metadata |= {"evaluation": evaluation.to_json(), "training_seconds": f"{seconds:.1f}"}
    save(out, with_params(backbone, state.params), **metadata)
    state_path(out).unlink(missing_ok=True)
    return TrainReport(out, config, total, total, seconds, evaluation)


def finished_report(path: Path, config: TrainConfig) -> TrainReport | None:
    """The report of a completed run of ``config`` already at ``path``, else None."""
    if not path.is_file() or state_path(path).exists():
        return None
    try:
        info = load(path).metadata
    except UserError:
        return None
    if info.get("training") != config.to_json() or "evaluation" not in info:
        return None
    evaluation = Evaluation(**json.loads(info["evaluation"]))
    steps = int(info["training_steps"].split("/")[1])
    return TrainReport(path, config, steps, steps, float(info["training_seconds"]), evaluation)


def trained_dir() -> Path:
    """Where trained weights are cached (never committed)."""
    return paths.home() / "trained"


# ------------------------------------------------------------------------- default pairs, demo

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


def describe_training(config: TrainConfig) -> str:
    """E.g. ``"standard"`` or ``"pgd L2 eps=0.5, 3 steps of 0.4167"``."""
    if config.adversarial == "none":
        return "standard"
    return f"{config.adversarial} {config.training_threat().describe()}"


def format_table(reports: Iterable[TrainReport]) -> str:
    """A plain-text table of clean and robust accuracy, one row per trained model."""
    header = ("model", "arch", "width", "training", "clean", "robust", "robust attack", "time")
    rows = [header]
    for report in reports:
        config, evaluation = report.config, report.evaluation
        rows.append(
            (
                report.path.stem,
                config.arch,
                f"{config.width:g}",
                describe_training(config),
                f"{evaluation.clean_accuracy:.1%}" if evaluation else "-",
                f"{evaluation.robust_accuracy:.1%}" if evaluation else "-",
                f"{evaluation.threat} (n={evaluation.robust_examples})" if evaluation else "-",
                f"{report.seconds / 60:.1f} min",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


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
    with exclusive_lock(path.with_name(f".{path.name}.lock")):
        if not path.is_file():
            work = path.parent / ".partial" / path.name
            train(DEMO_CONFIG, work, progress=progress, checkpoint_every=100)
            os.replace(work, path)
    return path


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed) for the block."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
