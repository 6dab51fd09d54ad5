"""Checkpoints made by MadryLab's own ``robustness`` library convert exactly.

The checkpoint comes from the library itself: its ``AttackerModel`` around its own ImageNet
ResNet-18, trained for one adversarial epoch by its ``train.train_model`` on a few random
64-pixel images, which saves ``checkpoint.pt.latest`` with its own save code (``torch.save`` of
``{'model': DataParallel(AttackerModel).state_dict(), 'optimizer', 'schedule', 'epoch', ...}``
with ``pickle_module=dill``). paramviz converts that file without unpickling any code, and every
tap must equal what the library's own forward pass computes (forward hooks on its modules,
through its ``InputNormalize``).

Patched, and only inside this module's fixture, because the library predates CPU-only use:

* ``torchvision.models.utils`` (removed from torchvision) is given back as a module holding only
  ``load_state_dict_from_url = torch.hub.load_state_dict_from_url``, which its model files import;
* ``torch.nn.Module.cuda`` and ``torch.Tensor.cuda`` return ``self``: the library calls
  ``.cuda()`` unconditionally (the DataParallel model, every batch, the attacker's input).

The two torchvision operator schemas its CUDA wheel needs are defined by ``conftest``.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch_reference

from paramviz import backbones
from paramviz.weights.checkpoint import read_checkpoint
from paramviz.weights.convert import convert

IMAGE_SIDE = 64


@pytest.fixture(scope="module")
def robustness(torchvision_on_cpu):
    """The ``robustness`` package, importable and runnable on this CPU-only torch."""
    import torch

    pytest.importorskip("cox", reason="robustness needs cox (pip install -e '.[test]')")
    patch = pytest.MonkeyPatch()
    shim = types.ModuleType("torchvision.models.utils")
    shim.load_state_dict_from_url = torch.hub.load_state_dict_from_url
    patch.setitem(sys.modules, "torchvision.models.utils", shim)
    patch.setattr(torch.nn.Module, "cuda", lambda self, *args, **kwargs: self)
    patch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)
    try:
        import robustness
        from robustness import attacker, datasets, train  # noqa: F401  (the pieces used)
    except ImportError as err:
        patch.undo()
        pytest.skip(f"robustness is not installed (pip install -e '.[test]'): {err}")
    yield robustness
    patch.undo()


@pytest.fixture(scope="module")
def trained(robustness, tmp_path_factory):
    """``(AttackerModel, checkpoint path)`` after one epoch of the library's adversarial
    training."""
    import torch
    from cox.utils import Parameters
    from robustness import attacker, datasets, train

    torch.manual_seed(0)
    out_dir = tmp_path_factory.mktemp("robustness-run")
    dataset = datasets.ImageNet(str(out_dir))
    model = attacker.AttackerModel(dataset.get_model("resnet18", False), dataset)
    images = torch.rand(8, 3, IMAGE_SIDE, IMAGE_SIDE)
    batches = [(images, torch.randint(0, 1000, (8,)))]
    args = Parameters(
        {
            "out_dir": str(out_dir),
            "epochs": 1,
            "lr": 0.01,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "step_lr": None,
            "step_lr_gamma": 0.1,
            "lr_interpolation": "step",
            "custom_lr_multiplier": None,
            "log_iters": 1,
            "save_ckpt_iters": -1,
            "mixed_precision": 0,
            "adv_train": 1,
            "adv_eval": 0,
            "constraint": "2",
            "eps": 0.5,
            "attack_lr": 0.25,
            "attack_steps": 1,
            "use_best": True,
            "random_restarts": 0,
            "custom_eps_multiplier": None,
            "eps_fadein_epochs": 0,
        }
    )
    trained_model = train.train_model(args, model, (batches, batches))
    return trained_model.module.eval(), out_dir / "checkpoint.pt.latest"


def test_the_library_checkpoint_is_read_without_unpickling_code(trained):
    _, path = trained
    checkpoint = read_checkpoint(path)  # weights_only: no --trust-pickle needed
    assert checkpoint.source_format == "robustness"
    convention = checkpoint.input_convention
    assert convention.clamp is True
    np.testing.assert_allclose(convention.mean, (0.485, 0.456, 0.406), rtol=1e-6)
    np.testing.assert_allclose(convention.std, (0.229, 0.224, 0.225), rtol=1e-6)
    assert not any(key.startswith(("attacker.", "normalizer.")) for key in checkpoint.state_dict)


def test_every_tap_equals_the_library_forward(trained, tmp_path):
    import torch

    model, path = trained
    net = backbones.load(convert(path, tmp_path / "robust.safetensors"))
    assert net.arch == "resnet18"
    images = np.random.default_rng(1).uniform(-0.1, 1.1, (2, IMAGE_SIDE, IMAGE_SIDE, 3))
    images = images.astype(np.float32)  # outside [0, 1] too: the library clamps first
    captured: dict[str, torch.Tensor] = {}
    modules = torch_reference.tap_modules(model.model, "resnet18")
    handles = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach().clone())
        )
        for name, module in modules.items()
    ]
    try:
        with torch.no_grad():
            logits, _ = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    finally:
        for handle in handles:
            handle.remove()
    theirs = {name: torch_reference._to_nhwc(out) for name, out in captured.items()}
    assert set(theirs) == set(net.layer_names)  # every tap compared
    ours = net(images, list(theirs))
    errors = torch_reference.relative_errors(ours, theirs)
    assert max(errors.values()) < 1e-5, errors
    np.testing.assert_allclose(np.asarray(ours["logits"]), logits.numpy(), rtol=1e-4, atol=1e-4)
