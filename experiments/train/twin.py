"""A robust twin of any network, made here: adversarial distillation from the original.

Robust ImageNet networks cannot be downloaded on every machine, and most users' own networks
have no robust version anywhere. A twin starts as a copy of the network (the *teacher*) and is
fine-tuned so that, inside an L2 ball of radius ε around each training picture, its outputs stay
close to the teacher's outputs at the clean picture:

    loss = D(S(x), T(x)) + β · D(S(x'), T(x)),   x' = argmax_{‖x' − x‖₂ ≤ ε} D(S(x'), T(x))

with ``x'`` found by PGD (:func:`paramviz.experiments.attacks.pgd`) against the student ``S``. ``D``
is, by default, the relative squared error ``‖S − T‖² / ‖T‖²`` of the style layers' features (the
layers whose robustness R(f) style transfer depends on, and the only outputs a trunk without a
classifier has); with ``target="logits"`` it is the KL divergence of the teacher's class
distribution from the student's (adversarially robust distillation, Goldblum et al., AAAI 2020,
with TRADES' clean term, Zhang et al., ICML 2019). Features are the default because on
EfficientNet-Lite0, 100 steps of logit distillation left R(f) of the style layers at 0.87-1.00
of the original's while clean agreement fell to 56 % (experiments/README.md). The teacher's
outputs are the only labels, so any pictures serve: the natural photographs of Debian's
wallpaper packages (:func:`photo_pool`), cropped at random scales and flipped.

ε grows linearly from 0 over the first ``eps_warmup`` of training (as in ``TrainConfig``).
Batch-norm statistics stay the teacher's; every parameter is trained, without weight decay
(decay would pull the weights towards zero, not towards the teacher). Training checkpoints
and resumes exactly as :mod:`paramviz.experiments.train.loop` does, and the twin is a
``.safetensors`` file like any converted network, named by the user and kept in
``$PARAMVIZ_HOME/trained``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from paramviz import rng, xla
from paramviz.backbones import Backbone, read_metadata, save, style_preset
from paramviz.errors import UserError
from paramviz.experiments.attacks import Threat
from paramviz.experiments.datasets import at_short_side, wallpaper_files
from paramviz.experiments.train.loop import (
    TrainState,
    eps_scale,
    make_optimizer,
    restore_state,
    run_checkpointed,
    save_state,
    state_path,
)
from paramviz.experiments.train.model import with_params
from paramviz.paths import trained_dir

TARGETS = ("features", "logits")
HELD_OUT_EVERY = 6  # every 6th photograph (sorted by file) is held out for the evaluation
EVAL_CROPS = 192
EVAL_ATTACK_STEPS = 20
EVAL_STREAM = 2**32 - 1  # the held-out crops' random stream; training step s uses s


@dataclass(frozen=True)
class TwinConfig:
    """Everything that determines a twin, the teacher's file hash (``teacher``) included.

    ``eps``: the L2 radius in [0, 1] pixel units at ``image_size``. ``target``: ``features``
    (of ``layers``, default the style preset's style layers) or ``logits``. ``robust_weight``:
    β above.
    """

    teacher: str
    eps: float = 0.25
    image_size: int = 128
    target: str = "features"
    layers: tuple[str, ...] = ()
    steps: int = 420
    batch_size: int = 32
    attack_steps: int = 3
    robust_weight: float = 4.0
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    eps_warmup: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise UserError(f"unknown twin target {self.target!r}; expected {', '.join(TARGETS)}")
        positive = ("eps", "image_size", "steps", "batch_size", "attack_steps", "learning_rate")
        if bad := [name for name in positive if not getattr(self, name) > 0]:
            raise UserError(f"robust-twin settings must be positive: {', '.join(bad)}")
        if not 0 <= self.eps_warmup <= 1:
            raise UserError(f"eps_warmup is a fraction of training, not {self.eps_warmup}")
        object.__setattr__(self, "layers", tuple(self.layers))

    def threat(self) -> Threat:
        return Threat("l2", self.eps, self.attack_steps)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TwinConfig:
        return cls(**json.loads(text))


def twin_path(name: str) -> Path:
    """A bare NAME is kept as ``$PARAMVIZ_HOME/trained/NAME.safetensors`` (``--weights NAME``
    then finds it); anything with a suffix or a folder is a path as given."""
    path = Path(name)
    return (
        trained_dir() / f"{name}.safetensors" if not path.suffix and len(path.parts) == 1 else path
    )


def resolved_target(backbone: Backbone, config: TwinConfig) -> tuple[str, tuple[str, ...]]:
    """``("logits", ("logits",))`` or ``("features", layers)`` for this network."""
    target = config.target
    if target == "logits":
        if "logits" not in backbone.layer_names:
            raise UserError(
                f"this {backbone.arch} has no logits (it stops at {backbone.layer_names[-1]}): "
                "use --target features"
            )
        return target, ("logits",)
    layers = config.layers or tuple(style_preset(backbone)[0])
    backbone.module.check_layers(layers)
    return target, layers


# ------------------------------------------------------------------------------------ pictures


def photo_pool(side: int, photos: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
    """uint8 RGB pictures with their shorter side at ``side`` px: ``photos``, else every
    wallpaper of Debian's background packages
    (``paramviz.experiments.datasets.wallpaper_files``)."""
    if photos is None:
        from PIL import Image

        files = wallpaper_files()
        if not files:
            from paramviz.experiments.datasets import WALLPAPER_PACKAGES

            raise UserError(
                f"no photographs to train on: install the Debian packages {WALLPAPER_PACKAGES} "
                "(apt-get install ...)"
            )
        photos = [np.asarray(Image.open(path).convert("RGB")) for path in files]
    return [at_short_side(np.asarray(photo), side) for photo in photos]


def split_pool(pool: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``(training, held out)``: every :data:`HELD_OUT_EVERY`-th picture is held out."""
    held = [p for i, p in enumerate(pool) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    kept = [p for i, p in enumerate(pool) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    return kept or pool, held or pool


def random_crops(
    pool: list[np.ndarray], count: int, size: int, generator: np.random.Generator
) -> np.ndarray:
    """``count`` crops of ``size`` px in [0, 1]: a random picture, a square of a random side
    between ``size`` and the picture's shorter side, resized, flipped at random."""
    from PIL import Image

    crops = []
    for _ in range(count):
        picture = pool[generator.integers(len(pool))]
        height, width = picture.shape[:2]
        side = int(generator.integers(size, min(height, width) + 1))
        top = int(generator.integers(height - side + 1))
        left = int(generator.integers(width - side + 1))
        crop = Image.fromarray(picture[top : top + side, left : left + side])
        crop = np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))
        crops.append(crop[:, ::-1] if generator.random() < 0.5 else crop)
    return np.stack(crops).astype(np.float32) / 255.0


# ------------------------------------------------------------------------------------ distances


def output_distance(target: str, student: dict, teacher: dict) -> jax.Array:
    """Per example: KL(teacher ‖ student) of the class distributions, or the mean over layers
    of ``‖S − T‖² / ‖T‖²``."""
    if target == "logits":
        log_t = jax.nn.log_softmax(teacher["logits"])
        log_s = jax.nn.log_softmax(student["logits"])
        return jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1)
    terms = []
    for layer, t in teacher.items():
        axes = tuple(range(1, t.ndim))
        error = jnp.sum(jnp.square(student[layer] - t), axis=axes)
        terms.append(error / jnp.maximum(jnp.sum(jnp.square(t), axis=axes), 1e-12))
    return sum(terms) / len(terms)


