"""The ``real`` weights set's plan, on quick stand-ins: which networks it compares, who judges
them (never their own pair), and the cells each experiment plans for it."""

from __future__ import annotations

import pytest

from paramviz.errors import UserError
from paramviz.experiments import backbone_sets, judges
from paramviz.experiments.registry import RunOptions, experiments
from paramviz.experiments.runner import CachedRunContext

TRUNK, TRUNK_TWIN = "vgg19-normalised-conv3_1", "vgg19-trunk-twin"
LITE0, LITE0_TWIN = "efficientnet-lite0", "efficientnet-lite0-twin2"
OUTSIDE = ("efficientnet-lite1", "efficientnet-lite2")


@pytest.fixture(scope="module")
def real():
    return backbone_sets.resolve("real", quick=True)


@pytest.fixture(scope="module")
def context(real, tmp_path_factory):
    return CachedRunContext(tmp_path_factory.mktemp("real"), real, RunOptions())


def test_the_real_set_pairs_each_network_with_its_twin_and_judges_from_outside(real):
    pairs = {(m.name, m.family, m.training) for m in real.members}
    assert pairs == {
        (TRUNK, "vgg19-trunk", "standard"),
        (TRUNK_TWIN, "vgg19-trunk", "robust"),
        (LITE0, "efficientnet-lite0", "standard"),
        (LITE0_TWIN, "efficientnet-lite0", "robust"),
    }
    assert tuple(m.name for m in real.outside_judges) == OUTSIDE
    assert real.names == (TRUNK, TRUNK_TWIN, LITE0, LITE0_TWIN)  # judges are not compared
    assert real.member("efficientnet-lite2").arch == "efficientnet_lite2"
    assert all(m.stand_in for m in real.members + real.outside_judges)


def test_no_judge_scores_its_own_pair(real):
    panel = {judge.member.name: judge for judge in judges.network_judges(real)}
    assert list(panel) == [TRUNK, *OUTSIDE]
    allowed = {
        m.name: sorted(name for name, j in panel.items() if not j.excluded_for(m))
        for m in real.members
    }
    assert allowed == {
        TRUNK: list(OUTSIDE),
        TRUNK_TWIN: list(OUTSIDE),  # the twin is distilled from the trunk
        LITE0: [*OUTSIDE, TRUNK],
        LITE0_TWIN: [*OUTSIDE, TRUNK],
    }


def test_class_pictures_are_recognised_by_lite1_and_lite2(real):
    named = {
        m.name: [j.name for j in backbone_sets.recognition_judges(real, m)] for m in real.members
    }
    assert named == {TRUNK: [], TRUNK_TWIN: [], LITE0: list(OUTSIDE), LITE0_TWIN: list(OUTSIDE)}


def test_the_neurons_plan_puts_each_adversarial_baseline_before_its_pictures(context):
    neurons = experiments()["neurons"]
    settings = neurons.settings(context)
    cells = neurons.plan(settings)
    baselines = [c.backbone for c in cells if c.group == "adversarial"]
    assert baselines == [LITE0, LITE0_TWIN]
    assert [c.group for c in cells[:2]] == ["adversarial", "adversarial"]
    logits = {c.backbone for c in cells if c.group == "logits"}
    channels = {c.backbone for c in cells if c.group == "channels"}
    assert logits == {LITE0, LITE0_TWIN} and channels == set(context.backbone_set.names)
    assert settings["recognition_judges"][LITE0] == list(OUTSIDE)


def test_the_real_grids_keep_to_the_headline_routes_and_end_with_unlabelled_sheets(context):
    grid = experiments()["texture-grid"]
    settings = grid.settings(context)
    assert {prior for prior, _ in settings["runs"]} == {
        "pixel",
        "fourier+decorrelate+transforms",
        "pixel+smooth-tensor",
    }
    cells = grid.plan(settings)
    sheets = [c for c in cells if c.group == "sheet"]
    assert len(sheets) == len(settings["styles"]) and cells[-1].group == "sheet"


def test_content_vs_style_fixes_lite0_and_its_twin(context):
    from paramviz.experiments.catalog.content_vs_style_net import fixed_networks

    assert fixed_networks(context.backbone_set) == (LITE0, LITE0_TWIN)


def test_a_missing_twin_names_the_command_that_makes_it(monkeypatch, tmp_path):
    from paramviz.experiments.train import twin
    from paramviz.weights import local

    trunk = tmp_path / "trunk.safetensors"
    trunk.touch()
    monkeypatch.setattr(local, "real_vgg_trunk", lambda: trunk)
    monkeypatch.setattr(backbone_sets, "real_vgg_trunk", lambda: trunk)
    monkeypatch.setattr(twin, "twin_path", lambda name: tmp_path / f"{name}.safetensors")
    with pytest.raises(UserError) as raised:
        backbone_sets.resolve("real")
    assert str(raised.value).splitlines()[1:] == [
        f"  paramviz train-twin --weights {TRUNK} --eps 1.0 --steps 270 -o {TRUNK_TWIN}",
        f"  paramviz train-twin --weights efficientnet-lite0 --steps 840 -o {LITE0_TWIN}",
    ]


def test_without_the_trunk_the_real_set_says_where_it_should_lie(monkeypatch):
    monkeypatch.setattr(backbone_sets, "real_vgg_trunk", lambda: None)
    with pytest.raises(UserError, match="the real weights set needs the VGG-19 trunk"):
        backbone_sets.resolve("real")


@pytest.mark.parametrize("name", ["single-layer-style", "content-vs-style-net"])
def test_the_real_style_experiments_end_with_unlabelled_sheets(context, name):
    experiment = experiments()[name]
    cells = experiment.plan(experiment.settings(context))
    sheets = [c for c in cells if c.group == "sheet"]
    pairs = {f"{c.spec['content']}+{c.spec['style']}" for c in cells if c.group != "sheet"}
    assert sheets and {c.spec["group"] for c in sheets} == pairs
    assert len({c.id for c in cells}) == len(cells)
