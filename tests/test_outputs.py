"""save_result: PNG, GIF and JSON sidecar written together (or not at all); contact sheets."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from paramviz import outputs
from paramviz.backbones.base import Backbone
from paramviz.render import RenderResult

H, W = 16, 20


def fake_result(batch: int = 1, snapshot_steps=(0, 5)) -> RenderResult:
    """A result as render returns it, with distinct images per snapshot."""
    rng = np.random.default_rng(0)

    def images():
        return rng.uniform(size=(batch, H, W, 3)).astype(np.float32)

    return RenderResult(
        image=images(),
        snapshots={step: images() for step in snapshot_steps},
        losses=np.linspace(2.0, 1.0, 10, dtype=np.float32),
        final_loss=0.9,
        terms={"style": -0.5, "tv": -0.4},
        params=None,
        steps_run=10,
        stopped_reason="completed",
        seed=3,
        started_at="2024-01-01T00:00:00+00:00",
        elapsed_s=1.25,
    )


def fake_backbone() -> Backbone:
    metadata = {
        "source_sha256": "ab" * 32,
        "weights_sha256": "cd" * 32,
        "arch_options": json.dumps({"pooling": "avg"}),
    }
    return Backbone(variables={}, module=None, arch="vgg19", layer_names=(), metadata=metadata)


SETTINGS = {"objective": "relu4_1:3", "steps": 10, "size": (H, W), "lr": np.float32(0.05)}


def test_png_gif_and_sidecar_are_written_and_json_round_trips(tmp_path):
    out = tmp_path / "run" / "out.png"
    paths = outputs.save_result(fake_result(), out, SETTINGS, backbones=fake_backbone(), gif=True)
    assert paths == {"image": out, "json": out.with_suffix(".json"), "gif": out.with_suffix(".gif")}
    assert iio.imread(out).shape == (H, W, 3)
    assert iio.imread(paths["gif"], index=None).shape[0] == 3  # snapshots 0, 5 + final step 10
    record = json.loads(paths["json"].read_text())
    assert record["seed"] == 3
    assert record["settings"] == {"objective": "relu4_1:3", "steps": 10, "size": [H, W], "lr": 0.05}
    assert record["networks"]["main"]["arch"] == "vgg19"
    assert record["networks"]["main"]["weights_sha256"] == "cd" * 32
    assert record["networks"]["main"]["source_sha256"] == "ab" * 32
    assert record["networks"]["main"]["metadata"]["arch_options"] == {"pooling": "avg"}
    assert record["result"]["terms"] == {"style": -0.5, "tv": -0.4}
    assert record["result"]["losses"][0] == 2.0 and len(record["result"]["losses"]) == 10
    assert record["result"]["snapshot_steps"] == [0, 5]
    assert record["paramviz_version"] and record["created_at"]
    assert record["files"] == {"image": "out.png", "json": "out.json", "gif": "out.gif"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.gif", "out.json", "out.png"]


def test_batch_becomes_labelled_contact_sheet(tmp_path):
    labels = ["relu4_1:0", "relu4_1:1", "relu4_1:2", "relu4_1:a-very-long-unit-name"]
    result = fake_result(batch=4, snapshot_steps=(0, 4, 8, 10))
    paths = outputs.save_result(result, tmp_path / "sheet.png", {}, labels=labels, gif=True)
    sheet = iio.imread(paths["image"])
    single = outputs.contact_sheet(result.image, labels)
    assert sheet.shape == single.shape[:2] + (3,)
    frames = iio.imread(paths["gif"], index=None)
    assert frames.shape[0] == 4 and frames.shape[1:3] == sheet.shape[:2]  # final is step 10
    assert json.loads(paths["json"].read_text())["labels"] == labels


def test_contact_sheet_tiles_count_and_size():
    images = np.zeros((5, H, W, 3), np.float32)  # black tiles on a white sheet
    sheet = outputs.contact_sheet(images, columns=3, gap=2)
    assert sheet.shape == (2 * (H + 2) + 2, 3 * (W + 2) + 2, 3)
    dark = sheet.mean(-1) < 0.5
    assert dark.sum() == 5 * H * W  # five tiles, the sixth cell stays white
    assert dark[2 : 2 + H, 2 : 2 + W].all() and not dark[H + 4 :, 2 * (W + 2) + 2 :].any()
    labelled = outputs.contact_sheet(images, [f"unit {i}" for i in range(5)], columns=3)
    assert labelled.shape[0] > sheet.shape[0] and labelled.shape[1] == sheet.shape[1]
    strip = labelled[2 + H : 2 + H + 8, 2 : 2 + W]
    assert (strip.mean(-1) < 0.5).any()  # text was drawn under the first tile


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_gif(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(outputs, "_write_gif", broken_gif)
    with pytest.raises(OSError, match="disk full"):
        outputs.save_result(fake_result(), tmp_path / "out.png", SETTINGS, gif=True)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="settings.callback"):
        outputs.save_result(fake_result(), tmp_path / "out.png", {"callback": print})
    assert list(tmp_path.iterdir()) == []
