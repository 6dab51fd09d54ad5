"""The optimisation loop: parameterisation -> transforms -> network(s) -> objective -> update.

The whole step is one jitted function, compiled once per *structure* and kept: the objective's
shape (which terms, layers and losses, not its targets, weights or channel indices), the
parameterisation, the transforms, the optimizer and the networks' architectures. Everything else
(network weights, style targets, indices, the seed, the learning rate) enters the step as an
argument, so a second render that differs only in those compiles nothing. The step also returns
the image and each summand's value before its update, so snapshots and the final evaluation
need no second program (L-BFGS, whose line search holds its own values, keeps a small separate
evaluator). Set ``jax_compilation_cache_dir`` (the CLI does, under ``$PARAMVIZ_HOME``) and a new
process loads the compiled programs from disk instead of compiling again.

The steps between two chunk boundaries (thresholds and every ``sync_every`` steps) run as one call
of one program, a loop over the step, and the host reads results back only there, to take
snapshots, update the progress bar and check for non-finite losses; the recent losses and the
last finite parameters live on the device. With more than one device the batch axis of the
parameters (and so of the optimizer state) is sharded over all of them and the weights are
replicated.

Loss = ``-objective`` (Lucid maximises). Step ``t``'s randomness is ``fold_in(PRNGKey(seed), t)``,
so a seed fixes the transforms' draws and the result; the parameterisation's own initial draw is
fixed when the :class:`~paramviz.param.ImageParam` is built.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import time
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from paramviz import progress as progress_bars
from paramviz import rng, xla
from paramviz.backbones.base import Backbone
from paramviz.errors import UserError
from paramviz.objectives import IMAGE, INPUT, MAIN, PSEUDO_LAYERS, Objective, as_objective
from paramviz.param import ImageParam
from paramviz.vocabulary import OPTIMIZERS, TRANSFORM_PRESETS

Transform = Callable[[jax.Array, jax.Array], jax.Array]
Callback = Callable[[int, np.ndarray, float], None]
COMPLETED = "completed"
CACHE_SIZE = 32  # compiled programs kept per process (one per structure)
LOSS_RING = 64  # recent losses kept on the device; the host reads them at least this often


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
    losses: jax.Array  # ring buffer: step t's loss at t % len(losses)
    failed_at: jax.Array  # first step with a non-finite loss, -1 while none
    step: jax.Array


class _Inputs(NamedTuple):
    """Everything a step reads that is not loop state: arrays only, so none of it is baked in."""

    terms: list  # the arrays of the objective's summands
    image: list  # the arrays of the parameterisation's to_image
    transform: list  # the arrays of the transform
    variables: dict  # network name -> variables
    key: jax.Array
    redirect_steps: jax.Array


def _identity(key: jax.Array, images: jax.Array) -> jax.Array:
    return images


def resolve_transforms(transforms: Transform | str | None) -> Transform:
    """``None`` -> identity, a name -> that preset
    (:data:`~paramviz.vocabulary.TRANSFORM_PRESETS`), a callable as is."""
    if transforms is None:
        return _identity
    if isinstance(transforms, str):
        return TRANSFORM_PRESETS[transforms].load()
    if callable(transforms):
        return transforms
    raise UserError(f"transforms must be a preset name or a callable, not {transforms!r}")


def adam(learning_rate: float) -> optax.GradientTransformation:
    """Lucid's Adam, its learning rate a state entry, so any rate shares one program."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def lbfgs(learning_rate: float) -> optax.GradientTransformation:
    """optax's L-BFGS with its zoom line search (the line search sets the step)."""
    return optax.lbfgs()


def resolve_optimizer(
    optimizer: str | optax.GradientTransformation, learning_rate: float
) -> tuple[optax.GradientTransformation, Hashable]:
    """The optimizer and what identifies its update rule: a name
    (:data:`~paramviz.vocabulary.OPTIMIZERS`, identified by its name) or an
    ``optax.GradientTransformation`` (identified by itself)."""
    if isinstance(optimizer, optax.GradientTransformation):
        return optimizer, optimizer
    return OPTIMIZERS[optimizer].load()(learning_rate), optimizer


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


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, np.ndarray | np.generic | jax.Array)


