"""The :class:`Backbone` value (a Flax module plus its variables, passable into ``jax.jit``) and
the table-of-steps machinery every architecture is written in."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct, traverse_util
from flax.errors import FlaxError

from paramviz.backbones import ops
from paramviz.errors import UserError


@struct.dataclass
class Backbone:
    """A network ready to run: ``variables`` are pytree data, everything else is static.

    ``layer_names`` lists every tap in forward order; ``metadata`` carries what the converted file
    said (architecture, source format, source sha256, input convention, last available layer).
    """

    variables: Mapping[str, Any]
    module: nn.Module = struct.field(pytree_node=False)
    arch: str = struct.field(pytree_node=False)
    layer_names: tuple[str, ...] = struct.field(pytree_node=False)
    metadata: Mapping[str, str] = struct.field(pytree_node=False, default_factory=dict)

    def __call__(
        self,
        images: jax.Array,
        layers: Sequence[str],
        relu_redirect: jax.Array | float | None = None,
    ) -> dict[str, jax.Array]:
        """Activations of ``layers`` for NHWC RGB ``images`` in [0, 1]; nothing deeper is run."""
        return self.module.apply(
            self.variables, images, layers=tuple(layers), relu_redirect=relu_redirect
        )

    def features(self, images: Any, layers: Sequence[str]) -> dict[str, jax.Array]:
        """:meth:`__call__` compiled once per architecture, layers and image shape: the weights
        are an argument, so another network of the same architecture reuses the program."""
        return _apply(self.module, self.variables, jnp.asarray(images, jnp.float32), tuple(layers))

    def for_image_gradients(self, layers: Sequence[str] | None = None) -> Backbone:
        """The same network, its variables extended by the flipped copy its input gradient uses
        of every kernel :meth:`input_grad_sources` names.

        Made once per render rather than at every step; worth it wherever gradients flow to the
        image but never to the weights. The other leaves are shared, not copied.
        """
        sources = self.input_grad_sources(layers)
        if not sources:
            return self
        flipped = {key: ops.input_grad_kernel(kernel) for key, kernel in sources.items()}
        variables = unflatten({**flatten(self.variables), **flipped})
        return dataclasses.replace(self, variables=variables)

    def input_grad_sources(self, layers: Sequence[str] | None = None) -> dict[str, Any]:
        """``{flat key in INPUT_GRAD: kernel}`` for every spatial kernel of the steps up to the
        deepest of ``layers`` (all when None); none for a wrapped foreign module."""
        if not isinstance(self.module, TapNetwork):
            return {}
        steps = self.module.steps()
        if layers is not None:
            steps = steps[: self.module.check_layers(layers) + 1]
        used = {step.name for step in steps}
        return {
            INPUT_GRAD + key.removeprefix("params"): leaf
            for key, leaf in flatten(dict(self.variables)).items()
            if _is_spatial_kernel(key, leaf) and key.split("/")[1] in used
        }

    def check_layers(
        self, layers: Sequence[str], image_hw: tuple[int, int]
    ) -> dict[str, tuple[int, ...]]:
        """Unknown layers, or an image too small to reach them, fail before any work is done;
        the layers' shapes for one image are what the abstract pass found."""
        self.module.check_layers(layers)  # UserError listing the valid names
        images = jax.ShapeDtypeStruct((1, *image_hw, 3), jnp.float32)
        size = f"{image_hw[0]}x{image_hw[1]}"
        try:
            shapes = jax.eval_shape(lambda x: self(x, layers), images)
        except (TypeError, ValueError, FlaxError) as err:  # e.g. a linear layer's input width
            raise UserError(
                f"{self.arch} cannot compute {', '.join(layers)} on a {size} image: "
                f"{str(err).splitlines()[0]}"
            ) from None
        if empty := [name for name, s in shapes.items() if 0 in s.shape]:
            raise UserError(
                f"a {size} image is too small for {', '.join(empty)} of {self.arch}; use a larger "
                "--size or earlier layers"
            )
        return {name: tuple(s.shape) for name, s in shapes.items()}


@functools.partial(jax.jit, static_argnames=("module", "layers"))
def _apply(module: Any, variables: Any, images: jax.Array, layers: tuple[str, ...]) -> dict:
    return module.apply(variables, images, layers=layers)


