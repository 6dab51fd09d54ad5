"""Renders timed side by side: paramviz (JAX), the same work in plain PyTorch, and Lucent 0.1.8.

    python benchmarks/bench_render.py [--quick] [--only NAMES] [--compare-rev REV] [--devices]
                                     [--rounds N]

Cases (float32, random weights -- speed does not depend on their values):

* ``style256`` / ``style512``: Gatys style transfer on VGG-19 with average pooling, style Grams
  at relu1_1..relu5_1 (mean L1) plus content relu4_2 (MSE), sigmoid pixel parameterisation started
  from the content image, no transforms, Adam 0.05. (Lucent has no style transfer.)
* ``fvis``: a ResNet-50 ``layer4`` channel at 224 px with Lucid's prior: decorrelated Fourier
  parameterisation and the standard transforms, Adam 0.05.
* ``fvis16``: the same with 16 images in one batch, image i maximising channel i.
* ``layer3``: a ResNet-50 ``layer3`` channel, otherwise as ``fvis``: paramviz and the PyTorch
  loop stop at ``layer3``; Lucent always runs the whole network.
* ``lite0``: an EfficientNet-Lite0 ``block6`` channel, otherwise as ``fvis``; the PyTorch side
  runs ``efficientnet-lite-pytorch``'s own model (its depthwise convolutions as PyTorch does
  them) up to that stage. (Lucent's ``render_vis`` would run it too, but the same loop.)

Per (case, framework) one fresh subprocess, which imports only its own framework, makes three
renders of the case: the *first call* (per-step times; it pays imports already done, building
the network, tracing and compiling), a *repeat call* of the same structure with another unit
and another start (what a second look at a network costs), and, where cheap enough, a 512-step
render. *startup* = call wall time - steps x median s/step. Peak memory is the process's RSS
high-water mark. ``--compare-rev`` adds the JAX rows of another git revision (run from a
temporary worktree) in the same run: the before/after of a change. The ``jax`` row keeps its
compiled programs in a persistent cache, as the CLI does, and a ``jax, cached`` row then times
a second process that loads them (a repeated command). ``--devices`` renders 16
units on 1 and 2 (simulated, ``--xla_force_host_platform_device_count``) CPU devices.
``--rounds N`` runs each case's workers N times in turn and gives each ratio's median, range and
whether the goal holds in every round: processes running the same program differ by more than
one run can tell apart from a goal's margin.

Lucent runs in the same environment as PyTorch: ``pip install -e '.[bench]'`` (torchvision 0.28,
torch-lucent 0.1.8, kornia 0.4.1). torchvision's wheel is a CUDA build; :func:`cpu_torchvision`
defines its two compiled ops so that it imports on the CPU build of torch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

FRAMEWORKS = ("jax", "torch", "lucent")
LEARNING_RATE = 0.05  # Lucid's Adam step, paramviz's and Lucent's default
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  # Gatys et al. 2016
CONTENT_LAYER = "relu4_2"
VGG19_CONVS = (2, 2, 4, 4, 4)  # 3x3 convs per block
VGG_WIDTHS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESULT_PREFIX = "RESULT "
LONG_STEPS = 512
WARMUP_STEPS = 2  # the first laps left out of s/step: compiling, first touches
QUIET_LOAD = 0.5
CACHED = "jax, cached"  # the row of a worker that loads what the jax row compiled
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmarked workload. ``steps``: the length of the first and repeat calls;
    ``long``: whether a 512-step render is measured too (else estimated from the figures)."""

    name: str
    kind: Literal["style", "features"]
    size: int
    steps: int
    batch: int = 1
    layer: str = "layer4"
    long: bool = False
    arch: str = "resnet50"

    def title(self) -> str:
        if self.kind == "style":
            return f"VGG-19 style transfer, {self.size} px"
        images = f"{self.batch} images" if self.batch > 1 else "1 image"
        return f"{ARCH_TITLES[self.arch]} {self.layer} channel, {self.size} px, {images}"

    @property
    def frameworks(self) -> tuple[str, ...]:
        return FRAMEWORKS if self.arch == "resnet50" and self.kind == "features" else FRAMEWORKS[:2]


ARCH_TITLES = {"resnet50": "ResNet-50", "efficientnet_lite0": "EfficientNet-Lite0"}


