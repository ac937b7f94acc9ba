"""The models embedded engineers deploy on microcontrollers, written in pure PyTorch (torchvision's compiled
ops do not load beside the pinned torch), for ``tte quantize tte_algo.user_models:FACTORY`` and the model
zoo benchmark (``nox -s zoo``).

Each factory returns an ``nn.Module`` in eval mode with seeded random weights and batch-norm statistics
(no downloads); ``classes`` sets the head and ``width`` scales the channels so that a model's training
step fits a microcontroller. :data:`USER_MODELS` maps a short name to its factory and input shape.
DS-CNN's 10x4 stride-2 stem with asymmetric SAME padding on a 1x49x10 input goes through like the others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "USER_MODELS",
    "build",
    "ds_cnn",
    "lenet5",
    "mnasnet",
    "mobilenetv2",
    "mobilenetv3_small",
    "resnet8",
    "shufflenetv2",
]


def _divisible(value: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of ``divisor``, never below 90 % of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _seeded(model: nn.Module, seed: int) -> nn.Module:
    """Random batch-norm statistics (a fresh BN is the identity, which would hide the folding) and eval mode."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_((torch.rand(m.num_features, generator=gen) - 0.5) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def _cbr(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class LeNet5(nn.Module):
    """LeCun et al. 1998 with ReLU and max pooling: conv5-relu-maxpool x2, flatten, 120-84-classes linears."""

    def __init__(self, classes: int, size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2 if size == 28 else 0),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def lenet5(classes: int = 10, size: int = 32, seed: int = 0) -> nn.Module:
    """LeNet-5 on a 1 x ``size`` x ``size`` grayscale input (28 pads the first conv by 2, 32 does not)."""
    if size not in (28, 32):
        raise ValueError(f"LeNet-5 takes 1x28x28 or 1x32x32 inputs, got size {size}")
    torch.manual_seed(seed)
    return _seeded(LeNet5(classes, size), seed)


class _ResBlock(nn.Module):
    """MLPerf Tiny's ResNet-8 block: two 3x3 conv-BN, the first with the stride, and a 1x1 shortcut on a change."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_cbr(cin, cout, 3, stride, act=nn.ReLU()), _cbr(cout, cout, 3))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else _cbr(cin, cout, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet8(nn.Module):
    """MLPerf Tiny image classification (CIFAR-10): 3x3 stem, stages 16/32/64 (stride 1/2/2), AvgPool2d(8)."""

    def __init__(self, classes: int, width: float) -> None:
        super().__init__()
        c1, c2, c3 = (max(4, round(c * width)) for c in (16, 32, 64))
        self.stem = _cbr(3, c1, 3, act=nn.ReLU())
        self.stages = nn.Sequential(_ResBlock(c1, c1, 1), _ResBlock(c1, c2, 2), _ResBlock(c2, c3, 2))
        self.pool = nn.AvgPool2d(8)
        self.fc = nn.Linear(c3, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def resnet8(classes: int = 10, width: float = 1.0, seed: int = 0) -> nn.Module:
    """ResNet-8 (MLPerf Tiny v0.5 image classification) on a 3x32x32 input; ``width`` scales 16/32/64."""
    torch.manual_seed(seed)
    return _seeded(ResNet8(classes, width), seed)


class _SqueezeExcite(nn.Module):
    """torchvision's SqueezeExcitation with MobileNetV3's hard-sigmoid gate."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return gate * x


