"""PyTorch reference networks with torchvision's parameter names (torchvision itself unused).

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


class VGG(nn.Module):
    """torchvision.models.VGG (non-inplace ReLUs so hooks see the pre-ReLU values)."""

    def __init__(self, depth: str, batch_norm: bool, num_classes: int, pooling: str = "max"):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for count, out in zip(VGG_CONVS[depth], (64, 128, 256, 512, 512), strict=True):
            for _ in range(count):
                layers.append(nn.Conv2d(channels, out, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU())
                channels = out
            layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(),
            nn.Linear(4096, num_classes),
        )  # fmt: skip

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class AlexNet(nn.Module):
    """torchvision.models.AlexNet (64-192-384-256-256)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        )  # fmt: skip
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(),
            nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )  # fmt: skip

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _conv(cin, cout, kernel, stride=1):
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision v1.5: the stride is on the 3×3 conv."""

    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, planes, 1), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv(planes, planes, 3, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = _conv(planes, planes * 4, 1), nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.ResNet."""

    def __init__(self, block, blocks_per_stage, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for number, (count, planes) in enumerate(
            zip(blocks_per_stage, (64, 128, 256, 512), strict=True), start=1
        ):
            stride = 1 if number == 1 else 2
            blocks = []
            for index in range(count):
                s = stride if index == 0 else 1
                downsample = None
                if s != 1 or channels != planes * block.expansion:
                    downsample = nn.Sequential(
                        _conv(channels, planes * block.expansion, 1, s),
                        nn.BatchNorm2d(planes * block.expansion),
                    )
                blocks.append(block(channels, planes, s, downsample))
                channels = planes * block.expansion
            setattr(self, f"layer{number}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


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
    if arch in ("vgg16", "vgg19", "vgg16_bn"):
        depth = arch.removesuffix("_bn")
        model = VGG(depth, arch.endswith("_bn"), num_classes, options.get("pooling", "max"))
    elif arch == "alexnet":
        model = AlexNet(num_classes)
    elif arch == "resnet18":
        model = ResNet(BasicBlock, (2, 2, 2, 2), num_classes)
    elif arch == "resnet50":
        model = ResNet(Bottleneck, (3, 4, 6, 3), num_classes)
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
