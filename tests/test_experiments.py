"""The experiment runner: every experiment end to end in ``--quick`` mode (run once for the module,
then once more to check that resuming recomputes nothing), the run-folder layout the report
reads, and the pieces with exact answers (R(f) of the identity, the joint-transform objective,
the settings guard, the missing-weights message)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers.browser import (
    check_images_and_network,
    chrome_fixture,  # noqa: F401 (the chrome fixture)
    wait_for_images,
)
from PIL import Image

from paramviz import backbones
from paramviz.cli import main
from paramviz.errors import UserError
from paramviz.experiments import priors, robustness, runner
from paramviz.render import network_features, required_layers

EXPERIMENTS = (
    "style-grid",
    "texture-grid",
    "neurons",
    "content-vs-style-net",
    "layer-robustness",
    "single-layer-style",
)
CELL_KEYS = {
    "id",
    "experiment",
    "group",
    "backbone",
    "prior",
    "optimizer",
    "image",
    "inputs",
    "labels",
    "metrics",
    "seconds",
    "seed",
}


@dataclasses.dataclass
class QuickRun:
    run_dir: Path
    first: subprocess.CompletedProcess
    second: subprocess.CompletedProcess
    mtimes: dict[str, int]


def run_cli(run_dir: Path, home: Path) -> subprocess.CompletedProcess:
    """``paramviz experiment run all --quick`` in a fresh process (its compile cache is global)."""
    argv = [sys.executable, "-m", "paramviz.cli", "experiment", "run", "all", "--quick"]
    argv += ["-o", str(run_dir), "--no-progress"]
    env = {**os.environ, "PARAMVIZ_HOME": str(home)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def file_mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*.*")}


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> QuickRun:
    home = tmp_path_factory.mktemp("paramviz_home")
    run_dir = tmp_path_factory.mktemp("runs") / "quick"
    first = run_cli(run_dir, home)
    mtimes = file_mtimes(run_dir)
    second = run_cli(run_dir, home)
    return QuickRun(run_dir, first, second, mtimes)


def metrics_of(quick: QuickRun, name: str) -> dict:
    return json.loads((quick.run_dir / name / "metrics.json").read_text())


def settings_of(quick: QuickRun, name: str) -> dict:
    return json.loads((quick.run_dir / name / "settings.json").read_text())


def expected_cells(name: str, settings: dict) -> int:
    """The cell count each experiment's settings imply, counted independently of its plan."""
    backbones_ = settings["backbones"]
    if name == "style-grid":
        return len(settings["pairs"]) * len(backbones_) * len(settings["runs"])
    if name == "texture-grid":
        return len(settings["styles"]) * len(backbones_) * len(settings["runs"])
    if name == "neurons":  # plus an adversarial baseline per network with logits and judges
        baselines = sum(
            bool(settings["units"][b].get("logits") and settings["recognition_judges"][b])
            for b in backbones_
        )
        return baselines + sum(
            len(settings["priors"]) * len(settings["units"][b]) for b in backbones_
        )
    if name == "content-vs-style-net":
        return len(settings["pairs"]) * 2 * len(backbones_)
    if name == "layer-robustness":
        return sum(len(settings["layers"][b]) for b in backbones_)
    return sum(len(settings["single_layers"][b]) for b in backbones_)


# ---------------------------------------------------------------------------- the quick suite


def test_quick_suite_writes_run_json(quick):
    run = json.loads((quick.run_dir / "run.json").read_text())
    assert run["experiments"] == list(EXPERIMENTS)
    assert run["weights_set"] == "small" and run["quick"] is True
    assert run["paramviz_version"] and run["started_at"] <= run["finished_at"]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_writes_the_layout_with_finite_metrics(quick, name):
    folder = quick.run_dir / name
    settings = settings_of(quick, name)
    data = metrics_of(quick, name)
    assert data["experiment"] == name and data["title"] and data["question"]
    assert data["complete"] is True and data["seconds"] > 0
    cells = data["cells"]
    assert len(cells) == expected_cells(name, settings) > 0
    assert len({cell["id"] for cell in cells}) == len(cells)
    assert set(data["backbones"]) == set(settings["backbones"])
    for name_, info in data["backbones"].items():
        assert {"arch", "weights", "sha256", "stand_in"} <= set(info)
        assert info["stand_in"] is name_.startswith("textures-")  # quick: untrained stand-ins
    for cell in cells:
        assert CELL_KEYS <= set(cell) and cell["experiment"] == name
        assert json.loads((folder / "cells" / f"{cell['id']}.json").read_text()) == cell
        with Image.open(folder / cell["image"]) as picture:
            assert picture.size[0] >= 32 and picture.mode == "RGB"
        for reference in cell["inputs"].values():
            assert (folder / reference).resolve().is_file()
        shown = [column for column in data["columns"] if column in cell["metrics"]]
        assert shown, f"{cell['id']} has none of the columns {data['columns']}"
        for metric, value in cell["metrics"].items():
            assert value is not None and math.isfinite(value), f"{cell['id']}: {metric}={value}"
    written = {column for cell in cells for column in cell["metrics"]}
    assert set(data["columns"]) <= written


