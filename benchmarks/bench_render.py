"""Seconds per render step: paramviz (JAX) against the same work written the plain PyTorch way.

    python benchmarks/bench_render.py [--quick] [--only NAME] [--steps N] [--warmup N]

Cases (float32, batch 1 unless said, random weights -- speed does not depend on their values):

* ``style256`` / ``style512``: Gatys style transfer on VGG-19 with average pooling, style Grams
  at relu1_1..relu5_1 (mean L1) plus content relu4_2 (MSE), sigmoid pixel parameterisation started
  from the content image, no transforms, Adam 0.05.
* ``fvis``: feature visualisation of a ResNet-50 layer4 channel at 224 px with the standard prior:
  Lucid's decorrelated Fourier parameterisation and Lucid's standard transforms.
* ``fvis16``: the same with 16 images in one batch, each maximising its own layer4 channel.

One step is parameterisation -> transforms -> network -> objective -> gradient -> Adam update.
Both sides differentiate with respect to the image only (PyTorch weights ``requires_grad=False``)
and run nothing past the deepest layer the objective reads.

Every (case, framework) pair runs in its own subprocess, which imports only its own framework, so
the peak RSS (``getrusage`` high-water mark) is that pair's alone and threads never compete.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

FRAMEWORKS = ("jax", "torch")
LEARNING_RATE = 0.05  # Lucid's Adam step, paramviz's default
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  # Gatys et al. 2016
CONTENT_LAYER = "relu4_2"
FEATURE_LAYER = "layer4"
VGG19_CONVS = (2, 2, 4, 4, 4)  # 3x3 convs per block
VGG_WIDTHS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESULT_PREFIX = "RESULT "


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmarked workload; ``batch`` images, image ``i`` maximises layer4 channel ``i``."""

    name: str
    kind: Literal["style", "features"]
    size: int
    batch: int = 1

    def title(self) -> str:
        """What a reader of the table needs to know about the workload."""
        if self.kind == "style":
            return f"VGG-19 style transfer, {self.size} px"
        images = f"{self.batch} images" if self.batch > 1 else "1 image"
        return f"ResNet-50 layer4 channel, {self.size} px, {images}"


def cases(quick: bool) -> dict[str, Case]:
    """The benchmarked cases; ``quick`` shrinks them so that a smoke test takes seconds."""
    full = (
        Case("style256", "style", 256),
        Case("style512", "style", 512),
        Case("fvis", "features", 224),
        Case("fvis16", "features", 224, batch=16),
    )
    quick_sizes = {"style256": 64, "style512": 96, "fvis": 64, "fvis16": 64}
    if quick:
        full = tuple(dataclasses.replace(c, size=quick_sizes[c.name]) for c in full)
    return {c.name: c for c in full}


# ------------------------------------------------------------------------------------------------
# Timing and memory: shared by both frameworks


@dataclasses.dataclass
class Timing:
    """Wall time of every step (the first ones include warm-up/compilation) and of the whole run."""

    step_s: list[float]
    wall_s: float


def summarise(timing: Timing, warmup: int, import_mb: float) -> dict[str, Any]:
    """Median over the steps after ``warmup``; startup = whatever the run spent beyond steps."""
    timed = timing.step_s[warmup:]
    median = statistics.median(timed)
    return {
        "median_s": median,
        "min_s": min(timed),
        "max_s": max(timed),
        "startup_s": timing.wall_s - median * len(timing.step_s),
        "peak_mb": peak_rss_mb(),
        "import_mb": import_mb,
    }


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
# JAX: paramviz's public API, timed inside one render call


class _StepClock:
    """Stands in for render's progress bar, whose ``update`` render calls after every host sync.

    With ``sync_every=1`` that is once per step, after the step's result reached the host, so the
    gaps between calls are per-step wall times of the real render loop.
    """

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def __enter__(self) -> _StepClock:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        if n != 1:
            raise RuntimeError(f"render synced after {n} steps; the clock needs one per sync")
        self.stamps.append(time.perf_counter())

    def set_postfix(self, **_: object) -> None:
        return None


def jax_timed_render(objective: Any, image_param: Any, backbone: Any, transforms: Any, steps: int):
    """``paramviz.render.render`` of ``steps`` steps; the first step's time includes compilation."""
    from unittest import mock

    import paramviz.render as render_module

    clock = _StepClock()
    if not hasattr(render_module, "_progress_bar"):
        raise RuntimeError("paramviz.render._progress_bar is gone: update the step clock hook")
    with mock.patch.object(render_module, "_progress_bar", lambda total, enabled: clock):
        start = time.perf_counter()
        render_module.render(
            objective,
            image_param,
            backbone,
            transforms=transforms,
            steps=steps,
            learning_rate=LEARNING_RATE,
            progress=False,
            sync_every=1,
        )
        wall = time.perf_counter() - start
    return Timing(list(np.diff([start, *clock.stamps])), wall)