# ------------------------------------------------------------------------------------- training


def make_twin_step(teacher: Backbone, config: TwinConfig, optimizer, total: int):
    """The jit-compiled ``(state, teacher_params, images) -> (state, [clean, robust] loss)``."""
    target, layers = resolved_target(teacher, config)
    fixed = {name: value for name, value in teacher.variables.items() if name != "params"}
    module, threat = teacher.module, config.threat()
    warmup = round(config.eps_warmup * total)

    def outputs(params, images):
        return module.apply({**fixed, "params": params}, images, layers=layers)

    def step(state: TrainState, teacher_params, images):
        clean_teacher = jax.lax.stop_gradient(outputs(teacher_params, images))
        scale = eps_scale(state.step, warmup)

        def distance(params, x):
            return output_distance(target, outputs(params, x), clean_teacher)

        key = jax.random.fold_in(state.key, state.step)
        adversarial = threat.attack(lambda x: distance(state.params, x), images, key, scale=scale)

        def loss(params):
            clean = jnp.mean(distance(params, images))
            robust = jnp.mean(distance(params, adversarial))
            return clean + config.robust_weight * robust, jnp.stack([clean, robust])

        grads, losses = jax.grad(loss, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state._replace(params=params, opt_state=opt_state, step=state.step + 1), losses

    return xla.jit(step)


@dataclass(frozen=True)
class TwinReport:
    """What :func:`train_twin` did (``complete`` False when stopped early)."""

    path: Path
    config: TwinConfig
    steps_done: int
    seconds: float

    @property
    def complete(self) -> bool:
        return self.steps_done >= self.config.steps


def twin_metadata(teacher: Backbone, config: TwinConfig, step: int, seconds: float) -> dict:
    return {
        "source": f"robust twin of {teacher.metadata.get('source', teacher.arch)}",
        "source_format": "paramviz-twin",
        "twin": config.to_json(),
        "teacher_file": str(teacher.metadata.get("weights_file", "")),
        "training_steps": f"{step}/{config.steps}",
        "training_seconds": f"{seconds:.1f}",
    }


def finished_twin(path: Path, config: TwinConfig) -> TwinReport | None:
    """The report of a completed twin of ``config`` already at ``path``, else None."""
    if not path.is_file() or state_path(path).exists():
        return None
    try:
        info = read_metadata(path)
        done = TwinConfig.from_json(info["twin"]) == config
        steps = int(info["training_steps"].split("/")[0])
    except (UserError, KeyError, TypeError, ValueError):
        return None
    if not done or steps < config.steps:
        return None
    return TwinReport(path, config, steps, float(info["training_seconds"]))


@xla.hands_memory_back
def train_twin(
    teacher: Backbone,
    config: TwinConfig,
    out: Path,
    *,
    photos: Sequence[np.ndarray] | None = None,
    checkpoint_every: int = 50,
    resume: bool = True,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> TwinReport:
    """Distil ``teacher`` into its robust twin at ``out`` (resuming a run of the same config).

    ``stop_after`` stops after that many steps in all, with a checkpoint, as an interruption
    would. A finished twin of the same config at ``out`` is returned as is.
    """
    if resume and (done := finished_twin(out, config)):
        return done
    pool, _ = split_pool(photo_pool(config.image_size * 2, photos))
    optimizer = make_optimizer(config, config.steps)
    state = TrainState(
        params=teacher.variables["params"],
        opt_state=optimizer.init(teacher.variables["params"]),
        step=jnp.zeros((), jnp.int32),
        key=rng.key(config.seed + 1),
        delta=jnp.zeros((1,), jnp.float32),
    )
    seconds = 0.0
    if resume and state_path(out).is_file():
        state, seconds = restore_state(state_path(out), state, config)
    step_fn = make_twin_step(teacher, config, optimizer, config.steps)
    start = int(state.step)
    end = config.steps if stop_after is None else min(config.steps, stop_after)

    def checkpoint(state: TrainState, elapsed: float) -> None:
        save_state(state_path(out), state, config, elapsed)
        metadata = twin_metadata(teacher, config, int(state.step), elapsed)
        save(out, with_params(teacher, state.params), **metadata)

    def step(index: int, refresh: bool) -> dict[str, str]:
        nonlocal state
        generator = np.random.default_rng([config.seed, index])
        images = random_crops(pool, config.batch_size, config.image_size, generator)
        state, losses = step_fn(state, teacher.variables["params"], images)
        if not refresh:
            return {}
        clean, robust = np.asarray(losses)
        return {"clean": f"{clean:.3f}", "robust": f"{robust:.3f}"}

    seconds = run_checkpointed(
        step,
        lambda elapsed: checkpoint(state, elapsed),
        start=start,
        end=end,
        total=config.steps,
        desc=out.stem,
        seconds=seconds,
        progress=progress,
        checkpoint_every=checkpoint_every,
    )
    checkpoint(state, seconds)
    if end >= config.steps:
        state_path(out).unlink(missing_ok=True)
    return TwinReport(out, config, end, seconds)


# ----------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class TwinEvaluation:
    """A twin against its original on held-out crops, each figure as ``[twin on clean crops,
    twin under PGD, original under PGD]`` (the attack, ``threat``, aimed at the network scored).

    ``agreement`` (networks with logits): the share of crops whose top-1 class is the original's
    on the clean crop. ``feature_error`` (twins of features): the mean relative error
    ``‖S − T‖² / ‖T‖²`` of the distilled layers against the original's on the clean crop.
    ``robustness``: R(f) per layer, ``{layer: [original, twin]}``.
    """

    crops: int
    threat: str
    agreement: list[float] | None
    feature_error: list[float] | None
    robustness: dict[str, list[float]]
    robustness_attack: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def held_out_crops(config: TwinConfig, photos: Sequence[np.ndarray] | None, count: int):
    """A fixed set of crops from the held-out photographs."""
    _, held = split_pool(photo_pool(config.image_size * 2, photos))
    return random_crops(
        held, count, config.image_size, np.random.default_rng([config.seed, EVAL_STREAM])
    )


def evaluate_twin(
    original: Backbone,
    twin: Backbone,
    config: TwinConfig,
    *,
    robustness_pictures: np.ndarray,
    robustness_eps: float,
    robustness_layers: Sequence[str],
    photos: Sequence[np.ndarray] | None = None,
    crops: int = EVAL_CROPS,
    robustness_steps: int = EVAL_ATTACK_STEPS,
    batch_size: int = 32,
) -> TwinEvaluation:
    """Agreement (with logits) and feature error (a twin of features) on held-out crops, clean
    and under PGD-20 at the training ε, and R(f) of ``robustness_layers`` on
    ``robustness_pictures`` (at their own size, in an L2 ball of ``robustness_eps``) for both
    networks."""
    from paramviz.experiments.robustness import attack_layer, robustness_ratio

    target, layers = resolved_target(original, config)
    images = held_out_crops(config, photos, crops)
    threat = Threat("l2", config.eps, EVAL_ATTACK_STEPS)
    key = rng.key(config.seed + 1000)

    @functools.partial(xla.jit, static_argnames="measure")
    def scores(attacked: Backbone, images, key, *, measure: str) -> jax.Array:
        """``[clean, attacked]`` summed over the batch: agreements, or feature errors."""
        if measure == "agreement":
            labels = jnp.argmax(original(images, ("logits",))["logits"], axis=-1)

            def logits(x):
                return attacked(x, ("logits",))["logits"]

            def loss(x):
                return optax.softmax_cross_entropy_with_integer_labels(logits(x), labels)

            def score(x):
                return jnp.sum(jnp.argmax(logits(x), axis=-1) == labels).astype(jnp.float32)
        else:
            reference = original(images, layers)

            def loss(x):
                return output_distance("features", attacked(x, layers), reference)

            def score(x):
                return jnp.sum(loss(x))

        return jnp.stack([score(images), score(threat.attack(loss, images, key))])

    def averaged(attacked: Backbone, measure: str) -> np.ndarray:
        total = np.zeros(2)
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            fold = jax.random.fold_in(key, start)
            total += np.asarray(scores(attacked, batch, fold, measure=measure))
        return total / len(images)

    def measured(measure: str) -> list[float]:
        twin_clean, twin_attacked = averaged(twin, measure)
        return [float(twin_clean), float(twin_attacked), float(averaged(original, measure)[1])]

    has_logits = "logits" in original.layer_names
    pictures = jnp.asarray(robustness_pictures)
    step_size = 2.5 * robustness_eps / robustness_steps
    robustness = {
        layer: [
            robustness_ratio(
                attack_layer(
                    network,
                    pictures,
                    rng.key(config.seed),
                    robustness_eps,
                    step_size,
                    layer=layer,
                    steps=robustness_steps,
                )
            )
            for network in (original, twin)
        ]
        for layer in robustness_layers
    }
    return TwinEvaluation(
        crops=len(images),
        threat=threat.describe(),
        agreement=measured("agreement") if has_logits else None,
        feature_error=measured("features") if target == "features" else None,
        robustness=robustness,
        robustness_attack=Threat("l2", robustness_eps, robustness_steps).describe()
        + f" at {pictures.shape[1]} px",
    )
