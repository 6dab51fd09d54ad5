"""Render compiles once per structure, its setup compiles nothing else, and it spreads a batch
over every device.

Compilations are counted from JAX's own log (``jax.log_compiles``), not timed.
"""

from __future__ import annotations

import collections
import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from helpers.compiles import compiled_programs

from paramviz import backbones, objectives, param, render, rng, xla
from paramviz.backbones import base

REPO = Path(__file__).resolve().parents[1]
SPEC = "conv8k3s1p1,relu,maxpool2,conv12k3s1p1,relu,conv16k3s2p1,relu"
WIDE = "conv32k3s1p1,relu,conv32k3s1p1,relu"  # wide enough for XLA to pick YNNPACK


def network(seed: int):
    net = backbones.init("sequential", jax.random.PRNGKey(seed), (24, 24), spec=SPEC)
    return net.replace(metadata={**net.metadata, "source": f"weights {seed}"})


def two_units(first: int, second: int, style_target: np.ndarray) -> objectives.Objective:
    return (
        objectives.channel("relu2", first, batch=0)
        + objectives.channel("relu3", second, batch=1)
        + 0.5 * objectives.style({"relu1": style_target})
        - 1e-3 * objectives.total_variation()
    )


def test_a_second_render_of_the_same_structure_compiles_nothing():
    rng = np.random.default_rng(0)
    with compiled_programs() as first:
        one = render.render(
            two_units(1, 2, rng.uniform(size=(8, 8)).astype(np.float32)),
            param.fourier(24, 2, key=jax.random.PRNGKey(0)),
            network(0),
            transforms="standard",
            steps=6,
            learning_rate=0.05,
            progress=False,
        )
    assert first.count("run_steps") == 1 and "evaluate" not in first  # one program per render
    with compiled_programs() as second:
        two = render.render(
            two_units(5, 11, rng.uniform(size=(8, 8)).astype(np.float32)),  # other units, target
            param.fourier(24, 2, key=jax.random.PRNGKey(3)),
            network(1),  # other weights (and metadata)
            transforms="standard",
            steps=9,  # another length
            learning_rate=0.02,  # another rate
            seed=4,
            thresholds=(0, 4),
            progress=False,
        )
    assert second == []
    assert one.steps_run == 6 and two.steps_run == 9 and sorted(two.snapshots) == [0, 4]
    assert two.losses[0] == pytest.approx(-sum(two.terms.values()), rel=0.5)  # a real objective


def test_a_new_structure_traces_its_networks_once(
    monkeypatch: pytest.MonkeyPatch, network_passes: list[str]
):
    """The trace that records the layers' shapes is the one the step compiles."""
    monkeypatch.setattr(render, "_PROGRAMS", collections.OrderedDict())
    with compiled_programs() as compiled:
        render.render(two_units(1, 2, np.ones((8, 8), np.float32)),
                      param.fourier(24, 2, key=jax.random.PRNGKey(0)), network(0),
                      transforms="standard", steps=3, progress=False)  # fmt: skip
    assert len(network_passes) == 1 and compiled.count("run_steps") == 1


def test_a_render_compiles_its_step_and_nothing_else():
    """The counters, the loss ring and the starting image go to the device with ``device_put``:
    an eager ``jnp`` call compiles a small program per new shape in every process. A stateless
    optimiser leaves nothing else (37 px is used nowhere else, so nothing is compiled already;
    the seed's key, one small program per process, is made before)."""
    image, net = param.pixel(37, key=jax.random.PRNGKey(0)), network(0)
    with compiled_programs() as compiled:
        render.render(objectives.channel("relu2", 0), image, net, optimizer=optax.sgd(0.1),
                      steps=2, progress=False)  # fmt: skip
    assert compiled == ["run_steps"]


