"""The test bed's protocol (``headline``): matched content weights, the plan, a quick run of it
end to end (search -> matched main cells -> shuffled sheets, never self-judged), and its data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paramviz.experiments import datasets, registry
from paramviz.experiments.catalog import headline
from paramviz.weights.local import trunk_source


def test_the_matched_weight_interpolates_in_log_weight_and_stays_near_the_search():
    points = [(0.5, 0.4), (2.0, 0.2)]  # more content weight, less content distance
    assert headline.matched_weight(points, 0.3) == pytest.approx(1.0)
    assert headline.matched_weight(points, 0.4) == pytest.approx(0.5)
    assert headline.matched_weight(points, 0.0) == pytest.approx(2.0 * headline.EXTRAPOLATION)
    assert headline.matched_weight([(0.5, 0.3), (2.0, 0.3)], 0.1) == 0.5
    # more weight, *more* distance (seed noise): no line, the nearest search point
    assert headline.matched_weight([(0.5, 0.1), (2.0, 0.2)], 0.17) == 2.0


SETTINGS = {
    "pairs": [["a", "b"], ["c", "d"]],
    "seeds": [0, 1],
    "backbones": ["x", "y"],
    "routes": list(headline.ROUTES),
    "search_weights": [0.5, 2.0],
    "search_route": headline.SEARCH_ROUTE,
    "reference": ["y"],
}


def test_the_plan_searches_first_then_renders_every_pair_seed_net_and_route_then_sheets():
    cells = headline.plan(SETTINGS)
    groups = [cell.group for cell in cells]
    assert groups[:4] == ["search"] * 4 and groups[-2:] == ["sheet", "sheet"]
    main = [cell for cell in cells if cell.group not in ("search", "sheet")]
    assert len(main) == 2 * (2 + 1) * len(headline.ROUTES)  # the reference: the first seed only
    assert {c.seed for c in main if c.backbone == "y"} == {0}
    assert len({(c.group, c.seed, c.backbone, c.prior) for c in main}) == len(main)
    assert [c.group for c in main if c.spec.get("calibrate")] == ["a+b", "c+d"]


def test_all_runs_the_published_comparisons_not_the_test_bed():
    everything = [e.name for e in registry.select(["all"])]
    assert "headline" not in everything and "style-grid" in everything
    assert "headline" in [e.name for e in registry.select(["all", "headline"])]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    """``paramviz experiment run headline --weights-set testbed --quick`` in a fresh process."""
    run_dir = tmp_path_factory.mktemp("headline") / "run"
    home = tmp_path_factory.mktemp("home")
    argv = [sys.executable, "-m", "paramviz.cli", "experiment", "run", "headline"]
    argv += ["--weights-set", "testbed", "--quick", "-o", str(run_dir), "--no-progress"]
    env = {**os.environ, "PARAMVIZ_HOME": str(home)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return run_dir


def test_the_quick_protocol_matches_weights_judges_blind_and_shuffles_its_sheets(quick_run):
    data = json.loads((quick_run / "headline" / "metrics.json").read_text())
    settings = json.loads((quick_run / "headline" / "settings.json").read_text())
    main = [c for c in data["cells"] if c["group"] not in ("search", "sheet")]
    assert main and all(math.isfinite(v) for c in main for v in c["metrics"].values())
    for backbone in settings["backbones"]:
        weights = {c["metrics"]["content_weight"] for c in main if c["backbone"] == backbone}
        assert len(weights) == 1  # one matched weight per network, for every route and pair
        low, high = settings["search_weights"]
        assert low / headline.EXTRAPOLATION <= weights.pop() <= high * headline.EXTRAPOLATION
    trunk = [c for c in main if c["backbone"].startswith("vgg19")]
    assert bool(trunk) == trunk_source().is_file()  # the real trunk joins when ../shared has it
    assert all("style_trunk" not in c["metrics"] for c in trunk)
    assert all("style_trunk" in c["metrics"] for c in main if c not in trunk)
    rows = [r for r in data["rows"] if r["backbone"] != "calibration" and "stage" not in r]
    assert len(rows) == len(settings["backbones"]) * len(settings["routes"])
    for row in rows:  # a spread where two seeds ran, none for the one-seed reference
        reference = row["backbone"] in settings["reference"]
        assert (row["style_distance_seed_spread"] is None) == reference
    assert {r["prior"] for r in data["rows"] if r["backbone"] == "calibration"} == {
        "content",
        "content+noise",
        "style",
        "style+shuffle",
        "style+blur",
        "content+checkerboard",
    }
    sheet = next(c for c in data["cells"] if c["group"] == "sheet")
    key = [(k["backbone"], k["route"]) for k in sheet["details"]["key"]]
    expected = [(b, r) for b in settings["backbones"] for r in settings["routes"]]
    assert sorted(key) == sorted(expected) and key != expected
    with Image.open(quick_run / "headline" / sheet["image"]) as picture:
        assert picture.size[0] > settings["size"] * len(settings["routes"])


def test_the_report_writes_a_markdown_summary_with_the_sheets(quick_run):
    from paramviz.cli import main

    assert main(["report", str(quick_run)]) == 0
    summary = (quick_run / "summary" / "summary.md").read_text()
    assert "## headline" in summary and "Calibration ranked correctly: " in summary
    assert len(list((quick_run / "summary").glob("headline-sheet__*.png"))) == 1


def test_the_summarys_calibration_line_says_yes_or_no_with_the_broken_orders():
    from types import SimpleNamespace

    from paramviz.experiments.report.summary import calibration_lines

    def lines(shuffled_style: float, noisy_content: float) -> list[str]:
        rows = {  # group "g": kind -> metrics, each metric's better kind first
            "style": {"style_trunk": 0.0, "content_trunk": 0.9},
            "style+shuffle": {"style_trunk": shuffled_style},
            "content": {"style_trunk": 0.8, "content_trunk": 0.0},
            "content+noise": {"style_trunk": 0.7, "content_trunk": noisy_content},
        }
        cell = SimpleNamespace(group="g", details={"calibration": rows})
        return calibration_lines(SimpleNamespace(record=SimpleNamespace(cells=[cell])))

    assert lines(0.3, 0.1) == [
        "Calibration ranked correctly: yes, by all 2 metrics (content_trunk, style_trunk)."
    ]
    assert lines(0.75, 0.1) == [  # a shuffled copy of the style judged farther than the content
        "Calibration ranked correctly: no, 1 of 2 metrics broke an order; ranked correctly by: "
        "content_trunk.",
        "- style_trunk broke: g: style+shuffle 0.75 >= content+noise 0.7",
    ]
    assert lines(0.9, 0.95) == [
        "Calibration ranked correctly: no, 2 of 2 metrics broke an order; ranked correctly by: "
        "none.",
        "- style_trunk broke: g: style+shuffle 0.9 >= content 0.8; "
        "g: style+shuffle 0.9 >= content+noise 0.7",
        "- content_trunk broke: g: content+noise 0.95 >= style 0.9",
    ]


# ----------------------------------------------------------------------------------- its data


def test_each_wallpaper_counts_once(tmp_path):
    def touch(relative: str, size: int = 10) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)

    touch("wallpapers/Path/contents/images/1280x800.jpg", 5)
    touch("wallpapers/Path/contents/images/2560x1600.jpg", 9)
    touch("wallpapers/Path/contents/images_dark/2560x1600.jpg")
    touch("wallpapers/Path/contents/screenshot.jpg")
    touch("backgrounds/gnome/wood-l.webp")
    touch("backgrounds/gnome/wood-d.webp")
    touch("backgrounds/mate/Elephants.jpg", 3)
    touch("backgrounds/mate/Elephants_3840x2160.jpg", 8)
    touch("backgrounds/gnome/blobs.svg")
    files = datasets.wallpaper_files([tmp_path / "wallpapers", tmp_path / "backgrounds"])
    names = [str(p.relative_to(tmp_path)) for p in files]
    assert names == [
        "backgrounds/mate/Elephants_3840x2160.jpg",
        "wallpapers/Path/contents/images/2560x1600.jpg",
        "backgrounds/gnome/wood-l.webp",
    ]


def test_photos_are_resized_to_the_rendering_scale():
    square = np.zeros((300, 500, 3), np.uint8)
    assert datasets.at_short_side(square, 128).shape == (128, 213, 3)
    assert set(datasets.HELD_OUT) <= {f"skimage/{n}" for n in datasets.SKIMAGE_TEXTURES}
