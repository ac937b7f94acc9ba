"""Float model zoo: MobileNetV2, ProxylessNAS and MCUNet-style networks built from a block list, and a
small plain CNN. Every network is Conv-BN-ReLU6 as usual, traceable by :mod:`torch.fx`, and ends in
global average pooling, a flatten and a ``classifier`` linear layer.

A block list uses the seed models' description (``../shared/models/README.md``): one
:class:`BlockSpec` per inverted-residual block with its input, middle (expanded) and output channels,
depthwise kernel, stride and whether it has a residual add. A block whose ``mid`` equals ``cin`` and
that is the first block has no first pointwise conv (expand ratio 1), like the seed models' block 0.

Module paths are chosen so that the exported graph's node names read like the seed importer's:
``stem``, ``blocks.3.pw1``, ``blocks.3.dw``, ``blocks.3.pw2``, ``blocks.3.add``, ``classifier``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tte_ir import TteError

__all__ = [
    "MCUNET_5FPS",
    "MCUNET_TINY",
    "PROXYLESS_W03",
    "ZOO",
    "BlockNet",
    "BlockSpec",
    "PlainCNN",
    "build_model",
    "mobilenetv2_blocks",
]


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block: pw1 (cin->mid, skipped when ``mid == cin`` in block 0), depthwise
    ``kernel`` x ``kernel`` at ``stride``, pw2 (mid->cout, linear), and a residual add if ``residual``."""

    cin: int
    mid: int
    cout: int
    kernel: int
    stride: int
    residual: bool


# The seed models' block lists (read from ../shared/models/*.pkl; tests check they still agree).
MCUNET_5FPS = tuple(
    BlockSpec(*row)
    for row in [
        (16, 16, 8, 3, 1, False), (8, 32, 16, 3, 2, False), (16, 48, 16, 3, 1, True), (16, 48, 24, 7, 2, False),
        (24, 120, 24, 3, 1, True), (24, 120, 40, 3, 2, False), (40, 160, 40, 7, 1, True), (40, 160, 48, 5, 1, False),
        (48, 144, 48, 3, 1, True), (48, 192, 48, 3, 1, True), (48, 240, 96, 7, 2, False), (96, 384, 96, 5, 1, True),
        (96, 384, 96, 5, 1, True), (96, 576, 160, 3, 1, False),
    ]
)  # fmt: skip
PROXYLESS_W03 = tuple(
    BlockSpec(*row)
    for row in [
        (16, 16, 8, 3, 1, False), (8, 24, 16, 5, 2, False), (16, 48, 16, 3, 1, True), (16, 48, 16, 7, 2, False),
        (16, 48, 16, 3, 1, True), (16, 48, 16, 5, 1, True), (16, 48, 16, 5, 1, True), (16, 96, 24, 7, 2, False),
        (24, 72, 24, 5, 1, True), (24, 72, 24, 5, 1, True), (24, 72, 24, 5, 1, True), (24, 144, 32, 5, 1, False),
        (32, 96, 32, 5, 1, True), (32, 96, 32, 5, 1, True), (32, 96, 32, 5, 1, True), (32, 192, 64, 7, 2, False),
        (64, 384, 64, 7, 1, True), (64, 192, 64, 7, 1, True), (64, 192, 64, 7, 1, True), (64, 384, 96, 7, 1, False),
    ]
)  # fmt: skip
# A small MCUNet-style network for quick CPU experiments on 32x32 inputs (the accuracy benchmark).
MCUNET_TINY = tuple(
    BlockSpec(*row)
    for row in [
        (16, 16, 8, 3, 1, False), (8, 32, 16, 3, 2, False), (16, 48, 16, 3, 1, True), (16, 64, 24, 5, 2, False),
        (24, 96, 24, 3, 1, True), (24, 96, 32, 3, 1, False), (32, 128, 32, 3, 1, True),
    ]
)  # fmt: skip


def _make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of ``divisor``, never more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def mobilenetv2_blocks(width: float = 1.0) -> tuple[int, tuple[BlockSpec, ...]]:
    """The stem width and block list of MobileNetV2 at width multiplier ``width`` (no 1280-channel
    feature mix, like the seed model: at ``width=0.35`` this is exactly mbv2-w0.35)."""
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    stem = _make_divisible(32 * width)
    blocks = []
    cin = stem
    for expand, channels, repeats, stride in settings:
        cout = _make_divisible(channels * width)
        for i in range(repeats):
            s = stride if i == 0 else 1
            blocks.append(BlockSpec(cin, cin * expand, cout, 3, s, s == 1 and cin == cout))
            cin = cout
    return stem, tuple(blocks)


class ConvBNAct(nn.Module):
    """Conv (no bias) + BatchNorm + optional ReLU6, padding ``(k-1)//2``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """An MBConv block described by a :class:`BlockSpec`."""

    def __init__(self, spec: BlockSpec, first: bool) -> None:
        super().__init__()
        if spec.residual and (spec.stride != 1 or spec.cin != spec.cout):
            raise TteError(f"block {spec}: a residual block needs stride 1 and cin == cout")
        self.residual = spec.residual
        self.pw1 = None if (first and spec.mid == spec.cin) else ConvBNAct(spec.cin, spec.mid, 1)
        self.dw = ConvBNAct(spec.mid, spec.mid, spec.kernel, spec.stride, groups=spec.mid)
        self.pw2 = ConvBNAct(spec.mid, spec.cout, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.pw1 is None else self.pw1(x)
        y = self.pw2(self.dw(y))
        return x + y if self.residual else y


class BlockNet(nn.Module):
    """stem (3x3, stride 2) -> inverted-residual blocks -> global average pool -> flatten -> classifier."""

    def __init__(
        self, blocks: Sequence[BlockSpec], num_classes: int, stem: int | None = None, stem_stride: int = 2
    ) -> None:
        super().__init__()
        if not blocks:
            raise TteError("a block network needs at least one block")
        stem = blocks[0].cin if stem is None else stem
        self.stem = ConvBNAct(3, stem, 3, stem_stride)
        self.blocks = nn.ModuleList(InvertedResidual(spec, i == 0) for i, spec in enumerate(blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(blocks[-1].cout, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.classifier(self.flatten(self.pool(x)))


class PlainCNN(nn.Module):
    """A small plain CNN: three Conv-BN-ReLU layers (the last two at stride 2), pool, linear."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            ConvBNAct(3, width, 3, 1), ConvBNAct(width, 2 * width, 3, 2), ConvBNAct(2 * width, 4 * width, 3, 2)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


def _mbv2(num_classes: int, width: float) -> nn.Module:
    stem, blocks = mobilenetv2_blocks(width)
    return BlockNet(blocks, num_classes, stem)


ZOO: dict[str, Callable[[int, float], nn.Module]] = {
    "mbv2": _mbv2,
    "proxyless-w0.3": lambda n, w: BlockNet(PROXYLESS_W03, n),
    "mcunet-5fps": lambda n, w: BlockNet(MCUNET_5FPS, n),
    "mcunet-tiny": lambda n, w: BlockNet(MCUNET_TINY, n, stem_stride=1),
    "plain-cnn": lambda n, w: PlainCNN(n),
}


def build_model(name: str, num_classes: int, width: float = 0.35, seed: int = 0) -> nn.Module:
    """A freshly initialised zoo model (``width`` applies to ``mbv2``), deterministic under ``seed``."""
    if name not in ZOO:
        raise TteError(f"unknown zoo model '{name}' (available: {', '.join(ZOO)})")
    if num_classes < 1:
        raise TteError(f"a model needs at least one class, got {num_classes}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ZOO[name](num_classes, width)