def test_preparing_a_network_for_image_gradients_compiles_nothing():
    """The flipped kernels are made with NumPy: a compiled flip cost every new process a compile
    per network (this spec is used nowhere else, so nothing can come from an earlier test)."""
    net = backbones.init("sequential", jax.random.PRNGKey(0), (20, 20), spec="conv5k3s1p1,relu")
    with compiled_programs() as compiled:
        prepared = net.for_image_gradients()
    kernel = net.variables["params"]["conv1"]["kernel"]
    flipped = prepared.variables[base.INPUT_GRAD]["conv1"]["kernel"]
    assert compiled == []
    np.testing.assert_array_equal(flipped, np.asarray(kernel)[::-1, ::-1].swapaxes(2, 3))


def test_style_targets_and_their_weights_compile_one_program_per_target_pass():
    """The forward pass and the layers' statistics are one program, and the relative weights
    are computed with NumPy: eagerly, each Gram's reshape, product and mean compiled a program
    of its own in every new process (this spec and size are used nowhere else)."""
    net = backbones.init("sequential", jax.random.PRNGKey(0), (19, 19), spec="conv6k3s1p1,relu")
    content, style = np.random.default_rng(0).uniform(size=(2, 19, 19, 3)).astype(np.float32)
    with compiled_programs() as compiled:
        objectives.normalised_style_transfer(
            objectives.style_targets(net, style, ["conv1", "relu1"]),
            objectives.content_targets(net, content, ["relu1"]),
        )
    assert compiled == ["_targets", "_targets"]


def test_a_starting_picture_is_inverted_without_compiling():
    """``init=`` pictures are inverted into parameters with NumPy (sizes used nowhere else)."""
    picture = np.random.default_rng(0).uniform(size=(1, 21, 23, 3))
    with compiled_programs() as compiled:
        pixels = param.pixel((21, 23), init=picture, decorrelate=True)
        spectrum = param.fourier((21, 23), init=picture)
    assert compiled == []
    for image in (pixels, spectrum):  # still the inverse of to_image
        np.testing.assert_allclose(image.to_image(image.params), picture, atol=2e-4)


def test_an_index_past_its_layer_is_refused_even_when_the_program_is_cached():
    target = np.ones((8, 8), np.float32)
    kwargs = {"steps": 2, "progress": False}
    render.render(two_units(0, 0, target), param.pixel(24, 2, key=jax.random.PRNGKey(0)),
                  network(0), **kwargs)  # fmt: skip
    with pytest.raises(Exception, match="channel 16 is out of range for layer 'relu3'"):
        render.render(two_units(0, 16, target), param.pixel(24, 2, key=jax.random.PRNGKey(0)),
                      network(0), **kwargs)  # fmt: skip


def test_lbfgs_keeps_a_separate_evaluator_and_also_compiles_once():
    target = np.full((8, 8), 0.1, np.float32)

    def go(scale: float, seed: int, steps: int) -> None:
        start = param.pixel(24, 1, key=jax.random.PRNGKey(seed))
        style = objectives.style({"relu1": scale * target})
        render.render(style, start, network(seed), optimizer="lbfgs", steps=steps, progress=False)

    with compiled_programs() as first:
        go(1.0, 0, 3)
    assert first.count("run_steps") == 1 and first.count("evaluate") == 1
    with compiled_programs() as second:
        go(2.0, 1, 4)
    assert second == []


SHARDED = textwrap.dedent(
    """
    import jax, numpy as np
    from paramviz import backbones, objectives, param, render
    net = backbones.init("sequential", jax.random.PRNGKey(0), (16, 16), spec="conv8k3p1,relu")
    units = objectives.Objective.sum(objectives.channel("relu1", c, batch=c) for c in range(4))
    def go():
        return render.render(units, param.fourier(16, 4, key=jax.random.PRNGKey(0)), net,
                             transforms="mild", steps=12, progress=False)
    sharded = go()
    devices = {d for leaf in jax.tree.leaves(sharded.params) for d in leaf.devices()}
    render._shard_batch = lambda params: params  # one device, as on a one-device machine
    render._PROGRAMS.clear()
    single = go()
    print(len(jax.devices()), len(devices))
    np.testing.assert_allclose(sharded.image, single.image, atol=1e-5)
    np.testing.assert_allclose(sharded.losses, single.losses, rtol=1e-4)
    """
)


