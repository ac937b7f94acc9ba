"""Post-training quantization: a BN-folded :class:`~tte_algo.floatgraph.FloatGraph` plus calibration
data -> a verified ``tte_ir`` forward graph.

- Input: the device's image codes, pixel ``p`` in [0, 255] -> code ``p - 128``, scale ``1/127.5``,
  zero point 0 (the seed models' convention, :data:`INPUT_SCALE`).
- Activations: per-tensor ranges calibrated as the min/max over the calibration data. An output
  followed by ReLU gets the range ``[0, max]`` and ReLU6 ``[0, min(max, 6)]``, both with zero point
  -128, so the int8 clamp is the activation (NUMERICS.md §2); other outputs get an asymmetric range
  that contains 0. An int8 classifier's output range is at least ``[-8, 8]``, so a freshly
  initialised head can still grow confident logits while it trains.
- Weights: symmetric per output channel, ``s_w[o] = max|W[o]| / 127`` rounded to float32, codes
  ``clamp(rne(W / s_w), -127, 127)``. An all-zero channel takes the layer's largest scale, so its
  QAS divisor stays sane. Biases: ``sat32(rne(b / (s_x * s_w[o])))`` in float64.
- The classifier head is fp32 (float weights on the dequantized pooled features) or int8.
- A max pool's output keeps its input's scale and zero point (its codes are copied, never
  requantized); an average pool gets its own calibrated range, and one whose window covers the
  whole map without padding (``AvgPool2d(8)`` on an 8x8 map) becomes the global average pool, the
  same op as ``AdaptiveAvgPool2d(1)``.
- A concat copies codes, so its inputs and output share one quantization: every tensor joined to a
  concat through copies (concat, channel split and shuffle, max pool, reshape) takes one calibrated
  range, the union of theirs (the graph input's quantization when it is one of them), and the producers
  of those tensors requantize into it; a ReLU (ReLU6) producer then clamps at the code of 0 (and of 6)
  with ``act_min`` (``act_max``) where the shared zero point is not -128. A channel split or shuffle
  keeps its input's quantization.
- Table activations (hard-swish, hard-sigmoid, sigmoid) and the squeeze-and-excite multiply get their
  own calibrated output range (asymmetric, containing 0); their input keeps its producer's range.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from tte_algo.floatgraph import INPUT, FloatGraph, FloatNet, FloatOp, channel_range
from tte_ir import DType, Graph, GraphBuilder, Op, QuantParams, TensorSpec, TteError
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.layout_passes import flatten_channels_last
from tte_ir.ops import as_padding, as_pair
from tte_ir.quant import REQUANT_MODES

__all__ = ["INPUT_SCALE", "activation_quant", "calibrate", "export_graph", "quantize_model", "quantize_weights"]

INPUT_SCALE = 1 / 127.5
HEAD_MIN_RANGE = 8.0


def calibrate(net: FloatNet, batches: Iterable[torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Min and max of every tensor of ``net`` over the float input ``batches``."""
    ranges: dict[str, tuple[float, float]] = {}
    net.eval()
    with torch.no_grad():
        for batch in batches:
            for name, value in net(batch, return_all=True).items():
                lo, hi = float(value.min()), float(value.max())
                old = ranges.get(name, (lo, hi))
                ranges[name] = (min(lo, old[0]), max(hi, old[1]))
    if not ranges:
        raise TteError("calibration needs at least one batch of data")
    return ranges


def activation_quant(lo: float, hi: float, act: str | None) -> QuantParams:
    """The per-tensor quantization of an activation with calibrated range ``[lo, hi]`` (module docstring)."""
    if act in ("relu", "relu6"):
        top = min(hi, 6.0) if act == "relu6" else hi
        scale = top / 255.0
        zero = -128
    else:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        scale = (hi - lo) / 255.0
        zero = int(np.clip(np.rint(-128.0 - lo / scale), -128, 127)) if scale > 0 else 0
    if not (np.isfinite(scale) and scale > 0):
        scale = 1.0 / 255.0  # a tensor that is identically zero: any scale represents it
    return QuantParams.per_tensor(float(np.float32(scale)), zero)


