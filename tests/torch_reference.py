"""PyTorch reference networks: torchvision's own models (VGG, AlexNet, ResNet), and the two
networks torchvision does not have (the normalised VGG-19 trunk, a plain sequential CNN).

``build(arch, **options)`` returns a module with random weights and non-trivial batch-norm
statistics; ``taps(model, arch, images)`` runs it and returns every paramviz tap, keyed by the
paramviz layer name, as NHWC (or (N, C)) numpy arrays, captured with forward hooks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

VGG_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


TORCHVISION = ("vgg16", "vgg19", "vgg16_bn", "alexnet", "resnet18", "resnet50")


def torchvision_model(arch: str, num_classes: int, pooling: str = "max") -> nn.Module:
    """torchvision's ``arch``, its ReLUs made out-of-place so that hooks see every module's own
    output; ``pooling="avg"``: a VGG's 2x2 max pools as average pools (Gatys et al.)."""
    from helpers.torchvision_cpu import import_torchvision

    model = getattr(import_torchvision().models, arch)(weights=None, num_classes=num_classes)
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    if pooling == "avg":
        for index, layer in enumerate(model.features):
            if isinstance(layer, nn.MaxPool2d):
                model.features[index] = nn.AvgPool2d(2, 2)
    return model


def normalised_vgg19() -> nn.Sequential:
    """The AdaIN/WCT ``vgg_normalised`` layout (53 modules, ends at relu5_4)."""
    layers: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    channels = 3
    for block, (count, out) in enumerate(
        zip(VGG_CONVS["vgg19"], (64, 128, 256, 512, 512), strict=True), start=1
    ):
        for _ in range(count):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, out, 3), nn.ReLU()]
            channels = out
        if block < 5:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
    return nn.Sequential(*layers)


def sequential(spec: str) -> nn.Sequential:
    """A plain ``nn.Sequential`` for a paramviz spec string (channels inferred lazily)."""
    from paramviz.backbones import base
    from paramviz.backbones.sequential import parse_spec

    layers: list[nn.Module] = []
    for step in parse_spec(spec):
        if isinstance(step, base.Conv):
            layers.append(nn.LazyConv2d(step.features, step.kernel, step.stride, step.padding))
        elif isinstance(step, base.BatchNorm):
            layers.append(nn.LazyBatchNorm2d())
        elif isinstance(step, base.ReLU):
            layers.append(nn.ReLU())
        elif isinstance(step, base.MaxPool):
            layers.append(nn.MaxPool2d(step.window, step.stride, step.padding))
        elif isinstance(step, base.AvgPool):
            layers.append(nn.AvgPool2d(step.window, step.stride, step.padding))
        elif isinstance(step, base.Flatten):
            layers.append(nn.Flatten())
        elif isinstance(step, base.Dense):
            layers.append(nn.LazyLinear(step.features))
    return nn.Sequential(*layers)


def build(arch: str, seed: int = 0, input_size: tuple[int, int] = (32, 32), **options) -> nn.Module:
    """Reference model for ``arch`` with random weights and batch-norm statistics, eval mode."""
    torch.manual_seed(seed)
    num_classes = options.get("num_classes", 1000)
    if arch in TORCHVISION:
        model = torchvision_model(arch, num_classes, options.get("pooling", "max"))
    elif arch == "vgg19_normalised":
        model = normalised_vgg19()
    elif arch == "sequential":
        model = sequential(options["spec"])
        model(torch.zeros(1, 3, *input_size))  # materialise lazy layers
    else:
        raise ValueError(arch)
    randomise(model)
    if arch == "vgg19_normalised":
        set_caffe_preprocess(model[0])
    return model.eval()


@torch.no_grad()
def randomise(model: nn.Module) -> None:
    """He-scaled weights (activations stay O(1) through depth) and random batch-norm statistics."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                module.bias.normal_(0.0, 0.1)
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_(0.0, 0.1)
            module.running_mean.normal_(0.0, 0.2)
            module.running_var.uniform_(0.5, 2.0)


@torch.no_grad()
def set_caffe_preprocess(conv: nn.Conv2d) -> None:
    """The normalised VGG's fixed 1×1 conv: RGB in [0, 1] → BGR × 255 − Caffe mean."""
    conv.weight.zero_()
    for out_channel, in_channel in enumerate((2, 1, 0)):
        conv.weight[out_channel, in_channel] = 255.0
    conv.bias.copy_(-torch.tensor(CAFFE_MEAN_BGR))