# ------------------------------------------------------------------------------------------------
# Networks as ordered tables of named steps.
#
# Each architecture lists its forward pass as a tuple of ``Step`` values, one per tap. The same
# table gives the layer names, lets ``__call__`` stop after the deepest requested layer, and tells
# the PyTorch converter which state_dict key feeds which Flax variable (``param_refs``).
# ------------------------------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class ParamRef:
    """One PyTorch tensor and the Flax variable it becomes.

    ``layout``: ``"conv"`` (OIHW → HWIO), ``"dense"`` ((out, in) → (in, out)) or ``"vector"``.
    """

    collection: str
    path: tuple[str, ...]
    torch_key: str
    layout: str

    def nested(self, path: tuple[str, ...], torch_prefix: str) -> ParamRef:
        """The same reference seen from a parent module (Flax path and torch key prefixed)."""
        return ParamRef(
            self.collection, path + self.path, f"{torch_prefix}.{self.torch_key}", self.layout
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Step:
    """One tap of a network: ``name`` is both the layer name and the Flax submodule name."""

    name: str

    def __call__(self, x: jax.Array, redirect: Any, shared: dict) -> jax.Array:
        """Apply inside the parent's compact ``__call__`` (``shared`` caches container modules)."""
        raise NotImplementedError

    def param_refs(self) -> tuple[ParamRef, ...]:
        """The PyTorch tensors this step's variables come from (none for parameter-free steps)."""
        return ()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Conv(Step):
    """``nn.Conv2d``; ``reflect`` pads by reflection first (``ReflectionPad2d`` + unpadded conv);
    ``padding="same"`` is TensorFlow's ``SAME`` (:func:`ops.conv_pads`)."""

    features: int
    kernel: int
    stride: int = 1
    padding: ops.Padding = 0
    reflect: bool = False
    bias: bool = True
    torch: str

    def __call__(self, x, redirect, shared):
        pad = self.padding
        if self.reflect and pad:
            x, pad = ops.reflect_pad(x, pad), 0
        conv = Convolution(self.features, self.kernel, self.stride, pad, self.bias, name=self.name)
        return conv(x)

    def param_refs(self):
        refs = [ParamRef("params", (self.name, "kernel"), f"{self.torch}.weight", "conv")]
        if self.bias:
            refs.append(ParamRef("params", (self.name, "bias"), f"{self.torch}.bias", "vector"))
        return tuple(refs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DepthwiseConv(Step):
    """``nn.Conv2d(C, C, kernel, groups=C, bias=False)``: one filter per channel."""

    kernel: int
    stride: int = 1
    padding: ops.Padding = 0
    torch: str

    def __call__(self, x, redirect, shared):
        return DepthwiseConvolution(self.kernel, self.stride, self.padding, name=self.name)(x)

    def param_refs(self):
        return (ParamRef("params", (self.name, "kernel"), f"{self.torch}.weight", "conv"),)


INPUT_GRAD = "input_grad"  # the variable collection of :meth:`Backbone.for_image_gradients`


class Convolution(nn.Module):
    """``nn.Conv``'s variables (``kernel`` of shape (k, k, in, out), ``bias``), so checkpoints map
    onto it unchanged. An unpadded 1×1 kernel is a matrix product over channels (2-3x faster
    than XLA's CPU conv). A wider one uses its :data:`INPUT_GRAD` copy when the variables carry
    one (a render adds them), so that its input gradient does not flip the kernel anew."""

    features: int
    kernel_size: int
    stride: int = 1
    padding: ops.Padding = 0
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)
        if self.kernel_size == 1 and self.padding in (0, "same"):
            if self.stride > 1:
                x = x[:, :: self.stride, :: self.stride]
            y = (x.reshape(-1, x.shape[-1]) @ kernel[0, 0]).reshape(*x.shape[:-1], self.features)
        else:
            flipped = None
            if self.has_variable(INPUT_GRAD, "kernel"):
                flipped = self.get_variable(INPUT_GRAD, "kernel")
            y = ops.conv2d(x, kernel, self.stride, self.padding, flipped)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return y


class DepthwiseConvolution(nn.Module):
    """A depthwise kernel of shape (k, k, 1, channels) applied by :func:`ops.depthwise_conv2d`."""

    kernel_size: int
    stride: int = 1
    padding: ops.Padding = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.kernel_size, self.kernel_size, 1, x.shape[-1])
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)
        return ops.depthwise_conv2d(x, kernel, self.stride, self.padding)


