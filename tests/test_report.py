"""The HTML report: built from a hand-made run folder (not the runner), checked as text and in a
real headless Chromium (pictures decode, sliders move, tables sort, nothing is fetched)."""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers.browser import (
    check_images_and_network,
    chrome_fixture,  # noqa: F401 (the chrome fixture)
    js,
    wait_for_images,
)
from PIL import Image

from paramviz.cli import build_parser
from paramviz.errors import UserError
from paramviz.experiments import report
from paramviz.experiments.records import ExperimentRecord

STYLE_LOSSES = [10.0, 9.0, 100.0, 2.5]  # numeric and text order differ: 10 < 100 < 2.5 < 9


# ---------------------------------------------------------------- the fixture run folder


def write_png(path: Path, hue: int, size: tuple[int, int]) -> None:
    """A small gradient picture, distinct per ``hue`` so a swapped image would be noticed."""
    w, h = size
    ramp = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    pixels = np.stack([ramp, np.full_like(ramp, hue), ramp[:, ::-1]], axis=-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def cell(experiment: str, cid: str, group: str, backbone: str, prior: str, metrics: dict) -> dict:
    return {
        "id": cid,
        "experiment": experiment,
        "group": group,
        "backbone": backbone,
        "prior": prior,
        "optimizer": "adam",
        "image": f"cells/{cid}.png",
        "inputs": {"content": "../inputs/chelsea.png", "style": "../inputs/starry.png"},
        "labels": ["tabby cat", "tiger cat"] if prior == "fourier" else None,
        "metrics": metrics,
        "seconds": 1.5,
        "seed": 0,
    }


def style_grid(run: Path) -> None:
    """Two backbones × two priors in one group (4 cells), and a group whose picture is lost."""
    folder = run / "style-grid"
    cells = []
    combos = [
        ("vgg19", "pixel"),
        ("vgg19", "fourier"),
        ("vgg19-robust", "pixel"),
        ("vgg19-robust", "fourier"),
    ]
    for i, ((backbone, prior), loss) in enumerate(zip(combos, STYLE_LOSSES, strict=True)):
        cid = f"{backbone}-{prior}"
        cells.append(
            cell(
                "style-grid",
                cid,
                "chelsea+starry",
                backbone,
                prior,
                {"style_loss": loss, "content_loss": 0.1 * i},
            )
        )
        write_png(folder / "cells" / f"{cid}.png", 40 * i, (24, 16))
    lost = cell(
        "style-grid",
        "lost",
        "chelsea+wave",
        "vgg19",
        "pixel",
        {"style_loss": math.nan, "content_loss": 0.5},
    )
    cells.append(lost)  # its PNG is never written
    write_json(folder / "settings.json", {"steps": 20, "size": 64})
    write_json(
        folder / "metrics.json",
        {
            "experiment": "style-grid",
            "title": "Style transfer <grid> & priors",
            "question": "Robust backbones transfer style without a Fourier prior (Nakano 2019).",
            "columns": ["style_loss", "content_loss"],
            "cells": cells,
            "backbones": {
                "vgg19": {
                    "arch": "vgg19",
                    "weights": "vgg19-caffe",
                    "sha256": "ab" * 32,
                    "stand_in": False,
                },
                "vgg19-robust": {
                    "arch": "vgg19",
                    "weights": "trained/robust",
                    "sha256": "cd" * 32,
                    "stand_in": True,
                },
            },
            "seconds": 12.0,
        },
    )


def layer_robustness(run: Path) -> None:
    """Only R(f) rows: two backbones over four layers, one of them with an undrawable NaN."""
    layers = ["layer1", "layer2", "layer3", "layer4"]
    rows = [
        {"backbone": name, "layer": layer, "R": r, "eps": 0.5, "steps": 10}
        for name, values in (
            ("resnet50", [0.9, 0.7, 0.4, 0.2]),
            ("resnet50-robust", [0.95, 0.9, 0.8, math.nan]),
        )
        for layer, r in zip(layers, values, strict=True)
    ]
    write_json(
        run / "layer-robustness" / "metrics.json",
        {
            "experiment": "layer-robustness",
            "title": "Robustness per layer",
            "question": "Features of robust networks survive transforms at every depth.",
            "columns": [],
            "cells": [],
            "rows": rows,
            "backbones": {
                "resnet50": {"arch": "resnet50"},
                "resnet50-robust": {"arch": "resnet50"},
            },
            "seconds": 3.0,
        },
    )


def single_layer_style(run: Path) -> None:
    """Cells plus rows without a backbone key: they belong to the experiment's only backbone."""
    folder = run / "single-layer-style"
    cells = []
    for i, layer in enumerate(["conv1_1", "conv3_1"]):
        record = cell("single-layer-style", layer, layer, "vgg19", "pixel", {"style_loss": i})
        cells.append(record)
        write_png(folder / "cells" / f"{layer}.png", 200 - 50 * i, (16, 16))
    write_json(
        folder / "metrics.json",
        {
            "experiment": "single-layer-style",
            "title": "Style from one layer",
            "question": "A single layer carries a recognisable style.",
            "columns": ["style_loss"],
            "cells": cells,
            "rows": [{"layer": "conv1_1", "R": 0.3}, {"layer": "conv3_1", "R": 0.6}],
            "backbones": {"vgg19": {"arch": "vgg19", "stand_in": False}},
        },
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder as the runner writes it; ``neurons`` is listed but never ran."""
    run = tmp_path / "run-2024"
    write_png(run / "inputs" / "chelsea.png", 100, (20, 14))
    write_png(run / "inputs" / "starry.png", 220, (14, 20))
    style_grid(run)
    layer_robustness(run)
    single_layer_style(run)
    write_json(
        run / "run.json",
        {
            "paramviz_version": "0.1.0",
            "weights_set": "fixture",
            "quick": True,
            "experiments": ["style-grid", "neurons", "layer-robustness", "single-layer-style"],
            "started_at": "2024-05-01T10:00:00",
            "finished_at": "2024-05-01T10:05:00",
        },
    )
    return run


# ---------------------------------------------------------------- reading the HTML back


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text = ""

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        """Descendants with this tag whose ``class`` (or other attributes) contain the values."""
        found = []
        for child in self.children:
            if child.tag == tag and all(
                v in (child.attrs.get(k) or "").split() or child.attrs.get(k) == v
                for k, v in attrs.items()
            ):
                found.append(child)
            found += child.find_all(tag, **attrs)
        return found

    def all_text(self) -> str:
        return self.text + "".join(child.all_text() for child in self.children)


class Tree(HTMLParser):
    """Just enough of a DOM to ask which table holds which cells."""

    VOID = {"img", "input", "br", "meta", "link", "hr"}

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#root", {}, None)
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node.parent is not None and node.tag != tag:
            node = node.parent
        if node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text += data


def section(tree: Tree, name: str) -> Node:
    (found,) = [s for s in tree.root.find_all("section") if s.attrs.get("id") == f"exp-{name}"]
    return found


def column(table: Node, header: str) -> list[Node]:
    """The ``td`` nodes under ``header``, in row order."""
    headers = [th.all_text() for th in table.find_all("th", scope="col")]
    index = headers.index(header)
    return [tr.find_all("td")[index] for tr in table.find_all("tbody")[0].find_all("tr")]


@pytest.fixture
def page(run_dir: Path) -> str:
    return report.write_report(run_dir).read_text(encoding="utf-8")


# ---------------------------------------------------------------- the page as text


def test_page_is_self_contained_and_written_atomically(run_dir: Path, page: str):
    assert (run_dir / "report.html").is_file()
    assert not list(run_dir.glob(".report.html.*"))  # atomic_path leaves no .part behind
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page and "<script src" not in page
    images = Tree(page).root.find_all("img")
    assert len(images) >= 8
    for img in images:
        src = img.attrs["src"]
        assert src.startswith("data:image/"), src[:40]
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()


def test_grid_rows_are_backbones_columns_are_priors_with_inputs(page: str):
    grid_section = section(Tree(page), "style-grid")
    first, lost = grid_section.find_all("table", **{"class": "grid"})
    assert [th.all_text() for th in first.find_all("th", scope="col")] == [
        "pixel · adam",
        "fourier · adam",
    ]
    assert [th.all_text() for th in first.find_all("th", scope="row")] == ["vgg19", "vgg19-robust"]
    assert len(first.find_all("img", **{"class": "cell"})) == 4
    assert "tabby cat" in first.all_text()
    inputs = grid_section.find_all("aside", **{"class": "inputs"})[0]
    assert [img.attrs["alt"] for img in inputs.find_all("img")] == [
        "content: chelsea",
        "style: starry",
    ]
    assert "missing: lost" in lost.all_text()  # a lost picture is shown as lost, not dropped
    assert "stand-in" in grid_section.all_text()


def test_one_slider_per_pair_that_differs_in_one_factor(page: str):
    tree = Tree(page)
    sliders = section(tree, "style-grid").find_all("figure", **{"class": "compare"})
    # 2 backbones × 2 priors: robust-vs-standard at each prior, fourier-vs-pixel on each backbone
    assert len(sliders) == 4
    captions = [s.find_all("b")[0].all_text() for s in sliders]
    assert sum(c.startswith("backbone at") for c in captions) == 2
    assert sum(c.startswith("prior at") for c in captions) == 2
    ids = {img.attrs.get("id") for img in tree.root.find_all("img", **{"class": "cell"})}
    for slider in sliders:
        assert slider.find_all("input")[0].attrs["type"] == "range"
        assert {img.attrs["data-copy"] for img in slider.find_all("img")} <= ids


def test_metric_tables_hold_every_cell_with_sortable_numbers(page: str):
    table = section(Tree(page), "style-grid").find_all("table", **{"class": "sortable"})[0]
    assert [td.all_text() for td in column(table, "id")] == [
        "vgg19-pixel",
        "vgg19-fourier",
        "vgg19-robust-pixel",
        "vgg19-robust-fourier",
        "lost",
    ]
    losses = column(table, "style_loss")
    assert [float(td.attrs["data-v"]) for td in losses[:4]] == STYLE_LOSSES
    assert losses[4].attrs["data-v"] == "" and losses[4].all_text() == "nan"


def test_rf_plot_has_one_polyline_per_backbone_and_a_table(page: str):
    tree = Tree(page)
    for name, backbones in (
        ("layer-robustness", ["resnet50", "resnet50-robust"]),
        ("single-layer-style", ["vgg19"]),
    ):
        svg = section(tree, name).find_all("svg")[0]
        series = svg.find_all("g", **{"class": "series"})
        assert [g.attrs["data-backbone"] for g in series] == backbones
        assert len(svg.find_all("polyline")) == len(backbones)
        assert all(name in svg.all_text() for name in backbones)  # the legend
    robustness = section(tree, "layer-robustness")
    points = robustness.find_all("polyline")[1].attrs["points"].split()
    assert len(points) == 3  # the NaN is not drawn ...
    table = robustness.find_all("table", **{"class": "sortable"})[0]
    assert [td.all_text() for td in column(table, "R")][-1] == "nan"  # ... but is tabled
    ticks = robustness.find_all("g", **{"class": "xticks"})[0].find_all("text")
    assert [t.all_text() for t in ticks] == ["layer1", "layer2", "layer3", "layer4"]


def test_rows_at_several_eps_make_one_line_per_backbone_and_eps():
    rows = [
        {"backbone": "resnet50", "layer": layer, "R": r, "eps": eps}
        for eps in (0.25, 1.0)
        for layer, r in (("layer1", 0.9), ("layer2", math.inf))
    ]
    series = report.r_series(ExperimentRecord(experiment="x", rows=rows))
    assert series == {
        "resnet50 (eps 0.25)": [("layer1", 0.9), ("layer2", None)],
        "resnet50 (eps 1)": [("layer1", 0.9), ("layer2", None)],
    }
    assert report.r_plot(series).count("<polyline") == 2


def test_skips_what_is_missing_and_escapes_what_it_shows(page: str):
    assert "neurons: skipped (no folder in this run)" in page
    assert "Style transfer &lt;grid&gt; &amp; priors" in page
    assert "<grid>" not in page
    assert "Quick run" in page


def test_a_folder_that_is_not_a_run_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError, match="no run.json"):
        report.write_report(tmp_path)
    (tmp_path / "run.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(UserError, match="cannot read"):
        report.write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()
    assert not (tmp_path / "summary").exists()  # refused before anything is written


def test_the_report_reads_each_experiment_once(run_dir: Path, monkeypatch: pytest.MonkeyPatch):
    from paramviz.experiments.report import load

    read, original = [], load.load_experiment
    monkeypatch.setattr(load, "load_experiment", lambda *a: read.append(a[1]) or original(*a))
    report.write_report(run_dir)  # the summary and the page
    assert sorted(read) == sorted(set(read)) and "style-grid" in read


def test_unreadable_experiment_and_escaping_paths_are_skipped(run_dir: Path, tmp_path: Path):
    (run_dir / "single-layer-style" / "metrics.json").write_text("{", encoding="utf-8")
    metrics = json.loads((run_dir / "style-grid" / "metrics.json").read_text())
    outside = tmp_path / "secret.png"
    write_png(outside, 0, (4, 4))
    metrics["cells"][0]["image"] = "../../secret.png"  # leaves the run folder: not embedded
    write_json(run_dir / "style-grid" / "metrics.json", metrics)
    page = report.render_report(run_dir)
    assert "single-layer-style: skipped (unreadable metrics.json" in page
    assert "missing: vgg19-pixel" in page


def test_nice_ticks_cover_the_range_with_round_steps():
    assert report.nice_ticks(0.0, 0.95) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert report.nice_ticks(-3.0, 12.0) == [-5.0, 0.0, 5.0, 10.0, 15.0]
    assert report.nice_ticks(0.0, 0.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_report_subcommand_writes_the_page(run_dir: Path, tmp_path: Path, capsys):
    out = tmp_path / "mail" / "report.html"
    args = build_parser().parse_args(["report", str(run_dir), "-o", str(out)])
    assert args.run(args) == 0
    assert out.is_file() and str(out) in capsys.readouterr().out


def test_paramviz_cli_has_the_report_command(run_dir: Path):
    from paramviz.cli import main

    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").is_file()
    assert main(["report", str(run_dir / "inputs")]) == 2  # not a run: message, exit 2


# ---------------------------------------------------------------- in a real browser


def check_slider(chrome) -> None:
    """The range input (keyboard) and a click on the picture both move the reveal."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    figure = chrome.find_element(By.CSS_SELECTOR, "figure.compare")
    frame = figure.find_element(By.CSS_SELECTOR, ".frame")
    before = figure.find_element(By.CSS_SELECTOR, "img.before")
    handle = figure.find_element(By.CSS_SELECTOR, ".handle")
    slider = figure.find_element(By.CSS_SELECTOR, "input[type=range]")

    def state():
        clip = js(chrome, "return getComputedStyle(arguments[0]).clipPath", before)
        return clip, handle.rect["x"] - frame.rect["x"], float(slider.get_attribute("value"))

    clip, x, value = state()
    assert value == 50 and x == pytest.approx(frame.rect["width"] / 2, abs=2)
    slider.send_keys(Keys.HOME)
    clip_home, x_home, value_home = state()
    assert value_home == 0 and clip_home != clip and x_home == pytest.approx(0, abs=2)
    ActionChains(chrome).move_to_element_with_offset(
        frame, frame.rect["width"] // 4, 0
    ).click().perform()
    clip_click, x_click, value_click = state()
    assert value_click == pytest.approx(75, abs=2) and clip_click not in (clip, clip_home)
    assert x_click == pytest.approx(0.75 * frame.rect["width"], abs=3)


def check_sorting(chrome) -> None:
    """A click on 'style_loss' sorts numerically (text order would differ), again reverses;
    the NaN stays last both ways."""
    from selenium.webdriver.common.by import By

    table = chrome.find_element(By.CSS_SELECTOR, "#exp-style-grid table.sortable")
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    index = [h.text.strip() for h in headers].index("style_loss")

    def values():
        return js(
            chrome,
            "return Array.from(arguments[0].tBodies[0].rows)"
            ".map(r => r.children[arguments[1]].textContent)",
            table,
            index,
        )

    assert values() == ["10", "9", "100", "2.5", "nan"]
    headers[index].click()
    assert values() == ["2.5", "9", "10", "100", "nan"]
    headers[index].click()
    assert values() == ["100", "10", "9", "2.5", "nan"]


def full_page_screenshot(chrome, path: Path) -> None:
    height = js(chrome, "return document.documentElement.scrollHeight")
    chrome.set_window_size(1280, min(height + 120, 12000))
    chrome.save_screenshot(str(path))


def test_report_in_headless_chromium(chrome, page: str, run_dir: Path, artifacts: Path):
    chrome.get((run_dir / "report.html").as_uri())
    wait_for_images(chrome)
    check_images_and_network(chrome)
    check_slider(chrome)
    check_sorting(chrome)
    errors = [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    js(chrome, "window.scrollTo(0, 0)")
    shutil.copy(run_dir / "report.html", artifacts / "report-fixture.html")
    full_page_screenshot(chrome, artifacts / "report-fixture.png")
    with Image.open(artifacts / "report-fixture.png") as shot:
        assert shot.width >= 1000 and shot.height > 900