def jax_style(case: Case, steps: int) -> Timing:
    """Gatys style transfer as ``paramviz style`` sets it up (pixel param, targets, objective)."""
    import jax

    from paramviz import backbones, objectives, param

    content, style = sample_images(case.size)
    net = backbones.init(
        "vgg19", jax.random.PRNGKey(0), (case.size, case.size), pooling="avg", last_layer="relu5_1"
    )
    objective = objectives.style_transfer_objective(
        objectives.content_targets(net, content, [CONTENT_LAYER]),
        objectives.style_targets(net, style, STYLE_LAYERS),
    )
    image = param.pixel(case.size, init=content[None])
    return jax_timed_render(objective, image, net, None, steps)


def check_torch_mirror(size: int) -> None:
    """The torch side copies paramviz's prior constants (without importing jax): keep them equal."""
    import transforms
    from paramviz import param

    np.testing.assert_allclose(fourier_scale(size, size), param.spectrum_scale(size, size))
    np.testing.assert_allclose(COLOR_CORRELATION, param.COLOR_CORRELATION_NORMALIZED)
    standard = (transforms.STANDARD_SCALES, transforms.STANDARD_ANGLES)
    if (STANDARD_SCALES, STANDARD_ANGLES) != standard:
        raise AssertionError("transforms' standard preset changed: update the torch mirror")


def jax_features(case: Case, steps: int) -> Timing:
    """Channel visualisation as ``paramviz visualize`` sets it up: Fourier param, standard prior."""
    import jax

    from paramviz import backbones, objectives, param

    check_torch_mirror(case.size)
    net = backbones.init(
        "resnet50", jax.random.PRNGKey(0), (case.size, case.size), last_layer=FEATURE_LAYER
    )
    objective = objectives.Objective.sum(
        objectives.channel(FEATURE_LAYER, i, batch=i if case.batch > 1 else None)
        for i in range(case.batch)
    )
    image = param.fourier(case.size, case.batch, key=jax.random.PRNGKey(1))
    return jax_timed_render(objective, image, net, "standard", steps)


# ------------------------------------------------------------------------------------------------
# PyTorch: the same work, eager, written as a PyTorch user would


def torch_timed_loop(step: Callable[[], None], steps: int) -> Timing:
    """Run ``step`` ``steps`` times (eager CPU torch is synchronous, so wall time is compute)."""
    times = []
    start = time.perf_counter()
    for _ in range(steps):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return Timing(times, time.perf_counter() - start)


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


