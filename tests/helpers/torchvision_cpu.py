"""torchvision imported beside CPU torch.

The torchvision 0.28 wheel is a CUDA build whose import registers fake kernels for its ``nms`` and
``qnms`` operators and fails unless the operators exist: their schemas are defined first (nothing
here calls them), once per process.
"""

from __future__ import annotations

from types import ModuleType

_OPERATORS: list = []  # the operator library must live as long as the process


def import_torchvision() -> ModuleType:
    import torch

    if not _OPERATORS:
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _OPERATORS.append(library)
    import torchvision

    return torchvision
