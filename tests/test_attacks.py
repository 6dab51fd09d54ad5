"""PGD (experiments.attacks): the constraint set, MadryLab's step rule, and that it finds
adversarial examples where they exist."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from paramviz.backbones import init
from paramviz.errors import UserError
from paramviz.experiments.attacks import Threat, pgd

SHAPE = (8, 8, 3)  # small images: fast, but with a real conv net in front


def random_conv_loss(seed: int, labels: jax.Array):
    """Per-example cross-entropy of a randomly initialised small conv net (a real backbone)."""
    backbone = init(
        "sequential",
        jax.random.PRNGKey(seed),
        image_size=SHAPE[:2],
        spec="conv8k3p1,relu,conv8k3s2p1,relu,flatten,linear5",
        input_size=SHAPE[:2],
    )

    def loss(images):
        logits = backbone(images, ["logits"])["logits"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)

    return loss


def images_with_saturated_pixels(seed: int, n: int) -> jnp.ndarray:
    """Uniform images in which a third of the pixels sit exactly on 0 or 1 (clamping matters)."""
    rng = np.random.default_rng(seed)
    images = rng.random((n, *SHAPE), dtype=np.float32)
    saturated = rng.random(images.shape) < 1 / 3
    return jnp.asarray(np.where(saturated, np.round(images), images))


def per_example_norm(delta: jnp.ndarray, norm: str) -> np.ndarray:
    flat = np.asarray(delta, np.float64).reshape(len(delta), -1)
    return np.linalg.norm(flat, axis=1) if norm == "l2" else np.abs(flat).max(axis=1)


@pytest.mark.parametrize("random_start", [True, False])
@pytest.mark.parametrize(("norm", "eps"), [("l2", 0.3), ("linf", 8 / 255)])
@pytest.mark.parametrize("step_factor", [2.5, 20.0])  # rule-of-thumb and far too large steps
def test_attack_stays_in_the_ball_and_the_image_range(norm, eps, random_start, step_factor):
    n = 16
    labels = jnp.arange(n) % 5
    for seed in range(2):
        loss = random_conv_loss(seed, labels)
        x = images_with_saturated_pixels(seed, n)
        x_adv = pgd(
            loss,
            x,
            norm=norm,
            eps=eps,
            steps=5,
            step_size=step_factor * eps / 5,
            key=jax.random.PRNGKey(seed),
            random_start=random_start,
        )
        assert np.all(per_example_norm(x_adv - x, norm) <= eps + 1e-6)
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
        assert float(loss(x_adv).mean()) > float(loss(x).mean())  # it did attack


def linear_loss(weights: jnp.ndarray):
    """``<w, x>`` per example: its gradient is ``w`` everywhere."""
    return lambda x: jnp.sum(x * weights, axis=(1, 2, 3))


def unit_l2(w: np.ndarray) -> np.ndarray:
    return w / np.linalg.norm(w.reshape(len(w), -1), axis=1)[:, None, None, None]


@pytest.mark.parametrize(
    ("norm", "eps", "step_size", "direction"),
    [
        ("l2", 10.0, 0.1, unit_l2),  # MadryLab's L2 step: the gradient at unit norm per example
        ("linf", 1.0, 0.01, np.sign),  # the sign of the gradient
    ],
)
def test_one_step_is_the_steepest_direction_times_the_step_size(norm, eps, step_size, direction):
    weights = jax.random.normal(jax.random.PRNGKey(0), (2, *SHAPE))
    x = jnp.full((2, *SHAPE), 0.5)
    x_adv = pgd(
        linear_loss(weights), x, norm=norm, eps=eps, steps=1, step_size=step_size,
        key=jax.random.PRNGKey(0), random_start=False,
    )  # fmt: skip
    np.testing.assert_allclose(x_adv - x, step_size * direction(np.asarray(weights)), atol=1e-6)


@pytest.mark.parametrize(("norm", "eps"), [("l2", 0.5), ("linf", 0.05)])
def test_linear_loss_is_pushed_to_the_boundary_along_its_gradient(norm, eps):
    """Steps much longer than ε reach the maximiser of ``<w, x>`` in the ball from a random start
    (the projection neither overshoots nor shrinks the perturbation)."""
    weights = jax.random.normal(jax.random.PRNGKey(2), (3, *SHAPE))
    x = jnp.full((3, *SHAPE), 0.5)
    x_adv = pgd(
        linear_loss(weights), x, norm=norm, eps=eps, steps=10, step_size=10 * eps,
        key=jax.random.PRNGKey(3),
    )  # fmt: skip
    flat = np.asarray(weights).reshape(3, -1)
    if norm == "l2":
        optimum = eps * flat / np.linalg.norm(flat, axis=1, keepdims=True)
    else:
        optimum = eps * np.sign(flat)
    np.testing.assert_allclose(np.asarray(x_adv - x).reshape(3, -1), optimum, atol=1e-5)


def gaussian_blobs(n: int, seed: int, shift: float = 0.1, noise: float = 0.05):
    """Two classes of 8×8×3 images: mid-grey ∓ ``shift`` plus pixel noise (linearly separable)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    sign = (2 * labels - 1)[:, None, None, None]
    images = 0.5 + shift * sign + noise * rng.standard_normal((n, *SHAPE))
    return jnp.asarray(np.clip(images, 0, 1), jnp.float32), jnp.asarray(labels)


def nearest_mean_logits(images: jnp.ndarray) -> jnp.ndarray:
    """The undefended classifier: a linear model on the difference of the two class means."""
    score = jnp.mean(images - 0.5, axis=(1, 2, 3)) * 100.0
    return jnp.stack([-score, score], axis=1)


@pytest.mark.parametrize(("norm", "eps", "small_eps"), [("l2", 2.0, 0.2), ("linf", 0.15, 0.02)])
def test_attack_finds_adversarial_examples_for_an_undefended_model(norm, eps, small_eps):
    """Clean accuracy > 95 %; PGD at ε beyond the margin (L2 ≈ 1.4, L∞ 0.1) < 20 %, while an ε
    well inside the margin leaves it above 95 % (the attack is not just destroying images)."""
    images, labels = gaussian_blobs(256, seed=0)

    def loss(x):
        return optax.softmax_cross_entropy_with_integer_labels(nearest_mean_logits(x), labels)

    def accuracy(x):
        return float(jnp.mean(jnp.argmax(nearest_mean_logits(x), axis=1) == labels))

    def attacked(radius):
        threat = Threat(norm, radius, steps=10)
        return threat.attack(loss, images, jax.random.PRNGKey(0))

    assert accuracy(images) > 0.95
    assert accuracy(attacked(eps)) < 0.20
    assert accuracy(attacked(small_eps)) > 0.95


def test_threat_defaults_and_validation():
    threat = Threat("l2", 0.5, 20)
    assert threat.step_length == pytest.approx(2.5 * 0.5 / 20)
    assert threat.describe() == "L2 eps=0.5, 20 steps of 0.0625"
    assert Threat("linf", 0.1, 3, step_size=0.05).step_length == 0.05
    with pytest.raises(UserError, match="norm"):
        Threat("l1", 0.5, 3)
    with pytest.raises(UserError, match="norm"):
        pgd(lambda x: x.sum(), jnp.zeros((1, 2)), norm="L2", eps=1.0, steps=1, step_size=1.0,
            key=jax.random.PRNGKey(0))  # fmt: skip