class _Split(NamedTuple):
    """A pytree cut into what identifies its structure and the arrays it carries."""

    key: Hashable
    arrays: list
    rebuild: Callable[[list], Any]


def _split(tree: Any) -> _Split:
    """Array leaves (arguments of the compiled step) and the rest: the tree's structure, its
    static leaves (functions, names, flags) and its arrays' shapes, which key the cache."""
    leaves, treedef = jax.tree.flatten(tree)
    is_array = [_is_array(leaf) for leaf in leaves]
    static = tuple(leaf for leaf, a in zip(leaves, is_array, strict=True) if not a)
    arrays = [leaf for leaf, a in zip(leaves, is_array, strict=True) if a]
    shapes = tuple((np.shape(leaf), str(leaf.dtype)) for leaf in arrays)

    def rebuild(values: list) -> Any:
        it = iter(values)
        filled = [next(it) if a else leaf for leaf, a in zip(leaves, is_array, strict=True)]
        return treedef.unflatten(filled)

    return _Split((treedef, static, shapes), arrays, rebuild)


def _strong(tree: Any) -> Any:
    """``tree`` without weak types: otherwise the state an update returns (strongly typed) has
    another signature than the one it started from, and the step compiles a second time."""
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype=jnp.asarray(leaf).dtype), tree)


def _tree_where(condition: jax.Array, on_true: Any, on_false: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), on_true, on_false)


def _validate_schedule(steps: int, thresholds: Sequence[int], sync_every: int) -> list[int]:
    if steps < 0:
        raise UserError(f"steps must be >= 0, got {steps}")
    if not 1 <= sync_every <= LOSS_RING:
        raise UserError(f"sync_every must lie in [1, {LOSS_RING}], got {sync_every}")
    bad = [t for t in thresholds if not 0 <= t <= steps]
    if bad:
        raise UserError(f"thresholds must lie in [0, steps={steps}], got {bad}")
    return sorted({*thresholds, *range(sync_every, steps, sync_every), steps})


class _Program(NamedTuple):
    """A compiled render: ``run_steps(state, inputs, count) -> (state, (image, values))``, the
    image and the summands' values being those of the last step *before* its update;
    ``evaluate(params, step, inputs) -> (image, values)`` for optimizers whose step cannot report
    them (L-BFGS), else None; ``shapes[network][layer]`` of every layer read, for the objective's
    index checks."""

    run_steps: Callable
    evaluate: Callable | None
    shapes: dict[str, dict[str, tuple[int, ...]]]


_PROGRAMS: collections.OrderedDict[Hashable, _Program] = collections.OrderedDict()


def _program(
    key: Hashable,
    build: Callable[[], _Program],
) -> _Program:
    """The compiled program for ``key``, building (and keeping) it on first use."""
    try:
        program = _PROGRAMS.pop(key)
    except KeyError:
        program = build()
    except TypeError:  # something in the structure cannot be hashed: compile for this call only
        return build()
    _PROGRAMS[key] = program
    while len(_PROGRAMS) > CACHE_SIZE:
        _PROGRAMS.popitem(last=False)
    return program


