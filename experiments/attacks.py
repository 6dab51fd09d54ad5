"""Projected gradient ascent on the input (PGD, Madry et al. 2018), shared by everything that
attacks a network: adversarial training, robust accuracy, and the R(f) measurement.

:func:`pgd` maximises *any* differentiable loss of the input within an L2 or L∞ ball around it and
inside the image range [0, 1]. The steps follow MadryLab's ``robustness`` library so results are
comparable with theirs:

* L2 step: the gradient normalised to unit L2 norm per example, times ``step_size``;
  L∞ step: the sign of the gradient times ``step_size``.
* After each step the perturbation is projected onto the ε-ball, then the image is clamped to
  [0, 1]. Clamping only moves pixels towards the (in-range) clean image, so it never leaves the
  ball: both constraints hold after every step.
* Random start: L∞ uniform in the ε-cube; L2 a random direction at radius ε (as ``robustness``
  does), both clamped to [0, 1].

The first axis is the batch: norms, normalisation and projection are per example.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax

from paramviz.errors import UserError

NORMS = ("l2", "linf")
# Attacks of at most this many steps are unrolled into straight-line code: XLA on CPU runs a
# while-loop body 1.4-3x slower than the same ops unrolled (measured on the narrow ResNet-18 and
# VGG-16 at 32 px), which dominates adversarial training; longer attacks keep the loop so their
# compile time does not grow with the step count.
MAX_UNROLLED_STEPS = 32
_TINY = 1e-12  # guards divisions by a zero gradient or a zero perturbation


@dataclass(frozen=True)
class Threat:
    """A PGD budget: ball (``norm``, ``eps``) and optimiser (``steps`` of ``step_size``).

    ``step_size=None`` takes Madry et al.'s rule of thumb, 2.5 ε / steps, which lets the iterate
    cross the ball and come back, so the attack is not limited by its step length.
    """

    norm: str
    eps: float
    steps: int
    step_size: float | None = None

    def __post_init__(self) -> None:
        check_norm(self.norm)
        if self.eps < 0 or self.steps < 0:
            raise UserError(f"attack eps ({self.eps}) and steps ({self.steps}) must be >= 0")

    @property
    def step_length(self) -> float:
        """The step size actually used."""
        if self.step_size is not None:
            return self.step_size
        return 2.5 * self.eps / max(self.steps, 1)

    def describe(self) -> str:
        """E.g. ``"L2 eps=0.5, 20 steps of 0.0625"`` for tables and metadata."""
        name = {"l2": "L2", "linf": "Linf"}[self.norm]
        return f"{name} eps={self.eps:g}, {self.steps} steps of {self.step_length:.4g}"

    def attack(
        self,
        loss_fn: Callable[[jax.Array], jax.Array],
        x: jax.Array,
        key: jax.Array,
        random_start: bool = True,
        scale: float | jax.Array = 1.0,
    ) -> jax.Array:
        """:func:`pgd` with this budget; ``scale`` (may be traced) shrinks ε and the step."""
        return pgd(
            loss_fn,
            x,
            norm=self.norm,
            eps=self.eps * scale,
            steps=self.steps,
            step_size=self.step_length * scale,
            key=key,
            random_start=random_start,
        )


def check_norm(norm: str) -> None:
    """``UserError`` unless ``norm`` is one of :data:`NORMS`."""
    if norm not in NORMS:
        raise UserError(f"unknown attack norm {norm!r}; expected one of {', '.join(NORMS)}")


def per_example_l2(x: jax.Array) -> jax.Array:
    """L2 norm of each example, shaped to broadcast against ``x`` (``(N, 1, ..., 1)``)."""
    return jnp.sqrt(jnp.sum(jnp.square(x), axis=tuple(range(1, x.ndim)), keepdims=True))


def steepest_ascent(grad: jax.Array, norm: str) -> jax.Array:
    """The unit-size step direction that increases the loss fastest under ``norm``."""
    if norm == "l2":
        return grad / jnp.maximum(per_example_l2(grad), _TINY)
    return jnp.sign(grad)


def project(delta: jax.Array, norm: str, eps: float | jax.Array) -> jax.Array:
    """The closest perturbation to ``delta`` inside the ε-ball (per example)."""
    if norm == "l2":
        return delta * jnp.minimum(1.0, eps / jnp.maximum(per_example_l2(delta), _TINY))
    return jnp.clip(delta, -eps, eps)


def constrain(x_adv: jax.Array, x: jax.Array, norm: str, eps: float | jax.Array) -> jax.Array:
    """``x_adv`` moved into the ε-ball around ``x`` and then into [0, 1] (stays in the ball)."""
    return jnp.clip(x + project(x_adv - x, norm, eps), 0.0, 1.0)


def ascent_step(
    x_adv: jax.Array,
    x: jax.Array,
    grad: jax.Array,
    *,
    norm: str,
    eps: float | jax.Array,
    step_size: float | jax.Array,
) -> jax.Array:
    """One PGD step from ``x_adv`` along ``grad`` (the loss gradient there), then constrain."""
    return constrain(x_adv + step_size * steepest_ascent(grad, norm), x, norm, eps)


def random_point_in_ball(
    key: jax.Array, x: jax.Array, norm: str, eps: float | jax.Array
) -> jax.Array:
    """A random point of the ε-ball around ``x`` (see the module docstring), clamped to [0, 1]."""
    if norm == "l2":
        direction = jax.random.normal(key, x.shape, x.dtype)
        delta = eps * direction / jnp.maximum(per_example_l2(direction), _TINY)
    else:
        delta = jax.random.uniform(key, x.shape, x.dtype, -eps, eps)
    return constrain(x + delta, x, norm, eps)


def pgd(
    loss_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    *,
    norm: str,
    eps: float | jax.Array,
    steps: int,
    step_size: float | jax.Array,
    key: jax.Array,
    random_start: bool = True,
    unroll: bool | None = None,
) -> jax.Array:
    """Inputs ``x'`` with ``‖x' − x‖ ≤ eps`` (per example) and ``x' ∈ [0, 1]`` that maximise
    ``loss_fn``, by ``steps`` steps of projected gradient ascent.

    ``loss_fn(x')`` returns a scalar or per-example losses (summed: the examples of a batch must not
    interact, e.g. eval-mode batch norm). ``steps`` is static (a ``lax.fori_loop``); ``eps`` and
    ``step_size`` may be traced. The result carries no gradient (``stop_gradient``): it is a point
    to evaluate at, not a function of the network's parameters. ``unroll`` (default: when
    ``steps <= MAX_UNROLLED_STEPS``) compiles the loop as straight-line code.
    """
    check_norm(norm)
    x = jnp.asarray(x)
    grad_fn = jax.grad(lambda z: jnp.sum(loss_fn(z)))
    start = random_point_in_ball(key, x, norm, eps) if random_start else x

    def body(_, x_adv):
        return ascent_step(x_adv, x, grad_fn(x_adv), norm=norm, eps=eps, step_size=step_size)

    if unroll is None:
        unroll = steps <= MAX_UNROLLED_STEPS
    return lax.stop_gradient(lax.fori_loop(0, steps, body, start, unroll=unroll or 1))