def test_style_cells_use_their_inputs_and_measure_content(quick):
    cells = metrics_of(quick, "style-grid")["cells"]
    for cell in cells:
        content, style = cell["group"].split("+")
        assert cell["inputs"] == {
            "content": f"../inputs/{content}.png",
            "style": f"../inputs/{style}.png",
        }
        assert 0 <= cell["metrics"]["style_distance"] and 0 <= cell["metrics"]["content_distance"]
    used = {cell["prior"] for cell in cells}
    assert used == set(priors.PRIORS)


def test_neuron_sheets_are_labelled_and_logits_are_judged_above_the_adversarial_rate(quick):
    cells = metrics_of(quick, "neurons")["cells"]
    by_group = {g: [c for c in cells if c["group"] == g] for g in ("logits", "adversarial")}
    assert by_group["logits"] and all(len(cell["labels"]) >= 2 for cell in cells)
    baselines = {cell["backbone"]: cell["metrics"] for cell in by_group["adversarial"]}
    for cell in by_group["logits"]:
        values = cell["metrics"]
        assert 0 <= values["top5_independent"] <= 1 and 0 <= values["top5_self"] <= 1
        baseline = baselines[cell["backbone"]]["top5_independent"]
        assert values["top5_above_adversarial"] == pytest.approx(
            values["top5_independent"] - baseline
        )


def test_channel_sheets_show_the_natural_crops_and_the_path_check(quick):
    settings = settings_of(quick, "neurons")
    channels = [c for c in metrics_of(quick, "neurons")["cells"] if c["group"] == "channels"]
    for cell in channels:
        units = len(cell["spec"]["units"])
        assert cell["labels"][1::4] == ["crop 1"] * units and len(cell["labels"]) == 4 * units
        values = cell["metrics"]
        floor, ceiling = values["path_unrelated"], values["path_natural"]
        assert values["path_normalised"] == pytest.approx(
            (values["path_similarity"] - floor) / (ceiling - floor)
        )
    assert settings["crops"]["count"] > 2 * settings["path_top_k"]


def test_layer_robustness_rows_stay_in_the_ball(quick):
    data = metrics_of(quick, "layer-robustness")
    settings = settings_of(quick, "layer-robustness")
    assert len(data["rows"]) == len(data["cells"])
    for row in data["rows"]:
        assert {"backbone", "layer", "R", "eps", "steps"} <= set(row)
        assert row["R"] > 0 and row["eps"] == settings["eps"]
    for cell in data["cells"]:
        assert cell["metrics"]["perturbation_l2"] <= settings["eps"] * (1 + 1e-4)


def test_single_layer_style_reports_the_layer_robustness_value(quick):
    measured = {
        (cell["backbone"], cell["spec"]["layer"]): cell["metrics"]["R"]
        for cell in metrics_of(quick, "layer-robustness")["cells"]
    }
    cells = metrics_of(quick, "single-layer-style")["cells"]
    shared = [cell for cell in cells if (cell["backbone"], cell["spec"]["layer"]) in measured]
    assert shared and len(shared) < len(cells)  # some reused, some measured on the spot
    for cell in shared:
        assert cell["metrics"]["R"] == measured[(cell["backbone"], cell["spec"]["layer"])]


def test_resume_recomputes_nothing(quick):
    for name in EXPERIMENTS:
        assert f"{name}: 0 cells computed" in quick.second.stdout
    after = file_mtimes(quick.run_dir)
    cell_files = [path for path in quick.mtimes if "/cells/" in path]
    assert cell_files and all(after[path] == quick.mtimes[path] for path in cell_files)
    assert all(after[path] == quick.mtimes[path] for path in quick.mtimes if "inputs" in path)


# ------------------------------------------------------------------------------------ errors


def test_missing_imagenet_weights_name_the_fetch_commands(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["experiment", "run", "style-grid", "--weights-set", "imagenet", "-o", str(out)])
    message = capsys.readouterr().err
    assert code == 2
    for name in ("vgg19", "alexnet", "resnet50", "resnet50-robust-l2-eps3"):
        assert f"paramviz weights fetch {name}\n" in message + "\n"
    assert not out.exists()


def test_unknown_experiment_lists_the_known_ones(tmp_path, capsys):
    assert main(["experiment", "run", "style-grit", "-o", str(tmp_path / "run")]) == 2
    message = capsys.readouterr().err
    assert "style-grit" in message and "style-grid" in message and "all" in message