def test_a_batch_renders_the_same_spread_over_two_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300,
        cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["2", "2"]  # two devices, the parameters on both


def test_a_repeated_command_loads_its_program_from_the_cache(tmp_path: Path):
    weights = backbones.save(tmp_path / "w.safetensors", network(0))
    env = {**os.environ, "PARAMVIZ_HOME": str(tmp_path / "home"), "JAX_LOG_COMPILES": "1"}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    argv = [sys.executable, "-m", "paramviz.cli", "visualize", "--weights", str(weights),
            "--objective", "relu3:0-1", "--size", "24", "--steps", "3", "--quiet"]  # fmt: skip
    logs = []
    for run in "ab":
        done = subprocess.run(
            [*argv, "-o", str(tmp_path / f"{run}.png")], env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        logs.append(done.stderr)
    assert "Persistent compilation cache hit for 'jit_run_steps'" not in logs[0]
    assert "Persistent compilation cache hit for 'jit_run_steps'" in logs[1]
    assert any((tmp_path / "home" / "jax-cache").glob("jit_run_steps-*"))
    # the small programs too (the optimiser's state): every one the repeat needs is loaded
    programs = logs[1].count("Finished XLA compilation of jit(")
    assert programs > 1 and logs[1].count("Persistent compilation cache hit") == programs


def _compiles_in_a_fresh_process(make_key: str) -> bool:
    """Whether ``make_key(3)``, the first JAX work of a new process, compiles a program."""
    code = f"import jax; jax.config.update('jax_log_compiles', True); {make_key}(3)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO, check=True)  # fmt: skip
    return "Finished XLA compilation" in done.stderr


def test_a_seeds_key_is_jaxs_own_made_without_compiling():
    """``rng.key(seed)`` has ``jax.random.PRNGKey(seed)``'s words, in 64-bit mode too, and
    compiles nothing: JAX's own compiles two small programs in every new process."""
    seeds = (0, 1, 7, 2**31 - 1, -1, -5, 2**32 - 1, 2**32, 2**40 + 3, -(2**40))
    seeds += (np.int32(-3), np.int64(-3), np.uint32(7), np.uint64(2**40 + 1))
    for wide in (False, True):
        with jax.enable_x64(wide):
            for seed in seeds:
                expected = jax.random.PRNGKey(seed)
                got = rng.key(seed)
                assert got.dtype == expected.dtype, (wide, seed)
                np.testing.assert_array_equal(got, expected, err_msg=f"x64={wide} seed={seed}")
    assert _compiles_in_a_fresh_process("jax.random.PRNGKey")
    assert not _compiles_in_a_fresh_process("__import__('paramviz.rng').rng.key")


def test_the_step_runs_xlas_own_convolutions_not_ynnpacks(monkeypatch: pytest.MonkeyPatch):
    """paramviz.xla's options reach the compiled step: on CPU, XLA's default hands a convolution
    this wide to YNNPACK (one core at a time), as a plain ``jax.jit`` of one shows."""
    net = backbones.init("sequential", jax.random.PRNGKey(0), (24, 24), spec=WIDE)
    runs, run_class = [], render._Run
    monkeypatch.setattr(render, "_Run", lambda *args: runs.append(args) or run_class(*args))
    render.render(objectives.channel("relu2", 0), param.pixel(24, 1, key=jax.random.PRNGKey(0)),
                  net, steps=1, progress=False)  # fmt: skip
    [(program, inputs, state)] = runs
    step = program.run_steps.lower(state, inputs, 1).compile().as_text()
    assert "convolution(" in step and "ynn_fusion" not in step
    x, kernel = np.ones((1, 24, 24, 32), np.float32), np.ones((3, 3, 32, 32), np.float32)
    plain = jax.jit(
        functools.partial(
            jax.lax.conv_general_dilated,
            window_strides=(1, 1),
            padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
    )
    assert "ynn_fusion" in plain.lower(x, kernel).compile().as_text()


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_freed_heap_pages_go_back_to_the_system():
    """What a compile leaves to glibc: many small blocks freed below one still in use."""
    if not xla.release_free_memory():
        pytest.skip("this C library has no malloc_trim")
    blocks = [np.ones(16 * 1024, np.float32) for _ in range(2048)]  # 128 MiB in 64 KiB blocks
    live = np.ones(16 * 1024, np.float32)  # above them, so the heap cannot simply shrink
    del blocks
    freed = resident_mb()
    assert xla.release_free_memory()
    assert freed - resident_mb() > 100
    del live


def test_a_long_compile_hands_free_memory_back_and_a_cached_render_does_not(
    monkeypatch: pytest.MonkeyPatch,
):
    trims: list[int] = []
    monkeypatch.setattr(xla, "_MALLOC_TRIM", trims.append)
    x = np.float32(2)
    monkeypatch.setattr(xla, "RELEASE_AFTER_COMPILE_S", 1e9)  # no compile is that long
    with xla.memory_handed_back():
        jax.jit(lambda v: v * 5.0 - 1.0).lower(x).compile()
    assert trims == []
    monkeypatch.setattr(xla, "RELEASE_AFTER_COMPILE_S", 0.0)
    with xla.memory_handed_back():
        jax.jit(lambda v: v * 3.0 + 1.0).lower(x).compile()
    assert trims == [0]
    jax.jit(lambda v: v * 7.0 + 2.0).lower(x).compile()  # a user's own, outside paramviz's jobs
    assert trims == [0]  # importing paramviz installed no listener
    net, image = network(0), param.pixel(24, 1, key=jax.random.PRNGKey(0))
    render.render("relu2:0", image, net, steps=1, progress=False)
    assert len(trims) > 1
    trims.clear()
    render.render("relu2:1", image, net, steps=2, progress=False)  # compiles nothing
    assert trims == []


def test_a_damaged_cache_entry_is_said_once_dropped_and_kept_anew(tmp_path: Path):
    weights = backbones.save(tmp_path / "w.safetensors", network(0))
    env = {**os.environ, "PARAMVIZ_HOME": str(tmp_path / "home")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    argv = [sys.executable, "-m", "paramviz.cli", "visualize", "--weights", str(weights),
            "--objective", "relu3:0", "--size", "24", "--steps", "2", "--quiet"]  # fmt: skip

    def run() -> str:
        done = subprocess.run(
            [*argv, "-o", str(tmp_path / "a.png")], env=env, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stderr

    assert run() == ""
    (entry,) = (tmp_path / "home" / "jax-cache").glob("jit_run_steps-*")
    entry.write_bytes(b"half a program")
    assert run() == (
        "paramviz: a damaged compile-cache entry of jit_run_steps was deleted and is compiled "
        "anew\n"
    )
    assert entry.is_file() and entry.read_bytes() != b"half a program"  # kept anew
    assert run() == ""  # and read from then on, without a word


def test_an_unusable_cache_folder_is_one_line_and_the_command_goes_on(tmp_path: Path):
    weights = backbones.save(tmp_path / "w.safetensors", network(0))
    home = tmp_path / "home"
    home.write_text("a file where the cache's folder should be")
    env = {**os.environ, "PARAMVIZ_HOME": str(home)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-m", "paramviz.cli", "visualize", "--weights", str(weights),
         "--objective", "relu3:0", "--size", "24", "--steps", "2", "--quiet",
         "-o", str(tmp_path / "a.png")], env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == (
        f"paramviz: the compile cache {home / 'jax-cache'} cannot be used (Not a directory); "
        "going on without it (set $PARAMVIZ_HOME or $JAX_COMPILATION_CACHE_DIR to a writable "
        "folder)\n"
    )
    assert (tmp_path / "a.json").is_file()