def torch_normalise(images: Any) -> Any:
    """ImageNet mean/std on NCHW RGB in [0, 1] (what the paramviz backbones do inside)."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


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


def torch_style(case: Case, steps: int) -> Timing:
    """Gatys style transfer (the PyTorch tutorial's shape): same layers, losses and param."""
    import torch

    content, style = (
        torch.from_numpy(a.transpose(2, 0, 1)[None].copy()) for a in sample_images(case.size)
    )
    trunk, taps = torch_vgg19_trunk(STYLE_LAYERS[-1], pooling="avg")
    trunk = torch_frozen(trunk)
    with torch.no_grad():
        style_targets = {k: torch_gram(v) for k, v in torch_taps(trunk, taps, style).items()}
        content_target = torch_taps(trunk, taps, content)[CONTENT_LAYER].clone()
    pixels = torch.logit(content.clamp(1e-4, 1 - 1e-4)).requires_grad_(True)

    def loss() -> Any:
        feats = torch_taps(trunk, taps, torch.sigmoid(pixels))
        style_loss = sum(
            (torch_gram(feats[layer]) - style_targets[layer]).abs().mean() for layer in STYLE_LAYERS
        )
        return style_loss + (feats[CONTENT_LAYER] - content_target).square().mean()

    return torch_timed_loop(torch_adam_step([pixels], loss), steps)


def torch_resnet50_trunk() -> Any:
    """torchvision's ``resnet50()`` (v1.5, stride on the 3×3 conv) up to ``layer4``."""
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
    for planes, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        stage = []
        for index in range(blocks):
            stage.append(Bottleneck(cin, planes, stride if index == 0 else 1))
            cin = planes * 4
        layers.append(nn.Sequential(*stage))
    return nn.Sequential(*layers)


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


def torch_features(case: Case, steps: int) -> Timing:
    """Channel visualisation the Lucent way: Fourier param, standard transforms, Adam."""
    import torch

    net = torch_frozen(torch_resnet50_trunk())
    h = w = case.size
    real, imag = (0.01 * torch.randn(2, case.batch, 3, h, w // 2 + 1)).unbind(0)
    params = [real.requires_grad_(True), imag.requires_grad_(True)]
    rng = random.Random(0)
    images = torch.arange(case.batch)

    def loss() -> Any:
        batch = torch_standard_transforms(torch_fourier_image(*params, h, w), rng)
        acts = net(torch_normalise(batch))
        return -acts[images, images].mean(dim=(1, 2)).sum()  # image i, channel i

    return torch_timed_loop(torch_adam_step(params, loss), steps)


# ------------------------------------------------------------------------------------------------
# Worker (one case, one framework) and driver


RUNNERS: dict[tuple[str, str], Callable[[Case, int], Timing]] = {
    ("jax", "style"): jax_style,
    ("jax", "features"): jax_features,
    ("torch", "style"): torch_style,
    ("torch", "features"): torch_features,
}


def import_framework(framework: str) -> dict[str, Any]:
    """Import and configure the framework; returns what the table header reports about it."""
    if framework == "torch":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        return {"version": torch.__version__, "threads": torch.get_num_threads()}
    import jax

    jax.numpy.zeros(()).block_until_ready()  # start the runtime before the baseline is read
    return {"version": jax.__version__, "threads": f"XLA default ({os.cpu_count()} cores)"}


def run_worker(framework: str, case: Case, steps: int, warmup: int) -> None:
    """Measure one pair in this (fresh) process and print one JSON line for the driver."""
    info = import_framework(framework)
    import_mb = peak_rss_mb()
    timing = RUNNERS[framework, case.kind](case, warmup + steps)
    result = summarise(timing, warmup, import_mb) | info
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_pair(framework: str, case: Case, args: argparse.Namespace) -> dict[str, Any] | None:
    """Run one worker subprocess; None (its stderr already shown) when it fails."""
    command = [sys.executable, __file__, "--worker", framework, "--only", case.name]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    command += ["--quick"] if args.quick else []
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode or not lines:
        print(f"{case.name}/{framework}: worker failed (exit {done.returncode})", file=sys.stderr)
        return None
    return json.loads(lines[-1].removeprefix(RESULT_PREFIX))


def header(args: argparse.Namespace) -> str:
    """Machine, load, dtype and the timing method: what the figures mean."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"paramviz render benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"machine: {cpu}, {os.cpu_count()} cores, load average {load} (1/5/15 min)",
            f"float32, batch 1 unless stated; {args.warmup} warm-up + {args.steps} timed steps, "
            "median s/step (min-max)",
            "jax: inside one paramviz.render.render(progress=False, sync_every=1) call per case; "
            "startup = render wall - steps x median (trace + XLA compile + final evaluation)",
            "torch: eager, set_num_threads(cores); startup = loop wall - steps x median",
            "peak = process max RSS (fresh subprocess per row); import = RSS after importing "
            "the framework",
        ]
    )


def table_rows(case: Case, results: dict[str, dict[str, Any] | None]) -> list[str]:
    """The two rows of one case; the ratio (JAX s/step / PyTorch s/step) sits on the JAX row."""
    rows = []
    ratio = "-"
    if results.get("jax") and results.get("torch"):
        ratio = f"{results['jax']['median_s'] / results['torch']['median_s']:.2f}"
    for framework in FRAMEWORKS:
        r = results.get(framework)
        label = f"{case.name:<9} {framework:<6}"
        if r is None:
            rows.append(f"{label} FAILED")
            continue
        spread = f"{r['min_s']:.3f}-{r['max_s']:.3f}"
        rows.append(
            f"{label} {r['median_s']:>8.3f} {spread:>13} {r['startup_s']:>8.1f} "
            f"{r['peak_mb']:>8.0f} {r['import_mb']:>7.0f}  {ratio if framework == 'jax' else ''}"
        )
    return rows


def run_driver(args: argparse.Namespace) -> int:
    """Every selected case with both frameworks, one subprocess at a time; prints the table."""
    start = time.perf_counter()
    selected = [c for c in cases(args.quick).values() if args.only in (None, c.name)]
    print(header(args))
    print(f"{'case':<9} {'fw':<6} {'s/step':>8} {'(min-max)':>13} {'startup':>8} "
          f"{'peak MB':>8} {'import':>7}  JAX/torch")  # fmt: skip
    failed = False
    versions: dict[str, Any] = {}
    for case in selected:
        print(f"# {case.name}: {case.title()}", flush=True)
        results = {fw: run_pair(fw, case, args) for fw in FRAMEWORKS}
        failed |= None in results.values()
        versions.update({fw: r for fw, r in results.items() if r})
        print("\n".join(table_rows(case, results)), flush=True)
    for fw, r in versions.items():
        print(f"{fw} {r['version']}, threads: {r['threads']}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"total {time.perf_counter() - start:.0f} s; load average at the end {load}")
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 3 steps: a smoke test")
    parser.add_argument("--only", choices=tuple(cases(False)), help="run one case")
    parser.add_argument("--steps", type=int, help="timed steps per case (default 10, quick 3)")
    parser.add_argument("--warmup", type=int, help="untimed first steps (default 2, quick 1)")
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps = args.steps or (3 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1 (the first step compiles)")
    if args.worker and not args.only:
        parser.error("--worker needs --only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        run_worker(args.worker, cases(args.quick)[args.only], args.steps, args.warmup)
        return 0
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