def quantize_weights(weight: np.ndarray, bias: np.ndarray, x_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8 codes, float32 scales and int32 bias codes (module docstring)."""
    w = np.asarray(weight, dtype=np.float64)
    peak = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    peak = np.where(peak > 0, peak, peak.max() if peak.max() > 0 else 1.0)
    scales = (peak / 127.0).astype(np.float32)
    s64 = scales.astype(np.float64)
    codes = np.clip(np.rint(w / s64.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
    bias_codes = np.rint(np.asarray(bias, dtype=np.float64) / (np.float64(np.float32(x_scale)) * s64))
    return codes, scales, np.clip(bias_codes, INT32_MIN, INT32_MAX).astype(np.int32)


class _Exporter:
    def __init__(self, fgraph: FloatGraph, ranges: Mapping[str, tuple[float, float]], head: str) -> None:
        self.fgraph = fgraph
        self.ranges = ranges
        self.head = head
        self.quant: dict[str, QuantParams] = {}
        self.tensor: dict[str, str] = {}
        self.shared, self.clamps = _shared_quant(fgraph, ranges)

    def range_of(self, op: FloatOp) -> tuple[float, float]:
        if op.output not in self.ranges:
            raise TteError(f"op '{op.name}': no calibrated range for its output")
        return self.ranges[op.output]

    def run(self, b: GraphBuilder, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.tensor[INPUT] = b.input("input", shapes[INPUT], DType.INT8, QuantParams.per_tensor(INPUT_SCALE, 0))
        self.quant[INPUT] = b.spec("input").quant
        last = self.fgraph.ops[-1]
        for op in self.fgraph.ops:
            ins = [self.tensor[name] for name in op.inputs]
            shape = shapes[op.output]
            if op.kind is Op.RESHAPE:
                quant = self.quant[op.inputs[0]]
                y = b.tensor(f"{op.name}.y", shape, DType.INT8, quant)
                b.node(op.name, Op.RESHAPE, ins, (y,), shape=list(shape))
            elif op.kind in _CHANNEL_OPS:  # codes are copied: one quantization for inputs and output
                quant = self.quant[op.inputs[0]]
                y = b.tensor(f"{op.name}.y", shape, DType.INT8, quant)
                b.node(op.name, op.kind, ins, (y,), **_channel_attrs(op, shapes))
            elif op.kind is Op.MAX_POOL:  # codes are copied: the output keeps the input's quantization
                quant = self.quant[op.inputs[0]]
                y = b.tensor(f"{op.name}.y", shape, DType.INT8, quant)
                b.node(op.name, Op.MAX_POOL, ins, (y,), kernel=op.kernel, stride=op.stride, padding=op.padding)
            elif op.kind is Op.LINEAR and op is last and self.head == "fp32":
                w = b.constant(f"{op.name}.w", op.weight.astype(np.float32))
                bias = b.constant(f"{op.name}.b", op.bias.astype(np.float32))
                y = b.tensor("logits", shape, DType.FLOAT32)
                b.node(op.name, Op.LINEAR, (ins[0], w, bias), (y,))
                quant = None
            else:
                lo, hi = self.range_of(op)
                if op is last:
                    lo, hi = min(lo, -HEAD_MIN_RANGE), max(hi, HEAD_MIN_RANGE)
                quant = self.shared.get(op.output) or activation_quant(lo, hi, op.act)
                y = b.tensor("logits" if op is last else f"{op.name}.y", shape, DType.INT8, quant)
                self.node(b, op, ins, y)
            self.tensor[op.output] = y
            if quant is not None:
                self.quant[op.output] = quant
        b.output(self.tensor[self.fgraph.output])

    def node(self, b: GraphBuilder, op: FloatOp, ins: list[str], y: str) -> None:
        clamp = self.clamps.get(op.output, {})
        if clamp and op.kind not in (Op.CONV2D, Op.LINEAR, Op.ADD, Op.MUL):
            raise TteError(
                f"op '{op.name}': its {op.act} output feeds a concat, whose shared quantization needs a clamp that "
                f"a {op.kind.name.lower()} has no range for; put the activation on a conv, linear or add"
            )
        if op.kind in (Op.CONV2D, Op.LINEAR):
            x_scale = self.quant[op.inputs[0]].tensor_scale
            codes, scales, bias = quantize_weights(op.weight, op.bias, x_scale)
            w = b.constant(f"{op.name}.w", codes, QuantParams.per_channel(scales))
            bb = b.constant(f"{op.name}.b", bias)
            if op.kind is Op.CONV2D:
                b.node(
                    op.name, Op.CONV2D, (ins[0], w, bb), (y,), stride=op.stride, padding=op.padding, groups=op.groups,
                    **clamp,
                )  # fmt: skip
            else:
                b.node(op.name, Op.LINEAR, (ins[0], w, bb), (y,), **clamp)
        elif op.kind is Op.ADD:
            b.node(op.name, Op.ADD, ins, (y,), **clamp)
        elif op.kind is Op.GLOBAL_AVG_POOL:
            b.node(op.name, Op.GLOBAL_AVG_POOL, ins, (y,))
        elif op.kind is Op.AVG_POOL:
            _, _, height, width = b.spec(ins[0]).shape
            if not any(as_padding(op.padding)) and as_pair(op.kernel) == (height, width):  # the whole map: global pool
                b.node(op.name, Op.GLOBAL_AVG_POOL, ins, (y,))
            else:
                b.node(
                    op.name, Op.AVG_POOL, ins, (y,), kernel=op.kernel, stride=op.stride, padding=op.padding,
                    count_include_pad=op.count_include_pad,
                )  # fmt: skip
        elif op.kind is Op.LUT:
            b.node(op.name, Op.LUT, ins, (y,), function=op.function)
        elif op.kind is Op.MUL:
            b.node(op.name, Op.MUL, _map_and_gate(op, [b.spec(name) for name in ins]), (y,), **clamp)
        else:
            raise TteError(f"op '{op.name}': kind '{op.kind.name.lower()}' has no int8 form")


_CHANNEL_OPS = (Op.CONCAT, Op.CHANNEL_SPLIT, Op.CHANNEL_SHUFFLE)
_COPIES = (*_CHANNEL_OPS, Op.MAX_POOL, Op.RESHAPE)  # ops whose output codes are input codes


def _channel_attrs(op: FloatOp, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    if op.kind is Op.CHANNEL_SPLIT:
        start, count = channel_range(op.section, shapes[op.inputs[0]][1])
        if count < 1:
            raise TteError(
                f"op '{op.name}': the channel split {op.section} of {shapes[op.inputs[0]][1]} channels is empty"
            )
        return {"start": start, "count": count}
    if op.kind is Op.CHANNEL_SHUFFLE:
        return {"groups": op.groups}
    return {}


def _shared_quant(
    fgraph: FloatGraph, ranges: Mapping[str, tuple[float, float]]
) -> tuple[dict[str, QuantParams], dict[str, dict[str, int]]]:
    """The one quantization of every tensor joined to a concat through copies (module docstring), and the
    output clamps (``act_min``/``act_max``) its ReLU and ReLU6 producers need in it."""
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        while parent.get(t, t) != t:
            t = parent[t]
        return t

    for op in fgraph.ops:
        if op.kind in _COPIES:
            for name in op.inputs:
                parent[find(name)] = find(op.output)
    roots = {find(op.output) for op in fgraph.ops if op.kind is Op.CONCAT}
    producers = {op.output: op for op in fgraph.ops}
    shared: dict[str, QuantParams] = {}
    clamps: dict[str, dict[str, int]] = {}
    tensors = {t for op in fgraph.ops for t in (*op.inputs, op.output)}
    for root in roots:
        members = [t for t in tensors if find(t) == root]
        writers = [producers[t] for t in members if t in producers and producers[t].kind not in _COPIES]
        if INPUT in members:
            quant = QuantParams.per_tensor(INPUT_SCALE, 0)
        else:
            lo = min(ranges[t][0] for t in members if t in ranges)
            hi = max(ranges[t][1] for t in members if t in ranges)
            acts = {op.act for op in writers}
            act = next(iter(acts)) if len(acts) == 1 else ("relu" if acts <= {"relu", "relu6"} else None)
            quant = activation_quant(lo, hi, act)
        scale, zero = quant.tensor_scale, quant.zero_point
        for t in members:
            shared[t] = quant
        for op in writers:
            clamp = {}
            if op.act in ("relu", "relu6") and zero > -128:
                clamp["act_min"] = zero
            if op.act == "relu6" and zero + round(6.0 / scale) < 127:
                clamp["act_max"] = int(zero + round(6.0 / scale))
            if clamp:
                clamps[op.output] = clamp
    return shared, clamps


def _map_and_gate(op: FloatOp, specs: list[TensorSpec]) -> tuple[str, str]:
    """The inputs of a multiply as the IR's ``(a, b)``: the ``[1,C,H,W]`` map first, its ``[1,C,1,1]`` gate second."""
    first, second = specs
    for a, b in ((first, second), (second, first)):
        if len(a.shape) == 4 and b.shape == (1, a.shape[1], 1, 1):
            return a.name, b.name
    raise TteError(
        f"op '{op.name}': a multiply of {list(first.shape)} by {list(second.shape)} is not supported; "
        "multiply a [N,C,H,W] map by a [N,C,1,1] per-channel gate (squeeze-and-excite)"
    )


def export_graph(
    fgraph: FloatGraph,
    ranges: Mapping[str, tuple[float, float]],
    input_shape: tuple[int, int, int],
    *,
    head: str = "fp32",
    metadata: Mapping[str, Any] | None = None,
    requant: str = "float",
) -> Graph:
    """Quantize ``fgraph`` with calibrated ``ranges`` into a verified forward graph for a
    ``[1, *input_shape]`` int8 input. ``head`` is "fp32" or "int8"; ``requant`` the graph's
    requantization, "float" (NUMERICS.md §2) or "fixed" (§2b, TFLite's integer arithmetic). A flatten
    of a spatial map into the head is exported in the engine's channels-last order, the head's weights
    permuted to match (:func:`tte_ir.layout_passes.flatten_channels_last`), so the simulation and the
    engine run it."""
    if head not in ("fp32", "int8"):
        raise TteError(f"head must be 'fp32' or 'int8', got '{head}'")
    if requant not in REQUANT_MODES:
        raise TteError(f"requant must be one of {', '.join(REQUANT_MODES)}, got '{requant}'")
    net = FloatNet(fgraph)
    with torch.no_grad():
        values = net(torch.zeros(1, *input_shape), return_all=True)
    shapes = {name: tuple(value.shape) for name, value in values.items()}
    meta = {
        "importer": "tte_algo.ptq",
        "head": head,
        "num_classes": int(shapes[fgraph.output][1]),
        "input_mapping": "pixel p in [0,255] -> code p - 128 (scale 1/127.5, zero point 0)",
        "requant": requant,
        **dict(metadata or {}),
    }
    builder = GraphBuilder(fgraph.name, meta)
    _Exporter(fgraph, ranges, head).run(builder, shapes)
    return flatten_channels_last(builder.build())


def quantize_model(
    model: torch.nn.Module,
    calibration_codes: torch.Tensor,
    *,
    head: str = "fp32",
    name: str = "model",
    metadata: Mapping[str, Any] | None = None,
    requant: str = "float",
) -> Graph:
    """Import ``model`` through torch.fx, calibrate it on int8 input codes ``[N, 3, H, W]`` and export
    the int8 forward graph (the whole of ``tte quantize``; ``requant`` as :func:`export_graph`)."""
    from tte_algo.fx_import import import_fx

    fgraph = import_fx(model, name)
    ranges = calibrate(FloatNet(fgraph), [calibration_codes.to(torch.float32) / 127.5])
    shape = tuple(calibration_codes.shape[1:])
    return export_graph(fgraph, ranges, shape, head=head, metadata=metadata, requant=requant)
