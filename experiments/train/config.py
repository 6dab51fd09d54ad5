"""What determines a trained network: :class:`TrainConfig`, validated on construction."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from paramviz.backbones import architectures
from paramviz.errors import UserError
from paramviz.experiments.attacks import Threat

DATASETS = ("textures", "skimage-textures", "scenes", "fashion-mnist")


ADVERSARIAL_MODES = ("none", "pgd", "fgsm", "free")


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
        trainable = tuple(arch.name for arch in architectures() if arch.trainable)
        checks = {
            "arch": (self.arch, trainable),
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


def describe_training(config: TrainConfig) -> str:
    """E.g. ``"standard"`` or ``"pgd L2 eps=0.5, 3 steps of 0.4167"``."""
    if config.adversarial == "none":
        return "standard"
    return f"{config.adversarial} {config.training_threat().describe()}"
