"""The three jobs as Python calls (paramviz.style_transfer, texture, visualize): they return
pictures and write nothing until ``.save``, which writes what the command line writes."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import files
from PIL import Image

import paramviz
from paramviz.cli import main
from paramviz.errors import UserError

SPEC = "conv8k3s1p1,relu,maxpool2,conv16k3s1p1,relu"
STEPS = 30


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory) -> Path:
    return files.small_weights(tmp_path_factory.mktemp("w") / "small.safetensors", SPEC)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    return files.content_and_style(tmp_path_factory.mktemp("img"))


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def comparable(path: Path) -> dict:
    """A sidecar without what differs between two runs of the same settings (times, names of
    the files it lists)."""
    record = json.loads(path.read_text())
    for key in ("created_at", "files", "sha256"):
        record.pop(key)
    for key in ("started_at", "elapsed_s"):
        record["result"].pop(key)
    record["settings"].pop("snapshot_to", None)
    return record


CASES = {
    "style": (
        lambda p, w: paramviz.style_transfer(
            p["content"], p["style"], weights=w, size=32, steps=STEPS
        ),
        lambda p, w: ["style", "--content", p["content"], "--style", p["style"],
                      "--weights", w, "--size", 32, "--steps", STEPS],
    ),
    "texture": (
        lambda p, w: paramviz.texture(p["style"], weights=w, size=32, steps=STEPS, lr=0.1),
        lambda p, w: ["texture", "--style", p["style"], "--weights", w, "--size", 32,
                      "--steps", STEPS, "--lr", 0.1],
    ),
    "visualize": (
        lambda p, w: paramviz.visualize(
            ["relu2:0", "relu2:1"], weights=w, size=(24, 32), steps=STEPS
        ),
        lambda p, w: ["visualize", "--objective", "relu2:0", "--objective", "relu2:1",
                      "--weights", w, "--size", 24, 32, "--steps", STEPS],
    ),
}  # fmt: skip


@pytest.mark.parametrize("job", CASES)
def test_a_call_returns_pictures_writes_nothing_and_saves_what_the_cli_writes(
    job, small_weights, pictures, empty_cwd, tmp_path, capsys
):
    call, argv = CASES[job]
    result = call(pictures, small_weights)
    assert files_under(empty_cwd) == [] and files_under(tmp_path / "cwd") == []
    images = result.images
    assert images.ndim == 4 and np.all((images >= 0) & (images <= 1))
    assert len(result.losses) == STEPS and result.losses[-1] < result.losses[0]
    saved = result.save(tmp_path / "python.png")
    assert set(saved) == {"image", "json"}
    cli_out = tmp_path / "cli.png"
    assert main([str(a) for a in argv(pictures, small_weights)] + ["-o", str(cli_out)]) == 0
    assert comparable(saved["json"]) == comparable(cli_out.with_suffix(".json"))
    assert Image.open(saved["image"]).tobytes() == Image.open(cli_out).tobytes()


def test_pictures_may_be_paths_arrays_or_pil_images(small_weights, pictures):
    from_path = paramviz.texture(pictures["style"], weights=small_weights, size=32, steps=3)
    pil = Image.open(pictures["style"])
    from_pil = paramviz.texture(pil, weights=small_weights, size=32, steps=3)
    from_array = paramviz.texture(np.asarray(pil), weights=small_weights, size=32, steps=3)
    np.testing.assert_array_equal(from_path.images, from_pil.images)
    np.testing.assert_array_equal(from_path.images, from_array.images)
    assert from_path.settings["style"] == [str(pictures["style"])]
    assert from_array.settings["style"] == ["picture 40x40"]


def test_bad_keywords_and_pictures_are_one_line(small_weights, pictures):
    with pytest.raises(UserError, match="texture: unknown setting\\(s\\) step; known: param,"):
        paramviz.texture(pictures["style"], weights=small_weights, step=3)
    with pytest.raises(UserError, match="a picture must be \\(H, W\\) or \\(H, W, 3\\)"):
        paramviz.texture(np.zeros((4, 4, 4)), weights=small_weights, steps=1)
    with pytest.raises(UserError, match="a picture of floats must lie in \\[0, 1\\]"):
        paramviz.texture(np.full((8, 8, 3), 255.0), weights=small_weights, steps=1)
    with pytest.raises(UserError, match="init 'content' needs style_transfer"):
        paramviz.texture(pictures["style"], weights=small_weights, init="content")


def test_a_result_draws_itself_in_jupyter(small_weights):
    result = paramviz.visualize("relu2:0-2", weights=small_weights, size=16, steps=5)
    png = Image.open(io.BytesIO(result._repr_png_()))
    assert png.size == result.picture.shape[1::-1] and result.picture.shape[0] > 16  # the sheet
    html = result._repr_html_()
    shown = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(shown) == result._repr_png_()
    points = html.split('points="')[1].split('"')[0].split()
    assert len(points) == len(result.losses)
    assert "sequential: 5 steps, final loss" in html


def test_a_save_with_snapshots_writes_them_and_a_gif(small_weights, tmp_path):
    result = paramviz.visualize("relu2:0", weights=small_weights, size=16, steps=6, save_every=2)
    assert files_under(tmp_path) == []
    saved = result.save(tmp_path / "v.webp")
    assert set(saved) == {"image", "json", "gif"} and Image.open(saved["image"]).format == "WEBP"
    assert sorted(os.listdir(tmp_path)) == [
        "v.gif", "v.json", "v.webp", "v_step00002.png", "v_step00004.png",
    ]  # fmt: skip
    with pytest.raises(UserError, match="--output must end in .png, .jpg, .jpeg, .webp"):
        result.save(tmp_path / "v.tiff")
