"""One style objective: ``paramviz style`` and a style-grid cell hand render the same function
(same structure, same arrays, same value), and SWAG's activation smoothing as an option of it."""

from __future__ import annotations

import json
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramviz import backbones, objectives, render
from paramviz.cli import main
from paramviz.errors import UserError
from paramviz.experiments import priors, style_job
from paramviz.io import read_image, save_png

SPEC = "conv8k3s1p1,relu,maxpool2,conv16k3s1p1,relu,maxpool2,conv16k3s1p1,relu"
SIZE = 32


@pytest.fixture(scope="module")
def net() -> backbones.Backbone:
    return backbones.init("sequential", jax.random.PRNGKey(1), (SIZE, SIZE), spec=SPEC)


@pytest.fixture(scope="module")
def files(tmp_path_factory, net) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("style")
    rng = np.random.default_rng(0)
    stripes = np.tile((np.arange(SIZE) % 8 < 4)[None, :, None], (SIZE, 1, 3)).astype(np.float32)
    return {
        "weights": backbones.save(folder / "net.safetensors", net),
        "content": save_png(folder / "content.png", rng.uniform(size=(SIZE, SIZE, 3))),
        "style": save_png(folder / "style.png", 0.2 + 0.6 * stripes),
    }


class Captured(Exception):
    """Raised by the stand-in render once it has seen what it was asked to optimise."""

    def __init__(self, objective, param, transforms):
        self.objective, self.param, self.transforms = objective, param, transforms


def capture_render(monkeypatch) -> None:
    def fake(objective, param, backbone, *, transforms=None, **_):
        raise Captured(objective, param, transforms)

    monkeypatch.setattr(render, "render", fake)


CLI_FLAGS = {
    "pixel": ["--param", "pixel", "--no-decorrelate", "--transforms", "none"],
    "fourier+decorrelate+mild": ["--param", "fourier", "--transforms", "mild"],
    "pixel+smooth-tensor": [
        *("--param", "pixel", "--no-decorrelate", "--transforms", "none"),
        *("--smooth-activations", "tensor"),
    ],
    "pixel+smooth-channel": [
        *("--param", "pixel", "--no-decorrelate", "--transforms", "none"),
        *("--smooth-activations", "channel"),
    ],
}


def cli_objective(monkeypatch, files, tmp_path, prior: str) -> Captured:
    capture_render(monkeypatch)
    argv = ["style", "--content", files["content"], "--style", files["style"]]
    argv += ["--weights", files["weights"], "--size", SIZE, "--steps", 1, *CLI_FLAGS[prior]]
    with pytest.raises(Captured) as caught:
        main([str(a) for a in [*argv, "-o", tmp_path / "out.png"]])
    return caught.value


def grid_objective(monkeypatch, files, net, prior: str) -> Captured:
    capture_render(monkeypatch)
    style_layers, content_layers = backbones.style_preset(net)
    settings = {
        "size": SIZE,
        "pooling": "avg",
        "layers": {"net": {"style": style_layers, "content": content_layers}},
        "priors": priors.prior_settings([prior]),
        "init": "content",
        "steps": {"adam": 1},
        "learning_rate": 0.05,
        "style_weight": 1.0,
        "content_weight": 1.0,
        "style_loss": "l1",
    }
    context = types.SimpleNamespace(
        backbone=lambda name, pooling=None: net,
        picture=lambda name, size: read_image(files[name], size),
        options=types.SimpleNamespace(progress=False),
    )
    job = style_job.StyleCell("net", "style", prior, "adam", 0, content_picture="content")
    with pytest.raises(Captured) as caught:
        style_job.run_style_job(context, settings, job)
    return caught.value


def structure(objective: objectives.Objective):
    """What render compiles by: the summands' tree and their non-array leaves; and the arrays."""
    leaves, treedef = jax.tree.flatten(tuple(term.fn for term in objective.summands()))
    arrays = [leaf for leaf in leaves if isinstance(leaf, np.ndarray | np.generic | jax.Array)]
    static = [leaf for leaf in leaves if not isinstance(leaf, np.ndarray | np.generic | jax.Array)]
    return treedef, static, arrays


