"""The float form of a network between import and quantization: BN already folded, activations
attached to their producers, only the ops the IR has (:class:`tte_ir.Op`: conv2d, add, global
average pool, reshape as flatten, linear, lut activations, the channel-wise mul, max and average pooling,
channel concat, split and shuffle). :class:`FloatNet` runs it in float32 for calibration and for the fp32 training baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tte_ir import Op
from tte_ir.ops import as_padding, as_pair
from tte_ir.reference import pool_counts

__all__ = ["ACTIVATIONS", "FloatGraph", "FloatNet", "FloatOp", "channel_range", "channel_shuffle"]

ACTIVATIONS = (None, "relu", "relu6")
INPUT = "input"


@dataclass
class FloatOp:
    """One float op. ``kind`` is the IR op it becomes (:class:`tte_ir.Op`: ``CONV2D``, ``ADD``,
    ``GLOBAL_AVG_POOL``, ``RESHAPE`` for a flatten, ``LINEAR``, ``LUT``, ``MUL``); ``act`` is None, relu or
    relu6, an activation with no IR op of its own: quantization folds it into the producer's output range.
    ``LUT``: an activation op of its own, ``function`` hard_swish, hard_sigmoid or sigmoid
    (:data:`tte_ir.quant.LUT_FUNCTIONS`). ``MUL``: the product of its two inputs (squeeze-and-excite's map
    times its per-channel gate, broadcast over H and W).

    conv: ``weight`` [O, C/groups, KH, KW] and ``bias`` [O] (float64, BN folded), ``stride`` (sh, sw),
    ``padding`` (top, left, bottom, right), ``groups``. linear: ``weight`` [O, I], ``bias`` [O].
    max / average pool (``MAX_POOL``, ``AVG_POOL``): ``kernel`` (kh, kw), ``stride``, ``padding``, and for
    an average pool ``count_include_pad`` (PyTorch's divisor, or the window's input pixels only). A plain
    int for a stride, padding or kernel means the same on every axis or side.
    channel ops: ``CONCAT`` joins its two inputs along channels; ``CHANNEL_SPLIT`` takes the channel range
    ``section`` names (:func:`channel_range`: ``("chunk", n, i)`` is ``x.chunk(n, 1)[i]``, ``("range", a, b)``
    is ``x[:, a:b]``); ``CHANNEL_SHUFFLE`` shuffles ``groups`` groups (ShuffleNet).
    """

    kind: Op
    name: str
    inputs: tuple[str, ...]
    output: str
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int, int, int] = 0
    groups: int = 1
    act: str | None = None
    function: str | None = None
    kernel: int | tuple[int, int] = 0
    count_include_pad: bool = True
    section: tuple[Any, ...] | None = None


@dataclass
class FloatGraph:
    """A list of :class:`FloatOp` in execution order reading the tensor ``input`` and writing ``output``."""

    name: str
    ops: list[FloatOp] = field(default_factory=list)
    output: str = INPUT

    def consumers(self, tensor: str) -> list[FloatOp]:
        """The ops that read ``tensor``."""
        return [op for op in self.ops if tensor in op.inputs]


def channel_range(section: tuple[Any, ...], channels: int) -> tuple[int, int]:
    """``(start, count)`` of a channel split's ``section`` on a map of ``channels`` channels: a chunk as
    ``torch.chunk`` cuts it (pieces of ``ceil(C/n)``), or a range with Python's slice rules."""
    if section[0] == "chunk":
        _, pieces, index = section
        size = -(-channels // pieces)
        start, stop = index * size, min((index + 1) * size, channels)
    else:
        start, stop, _ = slice(section[1], section[2]).indices(channels)
    return start, max(stop - start, 0)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's shuffle: ``view(N, g, C/g, ...).transpose(1, 2)`` back to ``x``'s shape."""
    n, channels, *spatial = x.shape
    return x.reshape(n, groups, channels // groups, *spatial).transpose(1, 2).reshape(x.shape)


_LUT_FUNCTIONS = {"hard_swish": F.hardswish, "hard_sigmoid": F.hardsigmoid, "sigmoid": torch.sigmoid}


def _key(name: str) -> str:
    return name.replace(".", "__")


def _padded(x: torch.Tensor, padding: Any, fill: float) -> tuple[torch.Tensor, tuple[int, int]]:
    """``x`` and the symmetric (along H, along W) padding to give torch: asymmetric padding (top, left,
    bottom, right) is applied here with ``fill`` and the rest is 0."""
    top, left, bottom, right = as_padding(padding)
    if (top, left) == (bottom, right):
        return x, (top, left)
    return F.pad(x, (left, right, top, bottom), value=fill), (0, 0)


def _avg_pool(x: torch.Tensor, op: FloatOp) -> torch.Tensor:
    """An average pool with any padding: window sums divided by ``kh*kw`` or by the window's input pixels."""
    kernel, stride = as_pair(op.kernel), as_pair(op.stride)
    top, left, bottom, right = as_padding(op.padding)
    if (top, left) == (bottom, right):
        return F.avg_pool2d(x, kernel, stride, (top, left), count_include_pad=op.count_include_pad)
    sums = F.avg_pool2d(F.pad(x, (left, right, top, bottom)), kernel, stride, 0, divisor_override=1)
    counts = pool_counts(
        tuple(x.shape[2:]), kernel=kernel, stride=stride, padding=(top, left, bottom, right),
        count_include_pad=op.count_include_pad,
    )  # fmt: skip
    return sums / torch.as_tensor(counts, dtype=x.dtype, device=x.device)


class FloatNet(nn.Module):
    """Runs a :class:`FloatGraph` in float32; weights and biases are trainable parameters.

    ``forward(x)`` takes a float batch ``[N, C, H, W]`` (dequantized input codes) and returns the
    output; ``return_all=True`` returns every tensor by name (for calibration).
    """

    def __init__(self, graph: FloatGraph) -> None:
        super().__init__()
        self.graph = graph
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        for op in graph.ops:
            if op.weight is not None:
                self.weights[_key(op.name)] = nn.Parameter(torch.tensor(op.weight, dtype=torch.float32))
                self.biases[_key(op.name)] = nn.Parameter(torch.tensor(op.bias, dtype=torch.float32))

    def weight(self, name: str) -> nn.Parameter:
        """The weight parameter of op ``name``."""
        return self.weights[_key(name)]

    def bias(self, name: str) -> nn.Parameter:
        """The bias parameter of op ``name``."""
        return self.biases[_key(name)]

    def run(self, values: dict[str, torch.Tensor], ops: list[FloatOp] | None = None) -> dict[str, torch.Tensor]:
        """Run ``ops`` (default: all) on the tensors in ``values``; return every tensor computed."""
        values = dict(values)
        for op in self.graph.ops if ops is None else ops:
            ins = [values[name] for name in op.inputs]
            if op.kind is Op.CONV2D:
                x, padding = _padded(ins[0], op.padding, 0.0)
                y = F.conv2d(x, self.weight(op.name), self.bias(op.name), as_pair(op.stride), padding, 1, op.groups)
            elif op.kind is Op.LINEAR:
                y = F.linear(ins[0], self.weight(op.name), self.bias(op.name))
            elif op.kind is Op.ADD:
                y = ins[0] + ins[1]
            elif op.kind is Op.GLOBAL_AVG_POOL:
                y = ins[0].mean(dim=(2, 3), keepdim=True)
            elif op.kind is Op.LUT:
                y = _LUT_FUNCTIONS[op.function](ins[0])
            elif op.kind is Op.MUL:
                y = ins[0] * ins[1]
            elif op.kind is Op.MAX_POOL:
                x, padding = _padded(ins[0], op.padding, -math.inf)
                y = F.max_pool2d(x, as_pair(op.kernel), as_pair(op.stride), padding)
            elif op.kind is Op.AVG_POOL:
                y = _avg_pool(ins[0], op)
            elif op.kind is Op.CONCAT:
                y = torch.cat(ins, dim=1)
            elif op.kind is Op.CHANNEL_SPLIT:
                start, count = channel_range(op.section, ins[0].shape[1])
                y = ins[0][:, start : start + count]
            elif op.kind is Op.CHANNEL_SHUFFLE:
                y = channel_shuffle(ins[0], op.groups)
            else:  # flatten
                y = ins[0].flatten(1)
            if op.act == "relu":
                y = F.relu(y)
            elif op.act == "relu6":
                y = F.relu6(y)
            values[op.output] = y
        return values

    def forward(self, x: torch.Tensor, return_all: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
        values = self.run({INPUT: x})
        return values if return_all else values[self.graph.output]

    def to_graph(self) -> FloatGraph:
        """A copy of the float graph carrying this module's current (possibly trained) parameters."""
        ops = []
        for op in self.graph.ops:
            if op.weight is not None:
                op = replace(
                    op,
                    weight=self.weight(op.name).detach().cpu().double().numpy(),
                    bias=self.bias(op.name).detach().cpu().double().numpy(),
                )
            ops.append(op)
        return FloatGraph(self.graph.name, ops, self.graph.output)