def _build(
    terms: _Split,
    image: _Split,
    transform: _Split,
    opt: optax.GradientTransformation,
    templates: Mapping[str, Backbone],
    layers: Mapping[str, tuple[str, ...]],
    redirect: bool,
    example: _Inputs,
    state: _LoopState,
) -> _Program:
    """Trace and jit the step (and, for L-BFGS, the evaluator) for one structure.

    The step is traced here, once: that trace records the shapes of the layers read and is the
    one its first call compiles, so no second trace of the networks is needed for the shapes.
    """
    uses_value_fn = optax.tree.get(state.opt_state, "value") is not None  # a line search
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}

    def features(params: Any, inputs: _Inputs, step: jax.Array):
        picture = image.rebuild(inputs.image)(params)
        batch = transform.rebuild(inputs.transform)(jax.random.fold_in(inputs.key, step), picture)
        nets = {
            name: dataclasses.replace(templates[name], variables=inputs.variables[name])
            for name in layers
        }
        on = (step < inputs.redirect_steps).astype(jnp.float32) if redirect else None
        feats = network_features(nets, layers, picture, batch, on)
        for net, named in feats.items():  # static shapes, seen while tracing
            shapes[net] = {layer: tuple(value.shape) for layer, value in named.items()}
        return picture, feats

    def summands(inputs: _Inputs, feats: dict) -> jax.Array:
        stacked = []
        for fn in terms.rebuild(inputs.terms):
            value = fn(feats)
            if jnp.shape(value) != ():
                raise UserError(f"objective must return a scalar, got shape {jnp.shape(value)}")
            stacked.append(jnp.asarray(value, jnp.float32))
        return jnp.stack(stacked)

    def values(params: Any, inputs: _Inputs, step: jax.Array):
        picture, feats = features(params, inputs, step)
        stacked = summands(inputs, feats)
        return -jnp.sum(stacked), (picture, stacked)

    def step_once(s: _LoopState, inputs: _Inputs) -> tuple[_LoopState, Any]:
        def value_fn(p: Any) -> jax.Array:
            return values(p, inputs, s.step)[0]

        if uses_value_fn:  # L-BFGS: the line search kept the value and gradient at this point
            value, grads = optax.value_and_grad_from_state(value_fn)(s.params, state=s.opt_state)
            updates, opt_state = opt.update(
                grads, s.opt_state, s.params, value=value, grad=grads, value_fn=value_fn
            )
            report = None
        else:
            (value, report), grads = jax.value_and_grad(values, has_aux=True)(
                s.params, inputs, s.step
            )
            updates, opt_state = opt.update(grads, s.opt_state, s.params)
        finite = jnp.isfinite(value)
        state = _LoopState(
            params=_tree_where(finite, optax.apply_updates(s.params, updates), s.params),
            opt_state=_tree_where(finite, opt_state, s.opt_state),
            good_params=_tree_where(finite, s.params, s.good_params),
            losses=s.losses.at[s.step % len(s.losses)].set(value),
            failed_at=jnp.where(finite, s.failed_at, s.step),
            step=s.step + finite.astype(s.step.dtype),
        )
        return state, report

    def evaluate(params: Any, step: jax.Array, inputs: _Inputs):
        return values(params, inputs, step)[1]

    picture = jax.eval_shape(image.rebuild(example.image), state.params)
    summed = jax.ShapeDtypeStruct((len(terms.rebuild(example.terms)),), jnp.float32)
    no_report = None if uses_value_fn else jax.tree.map(_zeros_like, (picture, summed))

    def run_steps(s: _LoopState, inputs: _Inputs, count: jax.Array) -> tuple[_LoopState, Any]:
        return jax.lax.fori_loop(
            0, count, lambda _, carry: step_once(carry[0], inputs), (s, no_report)
        )

    # ``count`` steps in one program: XLA allocates the step's temporaries once per call, where a
    # program per step had them freshly mapped (and the pages faulted in) at every step. After a
    # non-finite loss a step is a no-op; the host stops at the next chunk boundary.
    jitted_steps = xla.jit(run_steps)
    jitted_steps.trace(state, example, 1)  # the call passes a Python int too: the same trace
    return _Program(
        run_steps=jitted_steps,
        evaluate=xla.jit(evaluate) if uses_value_fn else None,
        shapes=shapes,
    )


def _zeros_like(shape: jax.ShapeDtypeStruct) -> jax.Array:
    return jax.device_put(np.zeros(shape.shape, shape.dtype))