def test_experiment_list_names_every_experiment_and_claim(capsys):
    assert main(["experiment", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in EXPERIMENTS)
    assert "Nakano" in listing and "Engstrom" in listing


def test_changed_settings_are_refused_on_resume(tmp_path):
    path = tmp_path / "style-grid" / "settings.json"
    runner.check_settings(path, {"size": 32, "steps": {"adam": 3}})
    runner.check_settings(path, {"size": 32, "steps": {"adam": 3}})  # same: resumes
    with pytest.raises(UserError, match="other settings.*steps"):
        runner.check_settings(path, {"size": 32, "steps": {"adam": 4}})


def test_a_run_folder_keeps_its_weights_set(tmp_path):
    runner.begin_run(tmp_path, "small", True, ["neurons"])
    record = runner.begin_run(tmp_path, "small", True, ["style-grid"])
    assert record.experiments == ["style-grid", "neurons"]  # merged, in registry order
    with pytest.raises(UserError, match="weights_set='small'"):
        runner.begin_run(tmp_path, "imagenet", True, ["neurons"])


# ------------------------------------------------------------------------------------ pieces


def test_lbfgs_only_runs_with_deterministic_priors():
    runs = priors.prior_optimizer_runs(list(priors.PRIORS), priors.OPTIMIZERS)
    assert ["fourier+decorrelate+transforms", "lbfgs"] not in runs
    assert len(runs) == 2 * len(priors.PRIORS) - 1


def test_cell_ids_are_file_names():
    made = runner.cell_id("a b/c", "x:1", "fourier+decorrelate")
    assert made == "a-b-c__x-1__fourier+decorrelate"


def test_r_of_the_identity_is_eps_over_the_mean_pair_distance():
    """f(x) = x: the best move in the ball is the whole radius (pictures away from 0 and 1)."""
    rng = np.random.default_rng(0)
    images = 0.3 + 0.4 * rng.uniform(size=(5, 8, 8, 3)).astype(np.float32)
    eps = 0.5
    attack = jax.jit(
        lambda x, key: robustness.attack_features(
            lambda y: y, x, key, eps=eps, steps=3, step_size=0.4
        )
    )(images, jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(attack.moved), eps, rtol=1e-4)
    pairs = [np.linalg.norm(images[i] - images[j]) for i in range(5) for j in range(i + 1, 5)]
    expected = eps / np.mean(pairs)
    assert robustness.robustness_ratio(attack) == pytest.approx(expected, rel=1e-4)


def test_joint_content_under_the_identity_equals_plain_content():
    """Appending the content picture and comparing inside the batch gives the same objective as
    comparing with precomputed targets, when the transform moves nothing."""
    net = backbones.init(
        "sequential", jax.random.PRNGKey(0), (16, 16), spec="conv4k3s1p1,relu,conv6k3s1p1,relu"
    )
    rng = np.random.default_rng(1)
    content, style, picture = (rng.uniform(size=(16, 16, 3)).astype(np.float32) for _ in "abc")
    from paramviz import objectives

    style_targets = objectives.style_targets(net, style, ["relu1", "relu2"])
    content_targets = objectives.content_targets(net, content, ["relu2"])
    plain = objectives.normalised_style_transfer(style_targets, content_targets)
    joint = objectives.normalised_style_transfer(style_targets, content_targets, joint=True)
    nets = {"main": net}
    image = picture[None]
    batch = objectives.with_reference(lambda key, x: x, content[None])(jax.random.PRNGKey(0), image)
    plain_value = plain(network_features(nets, required_layers(plain, nets), image, image))
    joint_value = joint(network_features(nets, required_layers(joint, nets), image, batch))
    assert float(plain_value) < 0
    assert float(joint_value) == pytest.approx(float(plain_value), rel=1e-5)


def test_report_of_the_quick_run_loads_in_chromium(quick, chrome, artifacts):
    from paramviz.cli import main

    assert main(["report", str(quick.run_dir)]) == 0
    page = quick.run_dir / "report.html"
    chrome.get(page.as_uri())
    wait_for_images(chrome)
    check_images_and_network(chrome)
    assert not [e for e in chrome.get_log("browser") if e["level"] == "SEVERE"]
    assert chrome.execute_script("return document.images.length") > 0
    shutil.copy(page, artifacts / "report-quick-run.html")


def test_a_calibration_group_is_judged_once_per_run(tmp_path: Path):
    """Experiments of a run share their calibration groups (same pictures, size and seed)."""
    context = runner.CachedRunContext(tmp_path, backbone_set=None, options=None)
    judged = []

    def judge() -> dict[str, dict[str, float]]:
        judged.append(1)
        return {"content": {"style_distance": float(len(judged))}}

    group = ("chelsea", "starry", None, 64, 0)
    first = context.calibration(group, judge)
    assert context.calibration(group, judge) == first and len(judged) == 1
    assert context.calibration((*group[:-1], 1), judge) != first  # another seed: judged again