@pytest.mark.parametrize("prior", list(CLI_FLAGS))
def test_the_cli_and_a_style_grid_cell_optimise_the_same_objective(
    monkeypatch, files, net, tmp_path, prior
):
    cli = cli_objective(monkeypatch, files, tmp_path, prior)
    grid = grid_objective(monkeypatch, files, net, prior)
    (tree_a, static_a, arrays_a), (tree_b, static_b, arrays_b) = map(
        structure, (cli.objective, grid.objective)
    )
    assert tree_a == tree_b and static_a == static_b
    assert len(arrays_a) == len(arrays_b)
    for a, b in zip(arrays_a, arrays_b, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    np.testing.assert_allclose(
        cli.param.to_image(cli.param.params), grid.param.to_image(grid.param.params)
    )
    # the same value on the same transformed picture
    key, picture = jax.random.PRNGKey(3), cli.param.to_image(cli.param.params) * 0.9 + 0.05
    nets = {"main": net}
    values = []
    for captured in (cli, grid):
        batch = render.resolve_transforms(captured.transforms)(key, picture)
        layers = render.required_layers(captured.objective, nets)
        values.append(
            float(captured.objective(render.network_features(nets, layers, picture, batch)))
        )
    assert values[0] == pytest.approx(values[1], rel=1e-6) and values[0] < 0


def test_under_transforms_the_cli_compares_content_inside_the_batch(
    monkeypatch, files, net, tmp_path
):
    """The content picture rides in the batch under the same draw: at the content start the
    content term is 0 whatever the transform does (and shapes never disagree)."""
    captured = cli_objective(monkeypatch, files, tmp_path, "fourier+decorrelate+mild")
    picture = captured.param.to_image(captured.param.params)
    nets = {"main": net}
    layers = render.required_layers(captured.objective, nets)
    for seed in range(3):
        batch = captured.transforms(jax.random.PRNGKey(seed), picture)
        assert batch.shape[0] == 2
        features = render.network_features(nets, layers, picture, batch)
        terms = {t.name: float(t(features)) for t in captured.objective.summands()}
        assert terms["content"] == pytest.approx(0.0, abs=1e-6) and terms["style"] < 0


# ------------------------------------------------------------------------------------- SWAG


ACTS = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 6, 7)) * 3, jnp.float32)


def test_smoothing_turns_a_layer_into_distributions():
    channel = objectives.smooth(ACTS, "channel")
    tensor = objectives.smooth(ACTS, "tensor")
    np.testing.assert_allclose(np.sum(channel, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.sum(tensor, axis=(1, 2, 3)), 1.0, rtol=1e-5)
    assert np.all(np.asarray(channel) > 0) and np.all(np.asarray(tensor) > 0)
    assert objectives.smooth(ACTS, "none") is not None
    np.testing.assert_array_equal(objectives.smooth(ACTS, "none"), ACTS)
    with pytest.raises(UserError, match="smoothing"):
        objectives.smooth(ACTS, "gaussian")


@pytest.mark.parametrize("mode", ["channel", "tensor"])
def test_the_smoothed_style_loss_ignores_a_shift_the_plain_gram_does_not(mode):
    """Softmax is shift-invariant: brightening every activation by the same amount changes the
    plain Gram matrices but not the smoothed ones."""
    target = {"acts": jnp.mean(objectives.gram(objectives.smooth(ACTS[:1] * 0.5, mode)), axis=0)}
    smoothed = objectives.style(target, smoothing=mode)
    plain = objectives.style({"acts": jnp.mean(objectives.gram(ACTS[:1] * 0.5), axis=0)})

    def value(objective, acts):
        return float(objective({"main": {"acts": acts}}))

    shifted = ACTS[:1] + 2.0
    assert value(smoothed, shifted) == pytest.approx(value(smoothed, ACTS[:1]), rel=1e-5)
    assert value(plain, shifted) != pytest.approx(value(plain, ACTS[:1]), rel=1e-2)


@pytest.mark.parametrize("mode", ["channel", "tensor"])
def test_texture_synthesis_with_smoothing_matches_the_smoothed_statistics(net, files, mode):
    style_image = read_image(files["style"], SIZE)
    layers = backbones.style_preset(net)[0]
    objective = objectives.normalised_style_transfer(
        objectives.style_targets(net, style_image, layers, mode), {}, smoothing=mode
    )
    from paramviz import param

    result = render.render(
        objective,
        param.pixel(SIZE, key=jax.random.PRNGKey(0)),
        net,
        steps=40,
        learning_rate=0.1,
        progress=False,
    )
    assert result.losses[-1] < 0.5 * result.losses[0]


def test_the_cli_records_the_smoothing_it_used(files, tmp_path, capsys):
    out = tmp_path / "swag.png"
    argv = ["texture", "--style", files["style"], "--weights", files["weights"], "--size", SIZE]
    argv += ["--steps", 3, "--smooth-activations", "channel", "--quiet", "-o", out]
    assert main([str(a) for a in argv]) == 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert "channel" in json.dumps(sidecar)