def cases(quick: bool) -> dict[str, Case]:
    """The benchmarked cases; ``quick`` shrinks them so that a smoke test takes a minute."""
    full = (
        Case("style256", "style", 256, steps=64),
        Case("style512", "style", 512, steps=16),
        Case("fvis", "features", 224, steps=64, long=True),
        Case("fvis16", "features", 224, steps=16, batch=16),
        Case("layer3", "features", 224, steps=64, layer="layer3", long=True),
        Case(
            "lite0", "features", 224, steps=64, layer="block6", long=True, arch="efficientnet_lite0"
        ),  # fmt: skip
    )
    if quick:
        full = tuple(dataclasses.replace(c, size=64, steps=4, long=False) for c in full)
    return {c.name: c for c in full}


# ------------------------------------------------------------------------------------------------
# Timing and memory: shared by all frameworks


class Laps:
    """Wall-clock and process-CPU stamps at step boundaries.

    CPU seconds per wall second show whether a step had both cores: about 2 for well-threaded
    work on an idle 2-core machine, less when another process took a core (or a thread idled).
    """

    def __init__(self) -> None:
        self.wall = [time.perf_counter()]
        self.cpu = [time.process_time()]
        self.sizes: list[int] = []

    def lap(self, steps: int = 1) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())
        self.sizes.append(steps)

    def steps(self, warmup: int = WARMUP_STEPS) -> tuple[list[float], list[float]]:
        """Per-step wall and CPU times (a lap of n steps gives n equal ones), leaving out the
        first laps up to ``warmup`` steps: those carry the start-up."""
        skip = next(i + 1 for i, n in enumerate(itertools.accumulate(self.sizes)) if n >= warmup)
        laps = list(zip(np.diff(self.wall), np.diff(self.cpu), self.sizes, strict=True))[skip:]
        wall = [w / n for w, _, n in laps for _ in range(n)]
        cpu = [c / n for _, c, n in laps for _ in range(n)]
        return wall, cpu


@dataclasses.dataclass
class Calls:
    """What a worker measured: per-step times of the first call and three call wall times."""

    step_s: list[float]
    cpu_s: list[float]
    first_s: float
    repeat_s: float
    long_s: float | None


def summarise(calls: Calls, case: Case, import_mb: float) -> dict[str, Any]:
    """Median over the first call's steps after the warm-up; startup = what a call spent beyond
    its steps."""
    timed = calls.step_s
    median = statistics.median(timed)
    long_s = calls.long_s
    return {
        "median_s": median,
        "min_s": min(timed),
        "max_s": max(timed),
        "cpu_per_wall": sum(calls.cpu_s) / sum(timed),
        "first_call_s": calls.first_s,
        "first_startup_s": calls.first_s - median * case.steps,
        "repeat_call_s": calls.repeat_s,
        "repeat_startup_s": calls.repeat_s - median * case.steps,
        "wall_64_s": calls.first_s - median * case.steps + 64 * median,
        "wall_512_s": long_s if long_s is not None else calls.first_s + (512 - case.steps) * median,
        "wall_512_measured": long_s is not None,
        "peak_mb": peak_rss_mb(),
        "import_mb": import_mb,
    }


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sample_images(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Content and style images (H, W, 3) in [0, 1]; random, since values do not change speed."""
    rng = np.random.default_rng(0)
    content, style = rng.random((2, size, size, 3), dtype=np.float32)
    return content, style


def fourier_scale(h: int, w: int) -> np.ndarray:
    """Lucid's spectrum gain ``sqrt(h*w) / max(f, 1/max(h, w))`` (``paramviz.param``, numpy)."""
    freqs = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2)
    return (np.sqrt(h * w) / np.maximum(freqs, 1.0 / max(h, w))).astype(np.float32)


# Lucid's colour decorrelation (paramviz.param.COLOR_CORRELATION_NORMALIZED), for the torch side,
# which must not import jax (it would add jax's ~200 MB to PyTorch's peak memory).
COLOR_CORRELATION = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
COLOR_CORRELATION /= np.max(np.linalg.norm(COLOR_CORRELATION, axis=0))
STANDARD_SCALES = tuple(1 + (i - 5) / 50.0 for i in range(11))  # transforms.STANDARD_SCALES
STANDARD_ANGLES = tuple(range(-10, 11)) + 5 * (0,)  # transforms.STANDARD_ANGLES (degrees)


# ------------------------------------------------------------------------------------------------
# JAX: paramviz's public API


class _StepClock:
    """Stands in for render's progress bar, whose ``update(n)`` render calls after every host
    sync, once the ``n`` steps since the last one have run: the gaps between calls, divided by
    ``n``, are per-step wall times of the real render loop."""

    def __init__(self) -> None:
        self.laps = Laps()

    def __enter__(self) -> _StepClock:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        self.laps.lap(n)

    def set_postfix(self, **_: object) -> None:
        return None


