"""The render commands (`style`, `texture`, `visualize`) end to end, and their bad-input errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import files
from PIL import Image

from paramviz.cli import main
from paramviz.io import save_png

SPEC = "conv8k3s1p1,relu,maxpool2,conv16k3s1p1,relu,maxpool2,conv16k3s1p1,relu"


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory) -> Path:
    """A tiny plain CNN (taps conv1, relu1, pool1, conv2, relu2, pool2, conv3, relu3) on disk."""
    return files.small_weights(tmp_path_factory.mktemp("w") / "small.safetensors", SPEC)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    return files.content_and_style(tmp_path_factory.mktemp("img"))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_texture_writes_picture_and_sidecar_and_cuts_the_style_loss(
    small_weights, pictures, tmp_path, capsys
):
    out = tmp_path / "tex.png"
    code, stdout, _ = _run(
        capsys, "texture", "--style", pictures["style"], "--weights", small_weights,
        "--size", 32, "--steps", 60, "--lr", 0.1, "--save-every", 20, "--quiet", "-o", out,
    )  # fmt: skip
    assert code == 0 and str(out) in stdout
    record = json.loads(out.with_suffix(".json").read_text())
    losses = record["result"]["losses"]
    assert losses[-1] < losses[0] / 5
    assert record["settings"]["style_layers"] == ["relu1", "relu2", "relu3"]
    assert record["seed"] == 0 and record["networks"]["main"]["arch"] == "sequential"
    assert Image.open(out).size == (32, 32)
    assert out.with_suffix(".gif").is_file()
    assert sorted(p.name for p in tmp_path.glob("tex_step*.png")) == [
        "tex_step00020.png",
        "tex_step00040.png",
    ]


def test_style_starts_from_the_content_image(small_weights, pictures, tmp_path, capsys):
    out = tmp_path / "style.png"
    code, _, _ = _run(
        capsys, "style", "--content", pictures["content"], "--style", pictures["style"],
        "--weights", small_weights, "--size", 48, "--steps", 1, "--lr", 1e-6, "--param", "pixel",
        "--no-decorrelate", "--quiet", "-o", out,
    )  # fmt: skip
    assert code == 0
    result = np.asarray(Image.open(out), dtype=np.float32) / 255
    content = np.asarray(Image.open(pictures["content"]), dtype=np.float32) / 255
    assert result.shape == content.shape == (40, 48, 3)
    assert np.abs(result - content).max() <= 2 / 255


def test_visualize_channel_range_renders_one_labelled_batch(small_weights, tmp_path, capsys):
    out = tmp_path / "units.png"
    code, _, _ = _run(
        capsys, "visualize", "--objective", "relu2:0-2", "--objective", "neuron:relu3:5",
        "--weights", small_weights, "--size", 32, "--steps", 20, "--transforms", "mild",
        "--quiet", "-o", out,
    )  # fmt: skip
    assert code == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["labels"] == ["relu2:0", "relu2:1", "relu2:2", "neuron:relu3:5"]
    assert record["result"]["image_shape"] == [4, 32, 32, 3]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["texture", "--style", "missing.png"], "image not found: missing.png"),
        (["texture", "--style", "{corrupt}"], "cannot read image"),
        (["texture", "--style", "{style}", "--style-layers", "relu9"], "unknown layer"),
        (["visualize", "--objective", "relu2:abc"], "cannot read objective 'relu2:abc'"),
        (["visualize", "--objective", "relu2:5-1"], "empty channel range"),
        (
            ["texture", "--style", "{style}", "--backbone", "vgg19"],
            "holds weights for 'sequential'",
        ),
        (["texture", "--style", "{style}", "--size", "2"], "too small"),
        (
            ["texture", "--style", "{style}", "-o", "out.tif"],
            "--output must end in .png, .jpg, .jpeg or .webp",
        ),
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_writes_nothing(
    argv, message, small_weights, pictures, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    values = {"style": pictures["style"], "corrupt": tmp_path / "corrupt.png"}
    argv = [arg.format(**values) for arg in argv]
    code, _, err = _run(capsys, *argv, "--weights", small_weights, "--steps", 2, "--quiet")
    assert code == 2
    assert message in err
    assert not list(tmp_path.glob("*.json"))


def test_unknown_layer_message_lists_the_valid_ones(small_weights, pictures, capsys):
    code, _, err = _run(
        capsys, "visualize", "--objective", "layer4:1", "--weights", small_weights, "--quiet"
    )
    assert code == 2 and "relu3" in err and "conv1" in err


def test_registry_name_that_was_never_fetched_says_how_to_fetch(pictures, capsys):
    code, _, err = _run(capsys, "texture", "--style", pictures["style"], "--weights", "vgg19")
    assert code == 2 and "paramviz weights fetch vgg19" in err


def test_sheet_puts_pictures_side_by_side_at_the_first_ones_size(tmp_path, capsys):
    red, blue = np.zeros((20, 30, 3)), np.zeros((40, 60, 3))
    red[..., 0], blue[..., 2] = 1.0, 1.0
    paths = [save_png(tmp_path / "red.png", red), save_png(tmp_path / "blue.png", blue)]
    out = tmp_path / "sheet.png"
    assert main(["sheet", *map(str, paths), "--labels", "net,twin", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    sheet = np.asarray(Image.open(out).convert("RGB"), np.float32) / 255
    gap = 2  # outputs.contact_sheet's spacing
    assert sheet.shape[1] == 2 * (30 + gap) + gap  # one row, the blue one resized to 20x30
    assert np.allclose(sheet[gap + 10, gap + 15], [1, 0, 0])
    assert np.allclose(sheet[gap + 10, 2 * gap + 30 + 15], [0, 0, 1], atol=0.02)
    assert main(["sheet", str(paths[0]), "--labels", "a,b", "-o", str(out)]) == 2
    assert "2 --labels for 1 pictures" in capsys.readouterr().err


@pytest.mark.parametrize(("suffix", "kind"), [(".jpg", "JPEG"), (".webp", "WEBP")])
def test_the_output_suffix_names_the_format_and_the_sidecar_sits_beside(
    suffix, kind, small_weights, pictures, tmp_path, capsys
):
    out = tmp_path / f"texture{suffix}"
    argv = ["texture", "--style", pictures["style"], "--weights", small_weights, "--size", 16]
    code, _, err = _run(capsys, *argv, "--steps", 2, "--quiet", "-o", out)
    assert code == 0, err
    assert Image.open(out).format == kind
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["files"]["image"] == out.name
    assert record["sha256"]["image"] == hashlib.sha256(out.read_bytes()).hexdigest()