def _device_int(value: int) -> jax.Array:
    """An int32 scalar on the device: ``device_put`` compiles nothing, where ``jnp.asarray``
    compiles a conversion program in every new process."""
    return jax.device_put(np.int32(value))


def _network_key(backbone: Backbone) -> Hashable:
    """What identifies a network's computation: its module (architecture and options)."""
    return backbone.module


def _shard_batch(params: Any) -> Any:
    """Parameters with their leading (batch) axis spread over every device, when it divides."""
    devices = jax.devices()
    leaves = jax.tree.leaves(params)
    if len(devices) < 2 or any(np.ndim(leaf) == 0 or len(leaf) % len(devices) for leaf in leaves):
        return params
    mesh = Mesh(np.asarray(devices), ("batch",))
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.tree.map(lambda leaf: jax.device_put(leaf, sharding), params)


@xla.hands_memory_back
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
    layers: Mapping[str, Sequence[str]] | None = None,
    callback: Callback | None = None,
    progress: bool | None = None,
    sync_every: int = 64,
) -> RenderResult:
    """Optimise ``param`` so that ``objective`` is maximised; ``steps`` optimiser updates.

    ``backbone`` is network ``"main"``; ``backbones`` adds more by name (e.g. a separate content
    network ``{"content": net}`` read by ``content(..., network="content")``); every network sees
    the same transformed batch. ``layers``: what the objective reads of each network, when a
    plan has worked it out already (:func:`required_layers` otherwise). For the first
    ``relu_redirect_steps`` steps the networks use Lucid's redirected ReLU gradient (Lucid: 16).
    ``callback(step, image, loss)`` runs and a
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
    layers = (
        {n: tuple(ls) for n, ls in layers.items()}
        if layers
        else required_layers(objective, networks)
    )
    used = {name: networks[name] for name in layers}
    opt, opt_key = resolve_optimizer(optimizer, learning_rate)
    boundaries = _validate_schedule(steps, thresholds, sync_every)
    terms = _split(tuple(t.fn for t in objective.summands()))
    image = _split(param.to_image)
    transform = _split(resolve_transforms(transforms))
    params = _shard_batch(jax.device_put(param.params))
    inputs = _Inputs(
        terms.arrays,
        image.arrays,
        transform.arrays,
        {name: net.for_image_gradients(layers[name]).variables for name, net in used.items()},
        rng.key(seed),
        _device_int(relu_redirect_steps),
    )
    structure = (
        terms.key,
        image.key,
        transform.key,
        opt_key,
        tuple((name, _network_key(net), layers[name]) for name, net in used.items()),
        relu_redirect_steps > 0,
        jax.tree.structure(params),
        tuple(np.shape(leaf) for leaf in jax.tree.leaves(params)),
    )
    state = _LoopState(
        params=params,
        opt_state=_strong(opt.init(params)),
        good_params=params,
        losses=jax.device_put(np.zeros((LOSS_RING,), np.float32)),
        failed_at=_device_int(-1),
        step=_device_int(0),
    )
    program = _program(
        structure,
        lambda: _build(
            terms, image, transform, opt, used, layers, relu_redirect_steps > 0, inputs, state
        ),
    )
    objective.check_indices(program.shapes)
    run = _Run(program, inputs, state)
    with _progress_bar(steps, progress) as bar:
        for boundary in boundaries:
            shown = run.reached
            run.advance(boundary - run.dispatched)
            bar.update(run.reached - shown)
            if run.reached:
                bar.set_postfix(loss=f"{run.losses[run.reached - 1]:.4g}")
            if run.failed:
                break
            if boundary in thresholds:
                picture, value = run.snapshot(boundary, final=boundary == steps)
                run.snapshots[boundary] = picture
                if callback is not None:
                    callback(boundary, picture, value)
    picture, values, steps_run, reason = run.finish()
    names = _unique_names([t.name for t in objective.summands()])
    return RenderResult(
        image=picture,
        snapshots=run.snapshots,
        losses=np.asarray(run.losses[: run.reached], np.float32),
        final_loss=float(-np.sum(values)),
        terms={name: float(v) for name, v in zip(names, values, strict=True)},
        params=run.final_params,
        steps_run=steps_run,
        stopped_reason=reason,
        seed=seed,
        started_at=started_at,
        elapsed_s=time.perf_counter() - clock,
    )


class _Run:
    """The host side of a render: run chunks of steps, read back at boundaries, report the end."""

    def __init__(self, program: _Program, inputs: _Inputs, state: _LoopState):
        self.program, self.inputs, self.state = program, inputs, state
        self.dispatched = 0  # steps run
        self.reached = 0  # updates applied (stops at a non-finite loss)
        self.losses: list[float] = []
        self.snapshots: dict[int, np.ndarray] = {}
        self.pending: Any = None  # the report of the latest step call
        self.final: tuple[np.ndarray, np.ndarray] | None = None  # the report of the last image
        self.final_params: Any = None

    @property
    def failed(self) -> bool:
        return int(self.state.failed_at) >= 0

    def advance(self, count: int) -> None:
        """Run ``count`` steps, then read back how far they got and their losses."""
        if count:
            self.state, self.pending = self.program.run_steps(self.state, self.inputs, count)
        self.dispatched += count
        reached = int(self.state.step)
        ring = np.asarray(self.state.losses)
        last = reached + 1 if self.failed else reached  # the failing step's loss is kept too
        self.losses += [float(ring[t % len(ring)]) for t in range(len(self.losses), last)]
        self.reached = reached

    def report(self, params: Any, step: int, use_pending: bool) -> tuple[np.ndarray, np.ndarray]:
        """The image and summand values of ``params`` (after ``step`` updates)."""
        if self.program.evaluate is not None:
            picture, values = self.program.evaluate(params, _device_int(step), self.inputs)
        elif use_pending:
            picture, values = self.pending
        else:  # one more step call whose update is discarded: its report is of ``params``
            probe = self.state._replace(params=params, step=_device_int(step))
            picture, values = self.program.run_steps(probe, self.inputs, 1)[1]
        return np.asarray(picture), np.asarray(values, np.float64)

    def snapshot(self, boundary: int, final: bool) -> tuple[np.ndarray, float]:
        """The picture after ``boundary`` updates and its loss (the next step call reports it)."""
        if final:
            self.final = self.report(self.state.params, boundary, use_pending=False)
            picture, values = self.final
        elif self.program.evaluate is not None:
            picture, values = self.report(self.state.params, boundary, use_pending=False)
        else:
            self.advance(1)
            picture, values = self.report(None, boundary, use_pending=True)
        return picture, float(-np.sum(values))

    def finish(self) -> tuple[np.ndarray, np.ndarray, int, str]:
        """Image, summand values, steps run and why it stopped, for the last finite image."""
        failed_at, reason = int(self.state.failed_at), COMPLETED
        params, done = self.state.params, self.reached
        if failed_at < 0:
            picture, values = self.final or self.report(params, done, use_pending=False)
            if np.isfinite(np.sum(values)):
                self.final_params = params
                return picture, values, done, reason
            failed_at, bad_value = done, float(-np.sum(values))  # the very last update broke it
        else:
            bad_value = self.losses[failed_at]
        steps_run = max(failed_at - 1, 0)
        self.final_params = self.state.good_params
        picture, values = self.report(self.final_params, steps_run, use_pending=False)
        reason = (
            f"stopped at step {failed_at}: the loss became {bad_value}; returning the image of "
            f"step {steps_run}, the last with a finite loss"
        )
        warnings.warn(reason, RuntimeWarning, stacklevel=3)
        return picture, values, steps_run, reason


def _unique_names(names: Sequence[str]) -> list[str]:
    """Names with ``#2``, ``#3`` ... appended to repeats, so no term is lost in a dict."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return unique


def _progress_bar(total: int, enabled: bool | None):
    return progress_bars.bar(total=total, enabled=enabled, desc="render", unit="step")