def first_call_sync(steps: int) -> int:
    """Steps per host sync in the timed first call: a few laps, each of several steps, since
    render runs the steps between two syncs as one program call (a user's default is 64)."""
    return max(1, min(8, steps // 4))


def jax_calls(make: Callable[[int], tuple], case: Case) -> Calls:
    """Three renders of ``make(unit) -> (objective, param, backbone, transforms)``: the first
    timed step by step, the repeat and the long one as a user's render runs (progress off)."""
    from unittest import mock

    import paramviz.render as render_module

    def go(unit: int, steps: int, **options: Any) -> None:
        objective, image, net, transforms = make(unit)
        render_module.render(
            objective, image, net, transforms=transforms, steps=steps,
            learning_rate=LEARNING_RATE, progress=False, **options,
        )  # fmt: skip

    clock = _StepClock()
    start = time.perf_counter()
    with mock.patch.object(render_module, "_progress_bar", lambda total, enabled: clock):
        go(0, case.steps, sync_every=first_call_sync(case.steps))
    first = time.perf_counter() - start
    steps, cpu = clock.laps.steps()
    repeat = timed(lambda: go(1, case.steps))
    long = timed(lambda: go(2, LONG_STEPS)) if case.long else None
    return Calls(steps, cpu, first, repeat, long)


def jax_style(case: Case) -> Calls:
    """Gatys style transfer as ``paramviz style`` sets it up (pixel param, targets, objective)."""
    import jax

    from paramviz import backbones, objectives, param

    content, style = sample_images(case.size)
    net = backbones.init(
        "vgg19", jax.random.PRNGKey(0), (case.size, case.size), pooling="avg", last_layer="relu5_1"
    )

    def make(unit: int) -> tuple:
        objective = objectives.style_transfer_objective(
            objectives.content_targets(net, np.roll(content, unit, axis=0), [CONTENT_LAYER]),
            objectives.style_targets(net, np.roll(style, unit, axis=1), STYLE_LAYERS),
        )
        return objective, param.pixel(case.size, init=content[None]), net, None

    return jax_calls(make, case)


def check_torch_mirror(size: int) -> None:
    """The torch side copies paramviz's prior constants (without importing jax): keep them equal."""
    from paramviz import param, transforms

    np.testing.assert_allclose(fourier_scale(size, size), param.spectrum_scale(size, size))
    np.testing.assert_allclose(COLOR_CORRELATION, param.COLOR_CORRELATION_NORMALIZED)
    standard = (transforms.STANDARD_SCALES, transforms.STANDARD_ANGLES)
    if (STANDARD_SCALES, STANDARD_ANGLES) != standard:
        raise AssertionError("transforms' standard preset changed: update the torch mirror")


def jax_features(case: Case) -> Calls:
    """Channel visualisation as ``paramviz visualize`` sets it up: Fourier param, standard prior."""
    import jax

    from paramviz import backbones, objectives, param

    check_torch_mirror(case.size)
    net = backbones.init(
        case.arch, jax.random.PRNGKey(0), (case.size, case.size), last_layer=case.layer
    )

    def make(unit: int) -> tuple:
        objective = objectives.Objective.sum(
            objectives.channel(case.layer, 12 + unit + i, batch=i if case.batch > 1 else None)
            for i in range(case.batch)
        )
        image = param.fourier(case.size, case.batch, key=jax.random.PRNGKey(unit))
        return objective, image, net, "standard"

    return jax_calls(make, case)


# ------------------------------------------------------------------------------------------------
# PyTorch: the same work, eager, written as a PyTorch user would


def torch_calls(make: Callable[[int], Callable[[], None]], case: Case) -> Calls:
    """Three loops of the step ``make(unit)`` builds (eager CPU torch is synchronous)."""

    def loop(unit: int, steps: int, laps: Laps | None = None) -> None:
        step = make(unit)
        for _ in range(steps):
            step()
            if laps is not None:
                laps.lap()

    laps = Laps()
    first = timed(lambda: loop(0, case.steps, laps))
    repeat = timed(lambda: loop(1, case.steps))
    long = timed(lambda: loop(2, LONG_STEPS)) if case.long else None
    return Calls(*laps.steps(), first, repeat, long)


def torch_adam_step(params: list, loss_fn: Callable[[], Any]) -> Callable[[], None]:
    """One optimiser step: zero grads, loss, backward, Adam update (optax's Adam defaults)."""
    import torch

    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn().backward()
        optimizer.step()

    return step


def torch_frozen(module: Any) -> Any:
    """Eval mode (batch norm uses running stats) and no weight gradients: only the image learns."""
    return module.eval().requires_grad_(False)


def torch_normalise(images: Any, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD) -> Any:
    """``mean``/``std`` on NCHW RGB in [0, 1] (what the paramviz backbones do inside)."""
    import torch

    return (images - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def torch_vgg19_trunk(last: str, pooling: str) -> tuple[Any, dict[int, str]]:
    """torchvision's ``vgg19().features`` (in-place ReLUs) up to ``last``, and its ReLU taps."""
    from torch import nn

    layers: list[nn.Module] = []
    taps: dict[int, str] = {}
    channels = 3
    for block, (count, width) in enumerate(zip(VGG19_CONVS, VGG_WIDTHS, strict=True), 1):
        for i in range(1, count + 1):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            taps[len(layers) - 1] = f"relu{block}_{i}"
            channels = width
            if taps[len(layers) - 1] == last:
                return nn.Sequential(*layers), taps
        layers.append(nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2))
    raise ValueError(f"VGG-19 has no layer {last!r}")


def torch_taps(trunk: Any, taps: dict[int, str], images: Any) -> dict[str, Any]:
    """Outputs of the tapped layers, running the trunk module by module."""
    out = {}
    x = torch_normalise(images)
    for index, layer in enumerate(trunk):
        x = layer(x)
        if index in taps:
            out[taps[index]] = x
    return out


def torch_gram(features: Any) -> Any:
    """``F F^T / (H*W)`` per image, as ``paramviz.objectives.gram``."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def torch_style(case: Case) -> Calls:
    """Gatys style transfer (the PyTorch tutorial's shape): same layers, losses and param."""
    import torch

    content, style = (
        torch.from_numpy(a.transpose(2, 0, 1)[None].copy()) for a in sample_images(case.size)
    )
    trunk, taps = torch_vgg19_trunk(STYLE_LAYERS[-1], pooling="avg")
    trunk = torch_frozen(trunk)

    def make(unit: int) -> Callable[[], None]:
        with torch.no_grad():
            styled = torch.roll(style, unit, dims=3)
            style_targets = {k: torch_gram(v) for k, v in torch_taps(trunk, taps, styled).items()}
            content_target = torch_taps(trunk, taps, content)[CONTENT_LAYER].clone()
        pixels = torch.logit(content.clamp(1e-4, 1 - 1e-4)).requires_grad_(True)

        def loss() -> Any:
            feats = torch_taps(trunk, taps, torch.sigmoid(pixels))
            style_loss = sum(
                (torch_gram(feats[layer]) - style_targets[layer]).abs().mean()
                for layer in STYLE_LAYERS
            )
            return style_loss + (feats[CONTENT_LAYER] - content_target).square().mean()

        return torch_adam_step([pixels], loss)

    return torch_calls(make, case)


def torch_resnet50(last: str) -> Any:
    """torchvision's ``resnet50()`` (v1.5, stride on the 3×3 conv) up to stage ``last``."""
    from torch import nn

    def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
        conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        return [conv, nn.BatchNorm2d(cout)]

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, planes: int, stride: int) -> None:
            super().__init__()
            self.main = nn.Sequential(
                *conv_bn(cin, planes, 1), nn.ReLU(inplace=True),
                *conv_bn(planes, planes, 3, stride), nn.ReLU(inplace=True),
                *conv_bn(planes, planes * 4, 1),
            )  # fmt: skip
            projects = stride != 1 or cin != planes * 4
            self.downsample = (
                nn.Sequential(*conv_bn(cin, planes * 4, 1, stride)) if projects else None
            )
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x: Any) -> Any:
            shortcut = x if self.downsample is None else self.downsample(x)
            return self.relu(self.main(x) + shortcut)

    layers: list[nn.Module] = [*conv_bn(3, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    stages = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
    for number, (planes, blocks, stride) in enumerate(stages, 1):
        stage = []
        for index in range(blocks):
            stage.append(Bottleneck(cin, planes, stride if index == 0 else 1))
            cin = planes * 4
        layers.append(nn.Sequential(*stage))
        if last == f"layer{number}":
            break
    return nn.Sequential(*layers)


def torch_efficientnet_lite0(last: str) -> Any:
    """``efficientnet-lite-pytorch``'s Lite0 (static ``SAME`` padding for 224 px, as
    ``from_name`` builds it) up to stage ``last``."""
    from efficientnet_lite_pytorch import EfficientNet
    from torch import nn

    model = EfficientNet.from_name("efficientnet-lite0")
    stage_ends = np.cumsum((1, 2, 2, 3, 3, 4, 1))  # blocks per stage
    blocks = model._blocks[: stage_ends[int(last.removeprefix("block")) - 1]]

    class Trunk(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(model._conv_stem, model._bn0, model._swish)
            self.blocks = blocks

        def forward(self, x: Any) -> Any:
            x = self.stem(x)
            for block in self.blocks:
                x = block(x)
            return x

    return Trunk()


# arch: (the network up to a stage, its input mean and std)
TORCH_NETWORKS = {
    "resnet50": (torch_resnet50, IMAGENET_MEAN, IMAGENET_STD),
    "efficientnet_lite0": (torch_efficientnet_lite0, (127 / 255,) * 3, (128 / 255,) * 3),
}


def torch_fourier_image(real: Any, imag: Any, h: int, w: int) -> Any:
    """Lucid's ``fft_image`` + decorrelated colour + sigmoid, as ``paramviz.param.fourier``."""
    import torch

    scale = torch.from_numpy(fourier_scale(h, w))
    spatial = torch.fft.irfft2(torch.complex(real, imag) * scale, s=(h, w)) / 4.0
    colour = torch.einsum("nchw,dc->ndhw", spatial, torch.from_numpy(COLOR_CORRELATION))
    return torch.sigmoid(colour)


def torch_warp(images: Any, matrix: list[list[float]]) -> Any:
    """Bilinear affine resampling about the centre, outside filled with 0.5 grey (grid_sample)."""
    import torch
    import torch.nn.functional as F

    theta = torch.zeros(images.shape[0], 2, 3)
    theta[:, :, :2] = torch.tensor(matrix)
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    return F.grid_sample(images - 0.5, grid, align_corners=True) + 0.5


def torch_standard_transforms(images: Any, rng: random.Random) -> Any:
    """Lucid's standard prior: pad 12 (grey), jitter 8, scale, rotate, jitter 4."""
    import math

    import torch.nn.functional as F

    def jitter(x: Any, d: int) -> Any:
        oy, ox = rng.randint(0, d), rng.randint(0, d)
        return x[:, :, oy : oy + x.shape[2] - d, ox : ox + x.shape[3] - d]

    x = jitter(F.pad(images, (12, 12, 12, 12), value=0.5), 8)
    s = rng.choice(STANDARD_SCALES)
    x = torch_warp(x, [[1 / s, 0.0], [0.0, 1 / s]])
    angle = math.radians(rng.choice(STANDARD_ANGLES))
    x = torch_warp(x, [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return jitter(x, 4)


def torch_features(case: Case) -> Calls:
    """Channel visualisation the Lucent way, written out: Fourier param, standard transforms."""
    import torch

    build, mean, std = TORCH_NETWORKS[case.arch]
    net = torch_frozen(build(case.layer))
    h = w = case.size
    images = torch.arange(case.batch)

    def make(unit: int) -> Callable[[], None]:
        torch.manual_seed(unit)
        real, imag = (0.01 * torch.randn(2, case.batch, 3, h, w // 2 + 1)).unbind(0)
        params = [real.requires_grad_(True), imag.requires_grad_(True)]
        rng = random.Random(unit)

        def loss() -> Any:
            batch = torch_standard_transforms(torch_fourier_image(*params, h, w), rng)
            acts = net(torch_normalise(batch, mean, std))
            return -acts[images, 12 + unit + images].mean(dim=(1, 2)).sum()  # image i, channel i

        return torch_adam_step(params, loss)

    return torch_calls(make, case)


# ------------------------------------------------------------------------------------------------
# Lucent 0.1.8: the real peer


def cpu_torchvision() -> None:
    """torchvision 0.28's wheel is built for CUDA and registers fakes for two ops its compiled
    library would define; defining them first lets it import on the CPU build of torch."""
    import torch

    library = torch.library.Library("torchvision", "DEF")
    library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    cpu_torchvision.library = library  # keep the definitions alive


def lucent_features(case: Case) -> Calls:
    """Lucent's ``render_vis`` on torchvision's ResNet-50: Fourier image, standard transforms,
    Adam 0.05; per-step times from the optimizer's ``step``."""
    cpu_torchvision()
    import torch
    import torchvision
    from lucent.optvis import objectives, param, render

    model = torch_frozen(torchvision.models.resnet50(weights=None))
    laps: list[Laps] = []

    class LappedAdam(torch.optim.Adam):
        def step(self, closure: Callable[[], Any]) -> Any:
            loss = super().step(closure)
            if laps:
                laps[-1].lap()
            return loss

    def go(unit: int, steps: int) -> None:
        objective = sum(
            objectives.channel(case.layer, 12 + unit + i, batch=i if case.batch > 1 else None)
            for i in range(case.batch)
        )
        torch.manual_seed(unit)
        render.render_vis(
            model,
            objective,
            lambda: param.image(case.size, batch=case.batch),
            optimizer=lambda params: LappedAdam(params, lr=LEARNING_RATE),
            thresholds=(steps,),
            progress=False,
            show_image=False,
        )

    laps.append(Laps())
    first = timed(lambda: go(0, case.steps))
    steps, cpu = laps.pop().steps()
    repeat = timed(lambda: go(1, case.steps))
    long = timed(lambda: go(2, LONG_STEPS)) if case.long else None
    return Calls(steps, cpu, first, repeat, long)


# ------------------------------------------------------------------------------------------------
# Workers (one case, one framework) and the driver


RUNNERS: dict[tuple[str, str], Callable[[Case], Calls]] = {
    ("jax", "style"): jax_style,
    ("jax", "features"): jax_features,
    ("torch", "style"): torch_style,
    ("torch", "features"): torch_features,
    ("lucent", "features"): lucent_features,
}


def import_framework(framework: str) -> dict[str, Any]:
    """Import and configure the framework; returns what the table reports about it."""
    if framework in ("torch", "lucent"):
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        return {"version": f"torch {torch.__version__}", "threads": torch.get_num_threads()}
    import jax

    jax.numpy.zeros(()).block_until_ready()  # start the runtime before the baseline is read
    return {"version": f"jax {jax.__version__}", "threads": f"XLA ({len(jax.devices())} dev.)"}


def run_worker(framework: str, case: Case) -> None:
    """Measure one pair in this (fresh) process and print one JSON line for the driver."""
    info = import_framework(framework)
    import_mb = peak_rss_mb()
    calls = RUNNERS[framework, case.kind](case)
    print(RESULT_PREFIX + json.dumps(summarise(calls, case, import_mb) | info), flush=True)


@contextlib.contextmanager
def worktree(revision: str | None) -> Iterator[Path]:
    """The repository as it is, or a temporary checkout of ``revision`` (for before/after rows)."""
    if revision is None:
        yield REPO
        return
    with tempfile.TemporaryDirectory(prefix="paramviz-bench-") as folder:
        path = Path(folder) / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(path),
                        revision], check=True)  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
                           check=False)  # fmt: skip


def run_pair(
    framework: str,
    case: Case,
    args: argparse.Namespace,
    tree: Path = REPO,
    devices: int = 0,
    cache: Path | None = None,
) -> dict[str, Any] | None:
    """One worker subprocess (its code from ``tree``); None, its stderr shown, when it fails.
    With ``cache`` it keeps compiled programs there as the CLI does, and a worker that finds
    them filled loads them (the CLI's second run); it then leaves out the 512-step render."""
    command = [sys.executable, __file__, "--worker", framework, "--only", case.name]
    command += ["--quick"] if args.quick else []
    env = {**os.environ, "PYTHONPATH": str(tree), "JAX_COMPILATION_CACHE_DIR": ""}
    if cache is not None:
        from paramviz.cli import use_compile_cache

        warm = any(cache.iterdir())
        command += ["--no-long"] if warm else []
        del env["JAX_COMPILATION_CACHE_DIR"]
        use_compile_cache(env, cache)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode or not lines:
        print(f"{case.name}/{framework}: worker failed (exit {done.returncode})", file=sys.stderr)
        return None
    return json.loads(lines[-1].removeprefix(RESULT_PREFIX))


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_name() -> str:
    """The CPU's name, family and model, and whether it has AVX-512: hosts that print the same
    name ("AMD EPYC") can differ by a generation, and the ratios with them."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if not line.strip():
                break  # the first processor is enough
            fields.setdefault(key.strip(), value.strip())
    if "model name" not in fields:
        return platform.processor() or platform.machine()
    vectors = "AVX-512" if "avx512f" in fields.get("flags", "").split() else "no AVX-512"
    family, model = fields.get("cpu family", "?"), fields.get("model", "?")
    return f"{fields['model name']} (family {family}, model {model}, {vectors})"


def header() -> str:
    """Machine, load, dtype and the timing method: what the figures mean."""
    lines = [
        f"paramviz render benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"machine: {cpu_name()}, {os.cpu_count()} cores,",
        f"  load average {load_average()} (1/5/15 min)",
        "float32; per (case, framework) one fresh process making three renders:",
        f"  s/step: median (min-max) over the first call's steps after {WARMUP_STEPS} warm-up",
        "    steps (jax: timed in laps of several steps, one program call each, as render runs);",
        "  cpu/wall: process CPU s per wall s over them (~2 on an undisturbed 2-core machine);",
        "  first: wall s of the first call and its startup (call - steps x s/step: network,",
        "    trace, compile); repeat: the same for a second call with another unit and start;",
        "  64/512: wall s of a 64- and a 512-step first call (* = estimated from the figures);",
        "  peak MB: the process's max RSS; step, 64, 512 (jax rows): s/step and the calls over",
        "    the faster of torch and lucent in that column; peak: peak MB over torch's;",
        f"  {CACHED!r}: a second process with the compiled programs the jax row kept in a",
        "    persistent cache (as the CLI does by default), so its first call compiles nothing",
    ]
    if os.getloadavg()[0] > QUIET_LOAD:
        lines.append(
            f"WARNING: load average above {QUIET_LOAD}: PyTorch's threads collapse under "
            "contention, so these ratios flatter JAX; rerun on a quiet machine"
        )
    return "\n".join(lines)


COLUMNS = (
    f"{'case':<9} {'fw':<12} {'s/step':>8} {'(min-max)':>13} {'cpu/wall':>8} {'first':>7} "
    f"{'startup':>8} {'repeat':>7} {'startup':>8} {'64':>7} {'512':>8} {'peak MB':>8}  "
    "step   64  512 peak"
)


RATIO_COLUMNS = ("median_s", "wall_64_s", "wall_512_s")
SPEED_GOAL = 0.8  # per step and per call at most 0.8x the faster peer
MEMORY_GOAL = 1.0  # and peak memory at most PyTorch's


def ratios(framework: str, results: dict[str, dict[str, Any] | None]) -> list[float]:
    """A JAX row's s/step, 64- and 512-step call over the faster peer's and its peak over
    PyTorch's (as many as the peers run allow); [] for the peers' own rows."""
    r = results[framework]
    peers = [results[fw] for fw in ("torch", "lucent") if results.get(fw)]
    torch = results.get("torch")
    if r is None or not peers or not framework.startswith("jax"):
        return []
    values = [r[c] / min(p[c] for p in peers) for c in RATIO_COLUMNS]
    return values + [r["peak_mb"] / torch["peak_mb"]] if torch else values


def table_rows(case: Case, results: dict[str, dict[str, Any] | None]) -> list[str]:
    """One row per framework; JAX rows carry their ratios to the faster peer."""
    rows = []
    for framework, r in results.items():
        label = f"{case.name:<9} {framework:<12}"
        if r is None:
            rows.append(f"{label} FAILED")
            continue
        star = "" if r["wall_512_measured"] else "*"
        rows.append(
            f"{label} {r['median_s']:>8.3f} {r['min_s']:>6.3f}-{r['max_s']:<6.3f} "
            f"{r['cpu_per_wall']:>8.2f} {r['first_call_s']:>7.1f} {r['first_startup_s']:>8.2f} "
            f"{r['repeat_call_s']:>7.1f} {r['repeat_startup_s']:>8.2f} {r['wall_64_s']:>7.1f} "
            f"{r['wall_512_s']:>7.0f}{star:1} {r['peak_mb']:>8.0f}  "
            + " ".join(f"{x:4.2f}" for x in ratios(framework, results))
        )
    return rows


def verdict(values: list[float], goal: float) -> str:
    """Whether every round meets ``goal`` (a ratio at most it), none does, or the rounds split."""
    met = sum(v <= goal for v in values)
    return "met" if met == len(values) else "missed" if met == 0 else f"split {met}/{len(values)}"


def rounds_summary(case: Case, rounds: list[dict[str, dict[str, Any] | None]]) -> list[str]:
    """Each JAX row's ratios over the rounds, each round's JAX against that round's peers: the
    median, the range and whether the goal holds in all rounds, none or some."""
    lines = [f"# {case.name} over {len(rounds)} rounds: ratio median (min-max), goal"]
    names = ("step", "64", "512", "peak")
    for framework in rounds[0]:
        per_round = [ratios(framework, results) for results in rounds]
        if not any(per_round):
            continue
        if not all(per_round):
            lines.append(f"{case.name:<9} {framework:<12} a round failed")
            continue
        cells = []
        for name, values in zip(names, zip(*per_round, strict=False), strict=False):
            goal = MEMORY_GOAL if name == "peak" else SPEED_GOAL
            cells.append(
                f"{name} {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) "
                f"{verdict(list(values), goal)}"
            )
        lines.append(f"{case.name:<9} {framework:<12} " + "; ".join(cells))
    return lines


def case_round(case: Case, args: argparse.Namespace, before: Path | None) -> dict[str, Any]:
    """Every chosen framework on ``case`` once, each in its own process, and the cached and
    before rows: one round's results by row label (None where a worker failed)."""
    chosen = [fw for fw in case.frameworks if fw in args.frameworks]
    with tempfile.TemporaryDirectory(prefix="paramviz-cache-") as folder:
        cache = Path(folder)
        results = {fw: run_pair(fw, case, args, cache=cache if fw == "jax" else None)
                   for fw in chosen}  # fmt: skip
        if "jax" in chosen:
            results[CACHED] = run_pair("jax", case, args, cache=cache)
    if before is not None:
        results[f"jax@{args.compare_rev[:7]}"] = run_pair("jax", case, args, before)
    return results


def run_driver(args: argparse.Namespace) -> int:
    """Every selected case with every framework, one subprocess at a time; prints the table."""
    start = time.perf_counter()
    selected = [c for c in cases(args.quick).values() if not args.only or c.name in args.only]
    print(header())
    print(COLUMNS, flush=True)
    failed = False
    versions: dict[str, Any] = {}
    with worktree(args.compare_rev) as tree:
        before = tree if args.compare_rev else None
        for case in selected:
            print(f"# {case.name}: {case.title()}", flush=True)
            rounds = []
            for number in range(1, args.rounds + 1):
                if args.rounds > 1:
                    print(f"# {case.name}, round {number}/{args.rounds}", flush=True)
                results = case_round(case, args, before)
                rounds.append(results)
                failed |= None in results.values()
                versions.update({r["version"]: r["threads"] for r in results.values() if r})
                print("\n".join(table_rows(case, results)), flush=True)
            if args.rounds > 1:
                print("\n".join(rounds_summary(case, rounds)), flush=True)
    if args.devices:
        failed |= print_devices(args)
    for version, threads in versions.items():
        print(f"{version}, threads: {threads}")
    print(f"total {time.perf_counter() - start:.0f} s; load average at the end {load_average()}")
    return 1 if failed else 0


def print_devices(args: argparse.Namespace) -> bool:
    """16 units on 1 and 2 simulated CPU devices: units x steps per second. True if it failed."""
    case = cases(args.quick)["fvis16"]
    print(f"# {case.name} on 1 and 2 (simulated) CPU devices: units x steps per second")
    failed = False
    for devices in (1, 2):
        r = run_pair("jax", case, args, devices=devices)
        failed |= r is None
        if r is not None:
            rate = case.batch / r["median_s"]
            print(f"  {devices} device(s): {r['median_s']:.3f} s/step, {rate:.2f} unit-steps/s")
    return failed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 px, 4 steps: a smoke test")
    names = ", ".join(cases(False))
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated cases, of {names}")
    parser.add_argument("--compare-rev", metavar="REV", help="also time paramviz at git REV")
    parser.add_argument("--devices", action="store_true", help="also 16 units on 1 and 2 devices")
    parser.add_argument(
        "--rounds", type=int, default=1, metavar="N",
        help="run each case's workers N times in turn and summarise each ratio over the rounds",
    )  # fmt: skip
    parser.add_argument(
        "--frameworks", default=",".join(FRAMEWORKS), help="comma-separated subset to run"
    )
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--no-long", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.frameworks = tuple(fw.strip() for fw in args.frameworks.split(","))
    if unknown := set(args.frameworks) - set(FRAMEWORKS):
        parser.error(f"unknown frameworks {sorted(unknown)}; choose from {FRAMEWORKS}")
    args.only = tuple(name.strip() for name in args.only.split(",")) if args.only else ()
    if unknown := set(args.only) - set(cases(False)):
        parser.error(f"unknown cases {sorted(unknown)}; choose from {tuple(cases(False))}")
    if args.worker and len(args.only) != 1:
        parser.error("--worker needs --only with one case")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        case = cases(args.quick)[args.only[0]]
        run_worker(args.worker, dataclasses.replace(case, long=case.long and not args.no_long))
        return 0
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