def _is_spatial_kernel(key: str, leaf: Any) -> bool:
    """A ``params/.../kernel`` of a :class:`Convolution` wider than 1×1 (1×1 ones are matrix
    products, and a depthwise kernel, one input channel wide, is no correlation over channels:
    nothing to flip)."""
    parts = key.split("/")
    if parts[0] != "params" or parts[-1] != "kernel" or leaf.ndim != 4:
        return False
    return leaf.shape[0] > 1 and leaf.shape[2] > 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchNorm(Step):
    """Eval-mode ``nn.BatchNorm2d`` (running statistics; PyTorch's eps 1e-5 unless the
    network was built with another)."""

    torch: str
    epsilon: float = 1e-5

    def __call__(self, x, redirect, shared):
        return FrozenBatchNorm(self.epsilon, name=self.name)(x)

    def param_refs(self):
        def ref(collection, leaf, torch_leaf):
            return ParamRef(collection, (self.name, leaf), f"{self.torch}.{torch_leaf}", "vector")

        return (
            ref("params", "scale", "weight"),
            ref("params", "bias", "bias"),
            ref("batch_stats", "mean", "running_mean"),
            ref("batch_stats", "var", "running_var"),
        )


class FrozenBatchNorm(nn.Module):
    """``nn.BatchNorm(use_running_average=True)``'s variables (``params``: ``scale``, ``bias``;
    ``batch_stats``: ``mean``, ``var``), applied by :func:`ops.batch_norm`, whose gradients to
    ``scale`` and ``bias`` are quick to train."""

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = (x.shape[-1],)
        scale = self.param("scale", nn.initializers.ones, channels, jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, channels, jnp.float32)
        mean = self.variable("batch_stats", "mean", jnp.zeros, channels, jnp.float32).value
        var = self.variable("batch_stats", "var", jnp.ones, channels, jnp.float32).value
        return ops.batch_norm(x, scale, bias, mean, var, self.epsilon)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Dense(Step):
    """``nn.Linear``; a spatial input is first flattened in PyTorch's C, H, W order."""

    features: int
    torch: str

    def __call__(self, x, redirect, shared):
        return nn.Dense(self.features, name=self.name)(ops.flatten_chw(x))

    def param_refs(self):
        return (
            ParamRef("params", (self.name, "kernel"), f"{self.torch}.weight", "dense"),
            ParamRef("params", (self.name, "bias"), f"{self.torch}.bias", "vector"),
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReLU(Step):
    """ReLU with optional Lucid gradient redirection (see :func:`ops.relu`)."""

    def __call__(self, x, redirect, shared):
        return ops.relu(x, redirect)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReLU6(Step):
    """``nn.ReLU6`` (:func:`ops.relu6`; Lucid's redirection below 0 when asked)."""

    def __call__(self, x, redirect, shared):
        return ops.relu6(x, redirect)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pool(Step):
    """A pooling step with PyTorch's ``(window, stride, padding, ceil_mode)``."""

    window: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False
    operation: ClassVar[Callable[..., jax.Array]]

    def __call__(self, x, redirect, shared):
        return self.operation(x, self.window, self.stride, self.padding, self.ceil_mode)


class MaxPool(Pool):
    """``nn.MaxPool2d``."""

    operation = staticmethod(ops.max_pool)


class AvgPool(Pool):
    """``nn.AvgPool2d`` with the default ``count_include_pad``."""

    operation = staticmethod(ops.avg_pool)


def scaled(channels: int, width: float) -> int:
    """Channel count under a width multiplier (at least one channel)."""
    return max(1, round(channels * width))


def pool(kind: str, name: str, window: int, stride: int, **kwargs: Any) -> Step:
    """A max or average pool step (``kind`` "max" | "avg"), for architectures that offer both."""
    if kind not in ("max", "avg"):
        raise UserError(f"pooling must be 'max' or 'avg', not {kind!r}")
    cls = MaxPool if kind == "max" else AvgPool
    return cls(name=name, window=window, stride=stride, **kwargs)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaptiveAvgPool(Step):
    """``nn.AdaptiveAvgPool2d(size)``; the output stays NHWC."""

    size: tuple[int, int]

    def __call__(self, x, redirect, shared):
        return ops.adaptive_avg_pool(x, self.size)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Flatten(Step):
    """``nn.Flatten()`` in PyTorch's C, H, W order."""

    def __call__(self, x, redirect, shared):
        return ops.flatten_chw(x)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Alias(Step):
    """A second name for the previous output (e.g. ResNet's ``layer3`` = its last block)."""

    def __call__(self, x, redirect, shared):
        return x


class TapNetwork(nn.Module):
    """Base module: runs ``steps()`` in order and returns the requested taps, stopping early.

    Input convention (module attributes): images are NHWC RGB in [0, 1]; ``clamp`` clips them to
    [0, 1] first (robustness-library models), then ``(x - mean) / std``. ``last_layer`` truncates
    the network (partial checkpoints); asking for a later layer raises ``UserError``.
    """

    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    clamp: bool = False
    last_layer: str | None = None

    def arch_name(self) -> str:
        """The architecture name as ``paramviz.backbones.create`` knows it."""
        raise NotImplementedError

    def all_steps(self) -> tuple[Step, ...]:
        """The whole network, ignoring ``last_layer``."""
        raise NotImplementedError

    def steps(self) -> tuple[Step, ...]:
        """The network up to and including ``last_layer``."""
        steps = self.all_steps()
        if self.last_layer is None:
            return steps
        names = [step.name for step in steps]
        if self.last_layer not in names:
            raise UserError(
                f"last_layer {self.last_layer!r} is not a layer of {self.arch_name()}; "
                f"valid layers: {', '.join(names)}"
            )
        return steps[: names.index(self.last_layer) + 1]

    def tap_names(self) -> tuple[str, ...]:
        """Every layer name this module can return, in forward order."""
        return tuple(step.name for step in self.steps())

    def options(self) -> dict[str, Any]:
        """The architecture options (everything but the input convention), JSON-ready."""
        skip = {"parent", "name", "variant", "mean", "std", "clamp"}
        return {
            field.name: _jsonable(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if field.name not in skip
        }

    def input_convention(self) -> dict[str, Any]:
        """What the forward pass does to the [0, 1] RGB input before the first layer."""
        return {"mean": list(self.mean), "std": list(self.std), "clamp": self.clamp}

    def check_layers(self, layers: Sequence[str]) -> int:
        """Index of the deepest requested layer; ``UserError`` for an unknown or cut-off layer."""
        every = tuple(step.name for step in self.all_steps())
        return deepest_layer(self.arch_name(), self.tap_names(), layers, every)

    def preprocess_input(self, images: jax.Array) -> jax.Array:
        """Apply the input convention to NHWC RGB images in [0, 1]."""
        x = jnp.asarray(images)
        x = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # float64 stays (parity checks)
        if self.clamp:
            x = jnp.clip(x, 0.0, 1.0)
        if tuple(self.mean) != (0.0,) * len(self.mean):
            x = x - jnp.asarray(self.mean, x.dtype)
        if tuple(self.std) != (1.0,) * len(self.std):
            x = x / jnp.asarray(self.std, x.dtype)
        return x

    @nn.compact
    def __call__(
        self,
        images: jax.Array,
        layers: Sequence[str] = (),
        relu_redirect: jax.Array | float | None = None,
    ) -> dict[str, jax.Array]:
        """``{layer: activation}`` for exactly ``layers``; nothing past the deepest is computed."""
        if isinstance(layers, str):
            layers = (layers,)
        deepest = self.check_layers(layers)
        wanted = set(layers)
        x = self.preprocess_input(images)
        shared: dict = {}
        out = {}
        for step in self.steps()[: deepest + 1]:
            x = step(x, relu_redirect, shared)
            if 0 in x.shape[1:]:
                raise UserError(
                    f"{images.shape[1]}x{images.shape[2]} images are too small for "
                    f"{self.arch_name()}: layer {step.name!r} would be empty {tuple(x.shape)}"
                )
            if step.name in wanted:
                out[step.name] = x
        return out

    def probe_size(self) -> tuple[int, int]:
        """An input size at which the variable shapes are the real ones (for shape checks)."""
        return (224, 224)

    def free_dimensions(self) -> dict[str, int]:
        """``{flat variable key: axis}`` whose length depends on the unknown training input size."""
        return {}

    def expected_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """Flat ``"collection/path/leaf"`` → shape of every variable; ``None`` marks a free axis."""
        shapes = flatten(variable_shapes(self, self.probe_size()))
        for key, axis in self.free_dimensions().items():
            shape = list(shapes[key])
            shape[axis] = None
            shapes[key] = tuple(shape)
        return shapes


class Classifier(TapNetwork):
    """An image classifier with torchvision's two options, its classes and a channel width;
    ``variant`` is the architecture's name (fixed by its registered builder)."""

    num_classes: int = 1000
    width: float = 1.0
    variant: str = ""

    def arch_name(self) -> str:
        return self.variant


def classifier_head(
    pool: int, hidden: int, num_classes: int, torch_layers: tuple[str, str, str]
) -> list[Step]:
    """torchvision's VGG/AlexNet head: adaptive average pool to ``pool``², then
    ``fc6, relu6, fc7, relu7, logits`` with the PyTorch names ``torch_layers``."""
    fc6, fc7, logits = torch_layers
    return [
        AdaptiveAvgPool(name="avgpool", size=(pool, pool)),
        Dense(name="fc6", features=hidden, torch=fc6),
        ReLU(name="relu6"),
        Dense(name="fc7", features=hidden, torch=fc7),
        ReLU(name="relu7"),
        Dense(name="logits", features=num_classes, torch=logits),
    ]


def flatten(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Nested variables → ``{"params/conv1/kernel": leaf}`` (the safetensors key convention)."""
    return traverse_util.flatten_dict(tree, sep="/")


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten`."""
    return traverse_util.unflatten_dict(dict(flat), sep="/")


def deepest_layer(
    arch: str, available: Sequence[str], layers: Sequence[str], every: Sequence[str] = ()
) -> int:
    """Index in ``available`` of the deepest of ``layers``; ``UserError`` naming the valid layers
    for an unknown one, or for one of ``every`` that a partial network cut off."""
    for layer in layers:
        if layer in available:
            continue
        if layer in every:
            raise UserError(
                f"layer {layer!r} is past the last available layer {available[-1]!r} of this "
                f"{arch} (its weights stop there); available layers: {', '.join(available)}"
            )
        raise UserError(f"unknown layer {layer!r} for {arch}; valid layers: {', '.join(available)}")
    return max((list(available).index(layer) for layer in layers), default=-1)


def shape_fits(expected: tuple[int | None, ...], actual: tuple[int, ...]) -> bool:
    """Whether ``actual`` matches ``expected`` (``None`` = any length on that axis)."""
    return len(expected) == len(actual) and all(
        e is None or e == a for e, a in zip(expected, actual, strict=True)
    )


def make_backbone(module: TapNetwork, variables: Mapping[str, Any], **metadata: str) -> Backbone:
    """Wrap a module and its variables, recording what a converted file's metadata would say."""
    info = {
        "arch": module.arch_name(),
        "arch_options": json.dumps(module.options(), sort_keys=True),
        "input_convention": json.dumps(module.input_convention(), sort_keys=True),
        "last_layer": module.tap_names()[-1],
        **{key: str(value) for key, value in metadata.items()},
    }
    variables = jax.device_put(dict(variables))  # jnp.asarray compiles a copy per new shape
    return Backbone(
        variables=variables,
        module=module,
        arch=module.arch_name(),
        layer_names=module.tap_names(),
        metadata=info,
    )


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def variable_shapes(module: TapNetwork, image_size: tuple[int, int] = (224, 224)) -> dict[str, Any]:
    """Shapes of every variable the module creates (``jax.eval_shape``: no FLOPs, no memory)."""
    last = module.tap_names()[-1]
    images = jax.ShapeDtypeStruct((1, *image_size, 3), jnp.float32)
    abstract = jax.eval_shape(lambda x: module.init(jax.random.key(0), x, layers=(last,)), images)
    return jax.tree.map(lambda leaf: tuple(leaf.shape), abstract)