HEAD_TAPS = ("fc6", "relu6", "fc7", "relu7", "logits")


def tap_modules(model: nn.Module, arch: str) -> dict[str, nn.Module]:
    """paramviz tap name → the PyTorch module whose output it is."""
    if arch in ("vgg16", "vgg19", "vgg16_bn", "alexnet"):
        vgg = arch != "alexnet"
        head = dict(zip(HEAD_TAPS, (0, 1, 3, 4, 6) if vgg else (1, 2, 4, 5, 6), strict=True))
        named = _conv_stack_names(model.features, blocks=vgg)
        return {**named, "avgpool": model.avgpool, **_indexed(model.classifier, **head)}
    if arch in ("resnet18", "resnet50"):
        named = {name: getattr(model, name) for name in ("conv1", "bn1", "relu", "maxpool")}
        for number in range(1, 5):
            stage = getattr(model, f"layer{number}")
            named.update({f"layer{number}.{i}": block for i, block in enumerate(stage)})
            named[f"layer{number}"] = stage
        named.update(avgpool=model.avgpool, logits=model.fc)
        return named
    if arch == "vgg19_normalised":
        return {"preprocess": model[0], **_conv_stack_names(model[1:], blocks=True)}
    if arch == "sequential":
        return _sequential_names(model)
    raise ValueError(arch)


def _indexed(sequential: nn.Sequential, **indices: int) -> dict[str, nn.Module]:
    return {name: sequential[index] for name, index in indices.items()}


def _conv_stack_names(layers: nn.Sequential, blocks: bool) -> dict[str, nn.Module]:
    """VGG (``blocks``): conv{block}_{i}, bn{block}_{i}, relu{block}_{i}, pool{block}, padding
    modules skipped; AlexNet: conv{i}, relu{i}, pool{i} (numbered by the conv before them)."""
    named, block, conv = {}, 1, 0
    for layer in layers:
        conv += isinstance(layer, nn.Conv2d)
        number = f"{block}_{conv}" if blocks else str(conv)
        kind = {nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.ReLU: "relu"}.get(type(layer))
        if kind is not None:
            named[f"{kind}{number}"] = layer
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            named[f"pool{block if blocks else conv}"] = layer
            block, conv = (block + 1, 0) if blocks else (block, conv)
    return named


def _sequential_names(model: nn.Sequential) -> dict[str, nn.Module]:
    kinds = {
        nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.ReLU: "relu",
        nn.MaxPool2d: "pool", nn.AvgPool2d: "pool", nn.Flatten: "flatten", nn.Linear: "fc",
    }  # fmt: skip
    counts: dict[str, int] = {}
    named = {}
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for layer in model:
        kind = kinds[type(layer)]
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind}{counts[kind]}"
        if kind == "flatten" and counts[kind] == 1:
            name = "flatten"
        if linears and layer is linears[-1]:
            name = "logits"
        named[name] = layer
    return named


@torch.no_grad()
def taps(model: nn.Module, arch: str, images: np.ndarray) -> dict[str, np.ndarray]:
    """Every tap's output for NHWC ``images``, as NHWC (spatial) or (N, C) float32 arrays."""
    captured: dict[str, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach().clone())
        )
        for name, module in tap_modules(model, arch).items()
    ]
    try:
        model(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))))
    finally:
        for handle in handles:
            handle.remove()
    return {name: _to_nhwc(out) for name, out in captured.items()}


def _to_nhwc(tensor: torch.Tensor) -> np.ndarray:
    array = tensor.float().numpy()
    return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


def state_dict_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """``state_dict`` as numpy arrays (what the converter consumes)."""
    return {key: value.detach().cpu().numpy() for key, value in model.state_dict().items()}


def relative_errors(ours: dict, theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """Per layer: max |ours − theirs| / max |theirs| (the parity tests' yardstick)."""
    return {
        name: float(np.abs(np.asarray(ours[name]) - ref).max() / np.abs(ref).max())
        for name, ref in theirs.items()
    }
