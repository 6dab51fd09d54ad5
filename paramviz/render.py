"""The optimisation loop: parameterisation -> transforms -> network(s) -> objective -> update.

The whole step is one jitted function. The host enqueues steps without waiting for them (JAX's
dispatch is asynchronous) and only reads results back at chunk boundaries (thresholds and every
``sync_every`` steps) to take snapshots, update the progress bar and check for non-finite losses;
the loss history and the last finite parameters live on the device. The networks' variables and
the objective's arrays enter the step as arguments, never as baked-in constants.

Loss = ``-objective`` (Lucid maximises). Step ``t``'s randomness is ``fold_in(PRNGKey(seed), t)``,
so a seed fixes the transforms' draws and the result; the parameterisation's own initial draw is
fixed when the :class:`~paramviz.param.ImageParam` is built.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from paramviz.backbones.base import Backbone
from paramviz.errors import UserError
from paramviz.objectives import IMAGE, INPUT, MAIN, PSEUDO_LAYERS, Objective, as_objective
from paramviz.param import ImageParam

Transform = Callable[[jax.Array, jax.Array], jax.Array]
Callback = Callable[[int, np.ndarray, float], None]
COMPLETED = "completed"


@dataclasses.dataclass
class RenderResult:
    """What a render produced.

    ``image`` is the last finite image ``(N, H, W, 3)``; ``losses[t]`` the loss (``-objective``)
    of the image after ``t`` updates (with step ``t``'s transform draw); ``terms`` the objective
    value of each summand on the final image; ``snapshots`` the images at the thresholds reached.
    """

    image: np.ndarray
    snapshots: dict[int, np.ndarray]
    losses: np.ndarray
    final_loss: float
    terms: dict[str, float]
    params: Any
    steps_run: int
    stopped_reason: str
    seed: int
    started_at: str
    elapsed_s: float


class _LoopState(NamedTuple):
    params: Any
    opt_state: Any
    good_params: Any  # the latest params whose loss was finite
    losses: jax.Array
    failed_at: jax.Array  # first step with a non-finite loss, -1 while none
    step: jax.Array


def _identity(key: jax.Array, images: jax.Array) -> jax.Array:
    return images


def resolve_transforms(transforms: Transform | str | None) -> Transform:
    """``None`` -> identity, a preset name -> ``transforms.preset(name)``, a callable as is."""
    if transforms is None:
        return _identity
    if isinstance(transforms, str):
        import transforms as transforms_lib

        try:
            return transforms_lib.preset(transforms)
        except ValueError as err:
            raise UserError(str(err)) from None
    if callable(transforms):
        return transforms
    raise UserError(f"transforms must be a preset name or a callable, not {transforms!r}")


def resolve_optimizer(
    optimizer: str | optax.GradientTransformation, learning_rate: float
) -> optax.GradientTransformation:
    """``"adam"`` (Lucid: Adam 0.05), ``"lbfgs"`` (zoom line search; ignores the learning rate)."""
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer
    if optimizer == "adam":
        return optax.adam(learning_rate)
    if optimizer == "lbfgs":
        return optax.lbfgs()
    raise UserError(
        f"unknown optimizer {optimizer!r}: use 'adam', 'lbfgs' or an optax.GradientTransformation"
    )


def _networks(backbone: Backbone, backbones: Mapping[str, Backbone] | None) -> dict[str, Backbone]:
    extra = dict(backbones or {})
    if MAIN in extra:
        raise UserError(f"backbones= names extra networks; {MAIN!r} is the backbone argument")
    return {MAIN: backbone, **extra}


def required_layers(
    objective: Objective, networks: Mapping[str, Backbone]
) -> dict[str, tuple[str, ...]]:
    """``{network: layers}`` the objective reads, in forward order; ``main`` is always present.

    Pseudo-layers (``input``, ``image``) are not asked of the networks. Unknown networks or
    layers raise :class:`UserError` naming what is available.
    """
    wanted: dict[str, set[str]] = {MAIN: set()}
    for network, layer in objective.layers:
        if network not in networks:
            raise UserError(
                f"objective reads network {network!r}, but render has {sorted(networks)}; "
                "pass extra networks as backbones={name: backbone}"
            )
        wanted.setdefault(network, set())
        if layer not in PSEUDO_LAYERS:
            wanted[network].add(layer)
    layers = {}
    for network, names in wanted.items():
        order = networks[network].layer_names
        unknown = sorted(names - set(order)) if order else []
        if unknown:
            raise UserError(
                f"network {network!r} ({networks[network].arch}) has no layer {unknown[0]!r}; "
                f"available: {', '.join(order)}"
            )
        layers[network] = tuple(n for n in order if n in names) if order else tuple(sorted(names))
    return layers


def network_features(
    networks: Mapping[str, Backbone],
    layers: Mapping[str, tuple[str, ...]],
    image: jax.Array,
    batch: jax.Array,
    relu_redirect: jax.Array | None = None,
) -> dict[str, dict[str, jax.Array]]:
    """What objectives read: ``features[net]`` = ``{"input": batch, "image": image, layer: ...}``.

    ``image`` is the parameterised image, ``batch`` the transformed one fed to every network;
    each network computes only ``layers[net]`` (see :func:`required_layers`).
    """
    return {
        name: {
            INPUT: batch,
            IMAGE: image,
            **(networks[name](batch, names, relu_redirect) if names else {}),
        }
        for name, names in layers.items()
    }


def _split_arrays(tree: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """Array leaves of ``tree`` (to pass into jit) and a function that puts them back."""
    leaves, treedef = jax.tree.flatten(tree)
    is_array = [isinstance(leaf, np.ndarray | jax.Array) for leaf in leaves]

    def rebuild(arrays: list[Any]) -> Any:
        it = iter(arrays)
        return treedef.unflatten(
            [next(it) if a else leaf for leaf, a in zip(leaves, is_array, strict=True)]
        )

    return [leaf for leaf, a in zip(leaves, is_array, strict=True) if a], rebuild


def _tree_where(condition: jax.Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)


def _validate_schedule(steps: int, thresholds: Sequence[int], sync_every: int) -> list[int]:
    if steps < 0:
        raise UserError(f"steps must be >= 0, got {steps}")
    if sync_every < 1:
        raise UserError(f"sync_every must be >= 1, got {sync_every}")
    bad = [t for t in thresholds if not 0 <= t <= steps]
    if bad:
        raise UserError(f"thresholds must lie in [0, steps={steps}], got {bad}")
    return sorted({*thresholds, *range(sync_every, steps, sync_every), steps})


class _Compiled(NamedTuple):
    step: Callable  # (state, objective_arrays, nets) -> state after one more update
    evaluate: Callable  # (params, step, terms_arrays, nets) -> (image, loss, summand values)
    objective_arrays: list
    terms_arrays: list


def _compile(
    objective: Objective,
    to_image: Callable[[Any], jax.Array],
    transform: Transform,
    opt: optax.GradientTransformation,
    layers: Mapping[str, tuple[str, ...]],
    relu_redirect_steps: int,
    base_key: jax.Array,
) -> _Compiled:
    """The jitted chunk runner and evaluator; weights and objective arrays are their arguments."""

    def features(params: Any, key: jax.Array, step: jax.Array, nets: Mapping[str, Backbone]):
        image = to_image(params)
        batch = transform(key, image)
        redirect = (step < relu_redirect_steps).astype(jnp.float32) if relu_redirect_steps else None
        return network_features(nets, layers, image, batch, redirect)

    def objective_value(fn: Callable, feats: Any) -> jax.Array:
        value = fn(feats)
        if jnp.shape(value) != ():
            raise UserError(f"objective must return a scalar, got shape {jnp.shape(value)}")
        return value

    objective_arrays, rebuild_objective = _split_arrays(objective.fn)
    terms_arrays, rebuild_terms = _split_arrays(tuple(t.fn for t in objective.summands()))

    def loss(params, arrays, key, step, nets):
        return -objective_value(rebuild_objective(arrays), features(params, key, step, nets))

    def step_once(s: _LoopState, arrays: list, nets: Mapping[str, Backbone]) -> _LoopState:
        key = jax.random.fold_in(base_key, s.step)

        def value_fn(params):
            return loss(params, arrays, key, s.step, nets)

        if optax.tree.get(s.opt_state, "value") is not None:  # line search kept value and grad
            value, grads = optax.value_and_grad_from_state(value_fn)(s.params, state=s.opt_state)
        else:
            value, grads = jax.value_and_grad(value_fn)(s.params)
        if isinstance(opt, optax.GradientTransformationExtraArgs):
            updates, opt_state = opt.update(
                grads, s.opt_state, s.params, value=value, grad=grads, value_fn=value_fn
            )
        else:
            updates, opt_state = opt.update(grads, s.opt_state, s.params)
        finite = jnp.isfinite(value)
        return _LoopState(
            params=_tree_where(finite, optax.apply_updates(s.params, updates), s.params),
            opt_state=_tree_where(finite, opt_state, s.opt_state),
            good_params=_tree_where(finite, s.params, s.good_params),
            losses=s.losses.at[s.step].set(value),
            failed_at=jnp.where(finite, s.failed_at, s.step),
            step=s.step + finite.astype(s.step.dtype),
        )

    # One jitted step dispatched from the host, not a lax.while_loop: XLA's CPU backend runs a loop
    # body 2-3x slower than the same computation as a top-level program (measured on VGG). JAX's
    # dispatch is asynchronous, so the host only enqueues steps and never waits on the device
    # between chunk boundaries. After a non-finite loss the step is a no-op (same step, same key).
    step = jax.jit(step_once)

    @jax.jit
    def evaluate(params, step, arrays, nets):
        """Image, loss and summand values of ``params`` with step ``step``'s transform draw."""
        feats = features(params, jax.random.fold_in(base_key, step), step, nets)
        values = [objective_value(fn, feats) for fn in rebuild_terms(arrays)]
        return feats[MAIN][IMAGE], -sum(values), jnp.stack(values)

    return _Compiled(step, evaluate, objective_arrays, terms_arrays)


def render(
    objective: Objective | str,
    param: ImageParam,
    backbone: Backbone,
    *,
    transforms: Transform | str | None = None,
    steps: int = 512,
    optimizer: str | optax.GradientTransformation = "adam",
    learning_rate: float = 0.05,
    seed: int = 0,
    thresholds: Sequence[int] = (),
    relu_redirect_steps: int = 0,
    backbones: Mapping[str, Backbone] | None = None,
    callback: Callback | None = None,
    progress: bool = True,
    sync_every: int = 64,
) -> RenderResult:
    """Optimise ``param`` so that ``objective`` is maximised; ``steps`` optimiser updates.

    ``backbone`` is network ``"main"``; ``backbones`` adds more by name (e.g. a separate content
    network ``{"content": net}`` read by ``content(..., network="content")``); every network sees
    the same transformed batch. For the first ``relu_redirect_steps`` steps the networks use
    Lucid's redirected ReLU gradient (Lucid: 16). ``callback(step, image, loss)`` runs and a
    snapshot is kept at each threshold. A non-finite loss stops the run with a warning and returns
    the last finite image (``stopped_reason`` says why).

    L-BFGS (``optimizer="lbfgs"``) reuses the value and gradient its line search found at the
    new point; with random transforms those came from the previous step's draw, so the objective
    it sees is stochastic and its curvature estimates noisy -- use it with ``transforms=None``.
    """
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    objective = as_objective(objective)
    networks = _networks(backbone, backbones)
    layers = required_layers(objective, networks)
    used_networks = {name: networks[name] for name in layers}
    transform = resolve_transforms(transforms)
    opt = resolve_optimizer(optimizer, learning_rate)
    boundaries = _validate_schedule(steps, thresholds, sync_every)
    compiled = _compile(
        objective,
        param.to_image,
        transform,
        opt,
        layers,
        relu_redirect_steps,
        jax.random.PRNGKey(seed),
    )
    step, evaluate = compiled.step, compiled.evaluate
    objective_arrays, terms_arrays = compiled.objective_arrays, compiled.terms_arrays
    params = jax.tree.map(jnp.asarray, param.params)
    state = _LoopState(
        params=params,
        opt_state=opt.init(params),
        good_params=params,
        losses=jnp.zeros((steps,), jnp.float32),
        failed_at=jnp.asarray(-1, jnp.int32),
        step=jnp.asarray(0, jnp.int32),
    )
    snapshots: dict[int, np.ndarray] = {}
    wanted_snapshots = set(thresholds)
    done = 0
    with _progress_bar(steps, progress) as bar:
        for boundary in boundaries:
            if boundary > done:
                for _ in range(boundary - done):
                    state = step(state, objective_arrays, used_networks)
                reached = int(state.step)
                bar.update(reached - done)
                done = reached
                if done:
                    bar.set_postfix(loss=f"{float(state.losses[done - 1]):.4g}")
                if int(state.failed_at) >= 0:
                    break
            if boundary in wanted_snapshots:
                image, value, _ = evaluate(state.params, done, terms_arrays, used_networks)
                snapshots[boundary] = np.asarray(image)
                if callback is not None:
                    callback(boundary, snapshots[boundary], float(value))

    failed_at, bad_value = int(state.failed_at), float("nan")
    if failed_at < 0:
        image, value, term_values = evaluate(state.params, done, terms_arrays, used_networks)
        final_params, steps_run, reason = state.params, done, COMPLETED
        if not np.isfinite(float(value)):  # the very last update broke the image
            failed_at, bad_value = done, float(value)
    else:
        bad_value = float(state.losses[failed_at])
    if failed_at >= 0:
        final_params, steps_run = state.good_params, max(failed_at - 1, 0)
        image, value, term_values = evaluate(final_params, steps_run, terms_arrays, used_networks)
        reason = (
            f"stopped at step {failed_at}: the loss became {bad_value}; returning the image of "
            f"step {steps_run}, the last with a finite loss"
        )
        warnings.warn(reason, RuntimeWarning, stacklevel=2)
    names = _unique_names([t.name for t in objective.summands()])
    return RenderResult(
        image=np.asarray(image),
        snapshots=snapshots,
        losses=np.asarray(state.losses[:done]),
        final_loss=float(value),
        terms={name: float(v) for name, v in zip(names, np.asarray(term_values), strict=True)},
        params=final_params,
        steps_run=steps_run,
        stopped_reason=reason,
        seed=seed,
        started_at=started_at,
        elapsed_s=time.perf_counter() - clock,
    )


def _unique_names(names: Sequence[str]) -> list[str]:
    """Names with ``#2``, ``#3`` ... appended to repeats, so no term is lost in a dict."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return unique


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="render", unit="step", leave=False)