class _V3Block(nn.Module):
    """MobileNetV3's inverted residual: 1x1 expand, k x k depthwise, optional SE, 1x1 project (no activation)."""

    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, hs: bool, stride: int) -> None:
        super().__init__()
        act: Callable[[], nn.Module] = nn.Hardswish if hs else nn.ReLU
        layers: list[nn.Module] = [] if exp == cin else [_cbr(cin, exp, 1, act=act())]
        layers.append(_cbr(exp, exp, k, stride, groups=exp, act=act()))
        if se:
            layers.append(_SqueezeExcite(exp, _divisible(exp // 4)))
        layers.append(_cbr(exp, cout, 1))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.residual else y


# torchvision's mobilenet_v3_small rows: kernel, expanded, out, SE, hard-swish, stride
_V3_SMALL = (
    (3, 16, 16, True, False, 2),
    (3, 72, 24, False, False, 2),
    (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2),
    (5, 240, 40, True, True, 1),
    (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1),
    (5, 144, 48, True, True, 1),
    (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1),
    (5, 576, 96, True, True, 1),
)


class MobileNetV3Small(nn.Module):
    """Howard et al. 2019, torchvision's small variant; ``blocks`` keeps the first rows of the table."""

    def __init__(self, classes: int, width: float, blocks: int) -> None:
        super().__init__()
        cin = _divisible(16 * width)
        layers: list[nn.Module] = [_cbr(3, cin, 3, 2, act=nn.Hardswish())]
        for k, exp, out, se, hs, stride in _V3_SMALL[:blocks]:
            cout = _divisible(out * width)
            layers.append(_V3Block(cin, k, _divisible(exp * width), cout, se, hs, stride))
            cin = cout
        last = 6 * cin
        layers.append(_cbr(cin, last, 1, act=nn.Hardswish()))
        self.features = nn.Sequential(*layers)
        hidden = _divisible(1024 * width)
        self.classifier = nn.Sequential(nn.Linear(last, hidden), nn.Hardswish(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


def mobilenetv3_small(classes: int = 10, width: float = 0.25, blocks: int = 11, seed: int = 0) -> nn.Module:
    """MobileNetV3-small (torchvision's definition, dropout left out) on a 3x32x32 input; ``width`` 0.25 and
    the first ``blocks`` of its 11 blocks shrink it to fit a microcontroller's training step."""
    torch.manual_seed(seed)
    return _seeded(MobileNetV3Small(classes, width, blocks), seed)


def _channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """torchvision.models.shufflenetv2.channel_shuffle."""
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    return torch.transpose(x, 1, 2).contiguous().view(n, -1, h, w)


class _ShuffleUnit(nn.Module):
    """torchvision's ShuffleNetV2 InvertedResidual: stride 1 splits the channels in halves, stride 2 runs two
    branches; the halves are concatenated and shuffled."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        half = cout // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(_cbr(cin, cin, 3, stride, groups=cin), _cbr(cin, half, 1, act=nn.ReLU()))
        inner = cin if stride > 1 else half
        self.branch2 = nn.Sequential(
            _cbr(inner, half, 1, act=nn.ReLU()),
            _cbr(half, half, 3, stride, groups=half),
            _cbr(half, half, 1, act=nn.ReLU()),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return _channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """Ma et al. 2018 x0.5 (stages 48/96/192, last conv 1024): 3x3 stride-2 stem, 3x3 stride-2 max pool,
    stages of 4/8/4 units (``repeats`` shortens them), 1x1 conv, global pool, linear."""

    def __init__(self, classes: int, stages: tuple[int, ...], repeats: tuple[int, ...], last: int) -> None:
        super().__init__()
        self.conv1 = _cbr(3, 24, 3, 2, act=nn.ReLU())
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        units: list[nn.Module] = []
        cin = 24
        for cout, n in zip(stages, repeats, strict=True):
            units += [_ShuffleUnit(cin, cout, 2)] + [_ShuffleUnit(cout, cout, 1) for _ in range(n - 1)]
            cin = cout
        self.stages = nn.Sequential(*units)
        self.conv5 = _cbr(cin, last, 1, act=nn.ReLU())
        self.fc = nn.Linear(last, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.stages(self.maxpool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


def shufflenetv2(classes: int = 10, repeats: tuple[int, ...] = (4, 8, 4), last: int = 1024, seed: int = 0) -> nn.Module:
    """ShuffleNetV2 x0.5 (torchvision's shufflenet_v2_x0_5) on a 3x32x32 input; fewer ``repeats`` and a
    smaller ``last`` conv shrink it."""
    torch.manual_seed(seed)
    return _seeded(ShuffleNetV2(classes, (48, 96, 192), repeats, last), seed)


class _InvertedResidual(nn.Module):
    """MobileNetV2 / MnasNet block: 1x1 expand + ReLU(6), k x k depthwise + ReLU(6), 1x1 project, residual."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int, act: Callable[[], nn.Module]) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = [] if expand == 1 else [_cbr(cin, mid, 1, act=act())]
        layers += [_cbr(mid, mid, k, stride, groups=mid, act=act()), _cbr(mid, cout, 1)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.residual else y


class _InvertedNet(nn.Module):
    """Stem, inverted-residual stages (expansion, channels, repeats, stride, kernel), 1x1 conv, pool, linear."""

    def __init__(
        self, classes: int, stem: int, rows: tuple[tuple[int, ...], ...], last: int, act: Callable[[], nn.Module]
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [_cbr(3, stem, 3, 2, act=act())]
        cin = stem
        for t, c, n, s, k in rows:
            for i in range(n):
                layers.append(_InvertedResidual(cin, c, k, s if i == 0 else 1, t, act))
                cin = c
        layers.append(_cbr(cin, last, 1, act=act()))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(last, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean([2, 3]))


_MBV2_ROWS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenetv2(classes: int = 10, width: float = 0.35, depth: int = 7, last: int = 1280, seed: int = 0) -> nn.Module:
    """MobileNetV2 (Sandler et al. 2018, torchvision's mobilenet_v2 at ``width`` 0.35) on a 3x32x32 input;
    ``depth`` keeps the first stages of seven and ``last`` sets the final 1x1 conv."""
    torch.manual_seed(seed)
    rows = tuple((t, _divisible(c * width), n, s, 3) for t, c, n, s in _MBV2_ROWS[:depth])
    return _seeded(_InvertedNet(classes, _divisible(32 * width), rows, last, nn.ReLU6), seed)


# torchvision's MnasNet-B1 stacks after the separable first block: expansion, channels, repeats, stride, kernel
_MNAS_ROWS = (
    (3, 24, 3, 2, 3),
    (3, 40, 3, 2, 5),
    (6, 80, 3, 2, 5),
    (6, 96, 2, 1, 3),
    (6, 192, 4, 2, 5),
    (6, 320, 1, 1, 3),
)


def mnasnet(classes: int = 10, alpha: float = 0.5, depth: int = 6, last: int = 1280, seed: int = 0) -> nn.Module:
    """MnasNet-B1 (Tan et al. 2019, torchvision's mnasnet0_5 with ``alpha`` 0.5) on a 3x32x32 input: 3x3
    stem, a depthwise-separable block, 3x3 and 5x5 inverted-residual stacks; ``depth`` keeps the first
    stacks of six and ``last`` sets the final 1x1 conv."""
    torch.manual_seed(seed)
    stem, sep = _divisible(32 * alpha), _divisible(16 * alpha)
    rows = ((1, sep, 1, 1, 3), *((t, _divisible(c * alpha), n, s, k) for t, c, n, s, k in _MNAS_ROWS[:depth]))
    return _seeded(_InvertedNet(classes, stem, rows, last, nn.ReLU), seed)


class DSCNN(nn.Module):
    """MLPerf Tiny keyword spotting (Zhang et al. 2017, DS-CNN small, the MLPerf reference in PyTorch): a
    10x4 stride-2 stem with TensorFlow's SAME padding on the 49x10 input (4 rows above, 5 below, 1 column
    on either side: ``nn.ZeroPad2d`` then an unpadded conv, which tte folds into one conv), four
    depthwise-separable 3x3 blocks of 64 channels, average pool over the 25x5 map, linear."""

    def __init__(self, classes: int, channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ZeroPad2d((1, 1, 4, 5)),  # left, right, top, bottom
            nn.Conv2d(1, channels, (10, 4), stride=2, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        ]
        for _ in range(4):
            layers += [_cbr(channels, channels, 3, groups=channels, act=nn.ReLU())]
            layers += [_cbr(channels, channels, 1, act=nn.ReLU())]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d((25, 5))
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def ds_cnn(classes: int = 12, channels: int = 64, seed: int = 0) -> nn.Module:
    """DS-CNN (MLPerf Tiny v0.5 keyword spotting) on a 1x49x10 MFCC input (:class:`DSCNN`)."""
    torch.manual_seed(seed)
    return _seeded(DSCNN(classes, channels), seed)


# name: (factory, input shape C x H x W, source architecture)
USER_MODELS: dict[str, tuple[Callable[..., nn.Module], tuple[int, int, int], str]] = {
    "lenet5": (lenet5, (1, 32, 32), "LeNet-5 (LeCun et al. 1998), ReLU + max pooling"),
    "resnet8": (resnet8, (3, 32, 32), "ResNet-8, MLPerf Tiny image classification"),
    "mobilenetv3-small": (mobilenetv3_small, (3, 32, 32), "torchvision mobilenet_v3_small, width 0.25"),
    "shufflenetv2-x0.5": (shufflenetv2, (3, 32, 32), "torchvision shufflenet_v2_x0_5"),
    "mobilenetv2-0.35": (mobilenetv2, (3, 32, 32), "torchvision mobilenet_v2, width 0.35"),
    "mnasnet-0.5": (mnasnet, (3, 32, 32), "torchvision mnasnet0_5"),
    "ds-cnn": (ds_cnn, (1, 49, 10), "DS-CNN small, MLPerf Tiny keyword spotting"),
}


def build(name: str, classes: int = 10, **options: Any) -> nn.Module:
    """The model ``name`` of :data:`USER_MODELS` with ``classes`` outputs."""
    return USER_MODELS[name][0](classes=classes, **options)
