"""Import an int8 TensorFlow Lite model (``.tflite``) as a tte forward graph (``tte import-tflite``).

The file is read by :func:`tte_ir.tflite_file.read_tflite` (bounds-checked, no TensorFlow); every
operator of its main subgraph becomes the tte op that ``tte_algo.fx_import`` and ``tte quantize``
emit for the PyTorch equivalent, with TFLite's own quantization kept as it is: per-output-channel
int8 weights (zero point 0), int32 biases, asymmetric int8 activations, every tensor's float32 scale
and zero point. Graphs are made with ``metadata["requant"] = "fixed"`` (NUMERICS.md §2b: TFLite's
reference integer arithmetic) unless ``requant="float"`` is asked for.

==================== ================================================================================
TFLite op            tte
==================== ================================================================================
CONV_2D              conv2d (OHWI weights -> OIHW; groups = C / I)
DEPTHWISE_CONV_2D    conv2d with groups = C (1HWO weights -> [O, 1, KH, KW]), depth_multiplier 1
FULLY_CONNECTED      linear ([O, I] weights as they are; a map input flattened channels-last first)
ADD                  add (same shapes)
MUL                  mul (a map times a per-channel vector, squeeze-and-excite)
AVERAGE_POOL_2D      avg_pool, dividing by the window's input pixels (``count_include_pad`` false)
MAX_POOL_2D          max_pool
MEAN over H and W    global_avg_pool (and a reshape to [1, C] without ``keep_dims``)
HARD_SWISH, LOGISTIC lut (hard_swish, sigmoid)
CONCATENATION        concat along channels, two inputs at a time
RESHAPE              reshape: a map flattened to [1, N] in TFLite's NHWC order ("hwc"), or its inverse
PAD                  folded into the padding of the convolution that reads it
SHAPE, STRIDED_SLICE, PACK   evaluated at import (a dynamic batch's flatten: the shape is static)
QUANTIZE, DEQUANTIZE the float edges of a model with float input or output: the graph stays int8
SOFTMAX              dropped at the end: training's loss replaces it; its parameters are kept in
                     ``metadata["softmax"]`` and :func:`softmax_int8` computes TFLite's int8 softmax
==================== ================================================================================

Layout: TFLite maps are NHWC, tte's NCHW (``[1, H, W, C]`` becomes ``[1, C, H, W]``); tensors keep
their TFLite names, so an intermediate tensor of the imported graph is compared with TFLite's tensor
of the same name and ``tte export-tflite`` finds each weight's tensor. Fused activations (none,
RELU, RELU6, RELU_N1_TO_1) become the output range ``[act_min, act_max]`` exactly as TFLite's
``CalculateActivationRangeQuantized`` computes it. SAME padding follows TFLite: along each axis
``total = max((out - 1) * stride + kernel - in, 0)``, ``before = total // 2``, the rest after, written
as the IR's ``stride`` = (sh, sw), ``padding`` = (top, left, bottom, right) and a pool's ``kernel`` = (kh, kw).

``num_classes`` replaces the last FULLY_CONNECTED by a new head as :func:`tte_ir.import_seed_pkl`
makes one (seeded uniform initialisation, fp32 or int8). Anything else (an op or op version not in
the table, dilation, a depth multiplier, int16 or uint8 activations, a broadcast the ops above do not
express) is refused with one :class:`TfliteImportError` line naming the file, the operator (its index,
name and version) and what to do.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tte_ir._ir import DType, Graph, GraphBuilder, Op, QuantParams, TteError
from tte_ir.constants import INT32_MAX, INT32_MIN
from tte_ir.fixedpoint import Q31_ONE, quantize_multiplier, rdbpot, round_half_away, srdhm
from tte_ir.importers.head import HEAD_INIT, new_head
from tte_ir.quant import REQUANT_MODES
from tte_ir.tflite_file import TfliteModel, TfliteOperator, TfliteTensor, read_tflite

__all__ = [
    "SUPPORTED_OPS",
    "TfliteImportError",
    "activation_range",
    "import_tflite",
    "register_import_tflite",
    "same_padding",
    "softmax_int8",
]

SUPPORTED_OPS: Mapping[str, int] = {
    "CONV_2D": 6,
    "DEPTHWISE_CONV_2D": 6,
    "FULLY_CONNECTED": 9,
    "ADD": 4,
    "MUL": 5,
    "AVERAGE_POOL_2D": 3,
    "MAX_POOL_2D": 3,
    "MEAN": 3,
    "HARD_SWISH": 1,
    "LOGISTIC": 3,
    "CONCATENATION": 3,
    "RESHAPE": 2,
    "PAD": 3,
    "SHAPE": 1,
    "STRIDED_SLICE": 6,
    "PACK": 3,
    "QUANTIZE": 3,
    "DEQUANTIZE": 4,
    "SOFTMAX": 3,
}
"""The builtin ops imported, each with the newest operator version known to keep the int8 semantics
this importer maps (newer versions add int16 or int4 variants, which the dtype checks refuse too)."""

_FOLDED = ("SHAPE", "STRIDED_SLICE", "PACK")
# the inputs each op needs (a conv's or a linear layer's bias is optional)
_INPUTS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "ADD": 2, "MUL": 2, "MEAN": 2, "PAD": 2,
           "STRIDED_SLICE": 4}  # fmt: skip
_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}
_SAME, _VALID = 0, 1
_LUT_OPS = {"HARD_SWISH": "hard_swish", "LOGISTIC": "sigmoid"}


class TfliteImportError(TteError):
    """A ``.tflite`` model uses something tte cannot import."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite's SAME padding along one axis: ``(before, after)`` with ``total = max((out-1)*stride +
    kernel - size, 0)`` for ``out = ceil(size / stride)`` and ``before = total // 2``."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _quantize_real(value: float, scale: float, zero_point: int) -> int:
    """TFLite's ``Quantize`` of a real bound: ``zero_point + round(value / scale)`` with the division in
    float32 and the rounding half away from zero (``TfLiteRound``)."""
    return int(zero_point) + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """``(act_min, act_max)`` of an int8 output with a fused ``activation`` ("none", "relu", "relu6",
    "relu_n1_to_1"), as TFLite's ``CalculateActivationRangeQuantized`` computes it."""
    lo, hi = -128, 127
    if activation == "relu":
        return max(lo, _quantize_real(0.0, scale, zero_point)), hi
    if activation == "relu6":
        return max(lo, _quantize_real(0.0, scale, zero_point)), min(hi, _quantize_real(6.0, scale, zero_point))
    if activation == "relu_n1_to_1":
        return max(lo, _quantize_real(-1.0, scale, zero_point)), min(hi, _quantize_real(1.0, scale, zero_point))
    return lo, hi


_SOFTMAX_DIFF_BITS = 5  # TFLite's kScaledDiffIntegerBits: the exp() input is Q5.26
_SOFTMAX_SUM_BITS = 12  # kAccumulationIntegerBits: the sum of exps is Q12.19


def _saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingMultiplyByPOT`` by ``2^exponent``, ``exponent > 0``."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp's ``exp_on_negative_values`` of Q5.26 values ``a <= 0``, as Q0.31."""
    quarter = 1 << 24
    a_mod = (a & (quarter - 1)) - quarter
    # exp on [-1/4, 0): a Taylor expansion around -1/8 (exp_on_interval_between_negative_one_quarter_and_0_excl)
    x = _saturating_shift_left(a_mod, _SOFTMAX_DIFF_BITS) + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = rdbpot(srdhm(rdbpot(x4, 2) + x3, 715827883) + x2, 1)
    result = 1895147668 + srdhm(1895147668, x + poly)
    remainder = a_mod - a
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                                 (2, 39332535), (3, 720401), (4, 242)):  # fmt: skip
        bit = 1 << (26 + exponent)
        result = np.where(remainder & bit, srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """gemmlowp's ``one_over_one_plus_x_for_x_in_0_1`` of Q0.31 values (Newton-Raphson, 3 steps)."""
    total = a + INT32_MAX
    half = np.where(total >= 0, (total + 1) // 2, -((-(total - 1)) // 2))  # (sum + sign) / 2, truncated
    x = 1515870810 + srdhm(half, -1010580540)  # Q2.29: 48/17 - 32/17 * half
    for _ in range(3):
        x = x + _saturating_shift_left(srdhm(x, (1 << 29) - srdhm(half, x)), 2)
    return _saturating_shift_left(x, 1)


def softmax_int8(logits: np.ndarray, *, input_scale: float, beta: float = 1.0) -> np.ndarray:
    """TFLite's int8 softmax (``reference_ops::Softmax``, gemmlowp fixed point) of int8 ``logits``
    ``[N, classes]`` with scale ``input_scale``: int8 codes of scale 1/256, zero point -128, the
    output quantization TFLite requires of an int8 SOFTMAX."""
    x = np.asarray(logits, dtype=np.int64)
    real = min(float(beta) * float(input_scale) * float(1 << (31 - _SOFTMAX_DIFF_BITS)), float(INT32_MAX))
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -math.floor(((1 << _SOFTMAX_DIFF_BITS) - 1) * (1 << (31 - _SOFTMAX_DIFF_BITS)) / (1 << left_shift))
    diff = x - x.max(axis=1, keepdims=True)
    live = diff >= diff_min
    exps = _exp_on_negative_values(srdhm(np.where(live, diff, 0) << left_shift, multiplier))
    total = np.where(live, rdbpot(exps, _SOFTMAX_SUM_BITS), 0).sum(axis=1, keepdims=True)
    headroom = np.asarray([[32 - int(v).bit_length()] for v in total.ravel()], dtype=np.int64).reshape(total.shape)
    scale = _one_over_one_plus_x((total << headroom) - Q31_ONE)
    exponent = _SOFTMAX_SUM_BITS - headroom + 31 - 8
    out = rdbpot(srdhm(scale, exps), exponent) - 128
    return np.where(live, np.clip(out, -128, 127), -128).astype(np.int8)


def _text(value: bytes) -> str:
    """A metadata entry as text when it is printable (NULs at the end dropped), else its size and the
    printable runs inside it (CONVERSION_METADATA, a flatbuffer, holds the converter's version)."""
    stripped = value.rstrip(b"\x00")
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable() and len(text) <= 200:
        return text
    runs = [run.decode("ascii") for run in re.findall(rb"[\x20-\x7e]{4,}", value)][:8]
    return f"<{len(value)} bytes>" + (f" {' '.join(runs)}" if runs else "")


class _Importer:
    def __init__(
        self, model: TfliteModel, path: Path, num_classes: int | None, head: str, requant: str, seed: int
    ) -> None:
        self.m = model
        self.path = path
        self.num_classes = num_classes
        self.head = head
        self.seed = seed
        self.values: dict[int, str] = {}  # TFLite tensor index -> the tte tensor holding it
        self.folded: dict[int, np.ndarray] = {}  # int32 shape arithmetic evaluated at import
        self.pads: dict[int, tuple[int, tuple[int, int, int, int]]] = {}  # PAD output -> (its input, padding)
        self.names: set[str] = set()
        self.metadata: dict[str, Any] = {"requant": requant}
        self.b = GraphBuilder(path.stem, {})
        self.op: TfliteOperator | None = None
        self.first_input = -1

    # -- messages -------------------------------------------------------------------------------------
    def fail(self, message: str) -> TfliteImportError:
        where = f"{self.path}: "
        if self.op is not None:
            where += f"op #{self.op.index} {self.op.opcode} (version {self.op.version}): "
        return TfliteImportError(where + message)

    # -- tensors --------------------------------------------------------------------------------------
    def tensor(self, index: int) -> TfliteTensor:
        return self.m.tensors[index]

    def constant(self, index: int, dtype: str, what: str) -> np.ndarray:
        t = self.tensor(index)
        if t.data is None or t.sparse:
            raise self.fail(f"its {what} '{t.name}' must be a constant (dense) tensor")
        if t.dtype != dtype:
            raise self.fail(f"its {what} '{t.name}' is {t.dtype}; tte imports {dtype} {what}s")
        return np.asarray(t.data)

    def int32_value(self, index: int, what: str) -> np.ndarray:
        """A folded shape value or an int32 constant."""
        if index in self.folded:
            return self.folded[index]
        t = self.tensor(index)
        if t.data is None:
            raise self.fail(f"its {what} '{t.name}' is computed at run time; tte needs it constant")
        return np.asarray(self.constant(index, "INT32", what), dtype=np.int64).reshape(t.shape)

    def quant(self, t: TfliteTensor) -> QuantParams:
        q = t.quantization
        if q is None or len(q.scales) != 1:
            raise self.fail(f"activation '{t.name}' must have one scale and zero point (int8, per tensor)")
        return QuantParams.per_tensor(float(q.scales[0]), int(q.zero_points[0]))

    def tte_name(self, t: TfliteTensor) -> str:
        name = t.name if t.name and t.name not in self.names else f"tensor{t.index}"
        self.names.add(name)
        return name

    def define(self, index: int) -> str:
        """The tte tensor of the int8 activation ``index`` (an op output or the graph input)."""
        t = self.tensor(index)
        if t.dtype != "INT8":
            raise self.fail(f"tensor '{t.name}' is {t.dtype}; tte imports int8 activations (full-integer models)")
        name = self.tte_name(t)
        self.b.tensor(name, _tte_shape(t.shape, self, t.name), DType.INT8, self.quant(t))
        self.values[index] = name
        return name

    def value(self, index: int) -> str:
        """The tte tensor holding activation ``index`` (a PAD's output is read only by the conv it folds into)."""
        if index < 0:
            raise self.fail("an input it needs is left out")
        if index in self.pads:
            raise self.fail(
                f"it reads the output of a PAD ('{self.tensor(index).name}'); tte folds a PAD only into convs"
            )
        if index not in self.values:
            t = self.tensor(index)
            kind = "a constant" if t.data is not None else "not computed by an imported op"
            raise self.fail(f"its input '{t.name}' is {kind}; tte imports ops on activations")
        return self.values[index]

    def weight_quant(self, t: TfliteTensor, channels: int, axis: int) -> QuantParams:
        q = t.quantization
        if q is None or len(q.scales) not in (1, channels):
            raise self.fail(f"weights '{t.name}' must be quantized per tensor or per output channel")
        if np.any(np.asarray(q.zero_points) != 0):
            raise self.fail(f"weights '{t.name}' have a nonzero zero point; int8 weights are symmetric")
        if len(q.scales) == channels and channels > 1 and q.quantized_dimension != axis:
            raise self.fail(f"weights '{t.name}' are quantized along axis {q.quantized_dimension}, not {axis}")
        scales = np.broadcast_to(np.asarray(q.scales, dtype=np.float32), (channels,))
        return QuantParams.per_channel(scales.tolist())

    def bias(self, index: int, channels: int, node: str) -> str:
        if index < 0:
            return self.b.constant(f"{node}.bias", np.zeros(channels, dtype=np.int32))
        data = self.constant(index, "INT32", "bias")
        if data.size != channels:
            raise self.fail(f"bias '{self.tensor(index).name}' has {data.size} values for {channels} channels")
        return self.b.constant(self.tte_name(self.tensor(index)), data.reshape(channels).astype(np.int32))

    def act(self, options: Mapping[str, Any], out: TfliteTensor) -> tuple[int, int]:
        code = int(options.get("fused_activation_function", 0))
        if code not in _ACTIVATIONS:
            raise self.fail(f"fused activation {code} is not supported (none, RELU, RELU6, RELU_N1_TO_1 are)")
        q = self.quant(out)
        return activation_range(_ACTIVATIONS[code], q.tensor_scale, q.zero_point)

    def full_range(self, options: Mapping[str, Any], out: TfliteTensor) -> None:
        """Ops without a clamp of their own (pools, concat) take a fused activation only where it clamps nothing."""
        if self.act(options, out) != (-128, 127):
            raise self.fail("a fused activation that clamps the output is not supported on this op")

    # -- the walk -------------------------------------------------------------------------------------
    def run(self) -> Graph:
        self.check_ops()
        if len(self.m.inputs) != 1 or len(self.m.outputs) != 1:
            raise self.fail(
                f"the model has {len(self.m.inputs)} inputs and {len(self.m.outputs)} outputs; tte imports "
                "models of one input and one output"
            )
        ops = list(self.m.operators)
        ops = self.input_edge(ops)
        ops, output = self.output_edge(ops)
        head_op = self.head_op(ops) if self.num_classes is not None else None
        for op in ops:
            self.op = op
            if op is head_op:
                self.new_head(op)
            else:
                getattr(self, f"op_{op.opcode.lower()}")(op)
        self.op = None
        final = self.values.get(output)
        if final is None:
            raise self.fail(f"the model's output '{self.tensor(output).name}' is not computed by an imported op")
        self.b.output(final)
        self.b.metadata.update(self.summary(self.values[self.first_input], final))
        try:
            return self.b.build()
        except TteError as exc:
            raise TfliteImportError(f"{self.path}: {exc}") from None

    def check_ops(self) -> None:
        refused = []
        for op in self.m.operators:
            limit = SUPPORTED_OPS.get(op.opcode)
            name = op.custom_code if op.opcode == "CUSTOM" else op.opcode
            if limit is None:
                refused.append(f"op #{op.index} {name} (version {op.version}) is not supported")
            elif op.version > limit:
                refused.append(
                    f"op #{op.index} {name} version {op.version} is newer than the versions tte knows (1-{limit})"
                )
            else:
                need = _INPUTS.get(op.opcode, 1)
                if len(op.inputs) < need or min(op.inputs[:need]) < 0 or len(op.outputs) != 1 or op.outputs[0] < 0:
                    refused.append(
                        f"op #{op.index} {name} has inputs {list(op.inputs)} and outputs {list(op.outputs)}; it needs "
                        f"{need} inputs and one output"
                    )
        if refused:
            listed = "; ".join(dict.fromkeys(refused))
            raise TfliteImportError(f"{self.path}: {listed} (supported: {', '.join(SUPPORTED_OPS)})")

    def input_edge(self, ops: list[TfliteOperator]) -> list[TfliteOperator]:
        """The graph input: the model's int8 input, or the output of a QUANTIZE of its float input."""
        index = self.m.inputs[0]
        t = self.tensor(index)
        if t.shape_signature[:1] not in ((-1,), (1,)) or t.shape[:1] != (1,):
            raise self.fail(f"input '{t.name}' has shape {list(t.shape_signature)}; tte models take a batch of 1")
        if t.dtype == "FLOAT32":
            first = ops[0] if ops else None
            if first is None or first.opcode != "QUANTIZE" or first.inputs[:1] != (index,):
                raise self.fail(f"input '{t.name}' is float32 and is not quantized by the first op; give an int8 input")
            q = t.quantization
            self.metadata["float_input"] = {"name": t.name}
            if q is not None and len(q.scales):
                self.metadata["float_input"].update(scale=float(q.scales[0]), zero_point=int(q.zero_points[0]))
            index = first.outputs[0]
            ops = ops[1:]
        t = self.tensor(index)
        if t.dtype != "INT8":
            raise self.fail(f"input '{t.name}' is {t.dtype}; tte imports int8 models (inference_input_type=tf.int8)")
        name = self.tte_name(t)
        self.b.input(name, _tte_shape(t.shape, self, t.name), DType.INT8, self.quant(t))
        self.values[index] = name
        self.first_input = index
        return ops

    def output_edge(self, ops: list[TfliteOperator]) -> tuple[list[TfliteOperator], int]:
        """The graph output, after a final DEQUANTIZE and SOFTMAX are taken off."""
        output = self.m.outputs[0]
        if ops and ops[-1].opcode == "DEQUANTIZE" and ops[-1].outputs == (output,):
            self.metadata["float_output"] = {"name": self.tensor(output).name}
            output = ops[-1].inputs[0]
            ops = ops[:-1]
        if ops and ops[-1].opcode == "SOFTMAX" and ops[-1].outputs == (output,):
            op = ops[-1]
            self.op = op
            x, y = self.tensor(op.inputs[0]), self.tensor(output)
            qx, qy = self.quant(x), self.quant(y)
            if x.dtype != "INT8" or y.dtype != "INT8" or (qy.tensor_scale, qy.zero_point) != (1 / 256, -128):
                raise self.fail("an int8 softmax (output scale 1/256, zero point -128) is imported; this one is not")
            if self.num_classes is None:
                self.metadata["softmax"] = {
                    "beta": float(op.options.get("beta", 1.0)), "input": x.name, "input_scale": qx.tensor_scale,
                    "output": y.name,
                }  # fmt: skip
            self.op = None
            output = op.inputs[0]
            ops = ops[:-1]
        return ops, output

    def head_op(self, ops: list[TfliteOperator]) -> TfliteOperator:
        heads = [op for op in ops if op.opcode == "FULLY_CONNECTED"]
        if not heads or heads[-1] is not ops[-1]:
            raise TfliteImportError(
                f"{self.path}: --classes replaces the last FULLY_CONNECTED, which must compute the model's output "
                "(before a final SOFTMAX)"
            )
        return heads[-1]

    # -- the ops --------------------------------------------------------------------------------------
    def node_name(self, op: TfliteOperator) -> str:
        return f"{op.opcode.lower()}_{op.index}"

    def window(self, options: Mapping[str, Any], size: tuple[int, int], kernel: tuple[int, int]):
        stride = (int(options.get("stride_h", 1)), int(options.get("stride_w", 1)))
        if min(stride) < 1:
            raise self.fail(f"stride {stride} must be at least 1")
        if int(options.get("dilation_h_factor", 1)) != 1 or int(options.get("dilation_w_factor", 1)) != 1:
            raise self.fail("dilated convolutions are not supported")
        padding = int(options.get("padding", _VALID))
        if padding == _SAME:
            (top, bottom), (left, right) = (
                same_padding(s, k, st) for s, k, st in zip(size, kernel, stride, strict=True)
            )
        elif padding == _VALID:
            top = bottom = left = right = 0
        else:
            raise self.fail(f"padding {padding} is neither SAME nor VALID")
        return stride, [top, left, bottom, right]

    def conv(self, op: TfliteOperator, depthwise: bool) -> None:
        x_index = op.inputs[0]
        pre = [0, 0, 0, 0]
        if x_index in self.pads:
            x_index, pad = self.pads[x_index]
            pre = list(pad)
        x = self.value(x_index)
        _, channels, height, width = self.b.spec(x).shape
        w_t = self.tensor(op.inputs[1])
        data = self.constant(op.inputs[1], "INT8", "weights").reshape(w_t.shape)
        if len(w_t.shape) != 4 or min(w_t.shape) < 1:
            raise self.fail(f"weights '{w_t.name}' have shape {list(w_t.shape)}; expected 4 dimensions")
        if depthwise:
            if int(op.options.get("depth_multiplier", 1)) not in (1, 0) or w_t.shape[3] != channels:
                raise self.fail(
                    f"a depth multiplier above 1 ({w_t.shape[3]} outputs from {channels} channels) is not supported"
                )
            weights, groups, axis = data.transpose(3, 0, 1, 2), channels, 3
        else:
            if channels % w_t.shape[3]:
                raise self.fail(f"weights '{w_t.name}' take {w_t.shape[3]} channels, which does not divide {channels}")
            weights, groups, axis = data.transpose(0, 3, 1, 2), channels // w_t.shape[3], 0
        out_c, _, kh, kw = weights.shape
        stride, padding = self.window(op.options, (height, width), (kh, kw))
        padding = [a + b for a, b in zip(padding, pre, strict=True)]
        name = self.node_name(op)
        w = self.b.constant(self.tte_name(w_t), np.ascontiguousarray(weights), self.weight_quant(w_t, out_c, axis))
        b = self.bias(op.inputs[2] if len(op.inputs) > 2 else -1, out_c, name)
        out = self.tensor(op.outputs[0])
        act_min, act_max = self.act(op.options, out)
        y = self.define(op.outputs[0])
        self.b.node(
            name, Op.CONV2D, (x, w, b), (y,), stride=tuple(stride), padding=tuple(padding), groups=groups,
            act_min=act_min, act_max=act_max,
        )  # fmt: skip

    def op_conv_2d(self, op: TfliteOperator) -> None:
        self.conv(op, depthwise=False)

    def op_depthwise_conv_2d(self, op: TfliteOperator) -> None:
        self.conv(op, depthwise=True)

    def flat_input(self, op: TfliteOperator, index: int) -> str:
        """The input of a FULLY_CONNECTED as a vector [1, I]: a map is flattened in TFLite's NHWC order."""
        x = self.value(index)
        spec = self.b.spec(x)
        if len(spec.shape) == 2:
            return x
        flat = f"{self.node_name(op)}.flat"
        self.b.tensor(flat, (1, spec.numel), DType.INT8, spec.quant)
        self.b.node(f"{self.node_name(op)}.flatten", Op.RESHAPE, (x,), (flat,), shape=[1, spec.numel], order="hwc")
        return flat

    def op_fully_connected(self, op: TfliteOperator) -> None:
        if op.options.get("keep_num_dims") and len(self.tensor(op.inputs[0]).shape) != 2:
            raise self.fail("keep_num_dims on a map input is not supported")
        x = self.flat_input(op, op.inputs[0])
        w_t = self.tensor(op.inputs[1])
        data = self.constant(op.inputs[1], "INT8", "weights")
        if len(w_t.shape) != 2 or w_t.shape[0] < 1 or w_t.shape[1] != self.b.spec(x).shape[1]:
            raise self.fail(
                f"weights '{w_t.name}' {list(w_t.shape)} do not take the input's {self.b.spec(x).shape[1]} values"
            )
        name = self.node_name(op)
        out_c = w_t.shape[0]
        w = self.b.constant(self.tte_name(w_t), data.reshape(w_t.shape), self.weight_quant(w_t, out_c, 0))
        b = self.bias(op.inputs[2] if len(op.inputs) > 2 else -1, out_c, name)
        act_min, act_max = self.act(op.options, self.tensor(op.outputs[0]))
        y = self.define(op.outputs[0])
        self.b.node(name, Op.LINEAR, (x, w, b), (y,), act_min=act_min, act_max=act_max)

    def new_head(self, op: TfliteOperator) -> None:
        """The last FULLY_CONNECTED replaced by a ``num_classes`` head (see :func:`tte_ir.import_seed_pkl`)."""
        x = self.flat_input(op, op.inputs[0])
        scale = self.quant(self.tensor(op.outputs[0])).tensor_scale if self.head == "int8" else 0.0
        y = new_head(self.b, x, self.num_classes, self.head, self.seed, scale)
        self.values[op.outputs[0]] = y
        self.metadata.update(
            num_classes=self.num_classes, head=self.head, replaced=self.tensor(op.outputs[0]).name,
            head_init=HEAD_INIT.format(seed=self.seed),
        )  # fmt: skip

    def same_shape_inputs(self, op: TfliteOperator) -> tuple[str, str]:
        a, b = (self.value(i) for i in op.inputs[:2])
        if self.b.spec(a).shape != self.b.spec(b).shape:
            raise self.fail(
                f"inputs of shapes {list(self.tensor(op.inputs[0]).shape)} and {list(self.tensor(op.inputs[1]).shape)}: "
                "broadcasting is not supported"
            )
        return a, b

    def op_add(self, op: TfliteOperator) -> None:
        a, b = self.same_shape_inputs(op)
        act_min, act_max = self.act(op.options, self.tensor(op.outputs[0]))
        y = self.define(op.outputs[0])
        self.b.node(self.node_name(op), Op.ADD, (a, b), (y,), act_min=act_min, act_max=act_max)

    def op_mul(self, op: TfliteOperator) -> None:
        a, b = (self.value(i) for i in op.inputs[:2])
        sa, sb = self.b.spec(a).shape, self.b.spec(b).shape
        if len(sa) == 4 and len(sb) == 4 and sb == (1, sa[1], 1, 1) and sa[2] * sa[3] > 1:
            pass
        elif len(sa) == 4 and len(sb) == 4 and sa == (1, sb[1], 1, 1) and sb[2] * sb[3] > 1:
            a, b = b, a
        else:
            raise self.fail(
                f"inputs of shapes {list(self.tensor(op.inputs[0]).shape)} and {list(self.tensor(op.inputs[1]).shape)}: "
                "tte multiplies a map [1, H, W, C] by a per-channel vector [1, 1, 1, C] (squeeze-and-excite)"
            )
        act_min, act_max = self.act(op.options, self.tensor(op.outputs[0]))
        y = self.define(op.outputs[0])
        self.b.node(self.node_name(op), Op.MUL, (a, b), (y,), act_min=act_min, act_max=act_max)

    def pool(self, op: TfliteOperator, kind: Op) -> None:
        x = self.value(op.inputs[0])
        spec = self.b.spec(x)
        if len(spec.shape) != 4:
            raise self.fail(f"input '{self.tensor(op.inputs[0]).name}' is not a map [1, H, W, C]")
        kernel = (int(op.options.get("filter_height", 1)), int(op.options.get("filter_width", 1)))
        if min(kernel) < 1:
            raise self.fail(f"filter {kernel[0]}x{kernel[1]} must be at least 1x1")
        stride, padding = self.window(op.options, spec.shape[2:], kernel)
        self.full_range(op.options, self.tensor(op.outputs[0]))
        y = self.define(op.outputs[0])
        extra = {"count_include_pad": False} if kind is Op.AVG_POOL else {}
        self.b.node(
            self.node_name(op), kind, (x,), (y,), kernel=kernel, stride=tuple(stride),
            padding=tuple(padding), **extra,
        )  # fmt: skip

    def op_average_pool_2d(self, op: TfliteOperator) -> None:
        self.pool(op, Op.AVG_POOL)

    def op_max_pool_2d(self, op: TfliteOperator) -> None:
        self.pool(op, Op.MAX_POOL)

    def op_mean(self, op: TfliteOperator) -> None:
        x = self.value(op.inputs[0])
        spec = self.b.spec(x)
        axes = sorted({int(a) % 4 for a in self.int32_value(op.inputs[1], "axis").ravel()})
        if len(spec.shape) != 4 or axes != [1, 2]:
            raise self.fail(f"a MEAN over axes {axes} is not supported; tte averages a map over H and W (axes 1, 2)")
        out = self.tensor(op.outputs[0])
        if op.options.get("keep_dims", False):
            y = self.define(op.outputs[0])
            self.b.node(self.node_name(op), Op.GLOBAL_AVG_POOL, (x,), (y,))
            return
        pooled = f"{self.node_name(op)}.pooled"
        self.b.tensor(pooled, (1, spec.shape[1], 1, 1), DType.INT8, self.quant(out))
        self.b.node(self.node_name(op), Op.GLOBAL_AVG_POOL, (x,), (pooled,))
        y = self.define(op.outputs[0])
        self.b.node(f"{self.node_name(op)}.squeeze", Op.RESHAPE, (pooled,), (y,), shape=[1, spec.shape[1]], order="hwc")

    def lut(self, op: TfliteOperator) -> None:
        x = self.value(op.inputs[0])
        y = self.define(op.outputs[0])
        self.b.node(self.node_name(op), Op.LUT, (x,), (y,), function=_LUT_OPS[op.opcode])

    op_hard_swish = lut
    op_logistic = lut

    def op_concatenation(self, op: TfliteOperator) -> None:
        parts = [self.value(i) for i in op.inputs]
        out = self.tensor(op.outputs[0])
        rank = len(out.shape)
        if int(op.options.get("axis", 0)) % max(rank, 1) != rank - 1 or rank not in (2, 4):
            raise self.fail("tte concatenates along channels (the last axis) only")
        self.full_range(op.options, out)
        quant = self.quant(out)
        for part in parts:
            if self.b.spec(part).quant != quant:
                raise self.fail(
                    f"input '{part}' has another scale or zero point than the output; tte concatenates codes of one "
                    "quantization"
                )
        y = parts[0]
        for i, part in enumerate(parts[1:], start=1):
            last = i == len(parts) - 1
            spec_a, spec_b = self.b.spec(y), self.b.spec(part)
            if last:
                joined = self.define(op.outputs[0])
            else:
                joined = f"{self.node_name(op)}.{i}"
                shape = list(spec_a.shape)
                shape[1] += spec_b.shape[1]
                self.b.tensor(joined, shape, DType.INT8, quant)
            self.b.node(f"{self.node_name(op)}" + ("" if last else f".{i}"), Op.CONCAT, (y, part), (joined,))
            y = joined

    def op_reshape(self, op: TfliteOperator) -> None:
        x_index = op.inputs[0]
        x = self.value(x_index)
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            target = [int(d) for d in self.int32_value(op.inputs[1], "shape").ravel()]
        else:
            target = [int(d) for d in op.options.get("new_shape", ())]
        out = self.tensor(op.outputs[0])
        known = math.prod(d for d in target if d != -1)
        if target.count(-1) > 1 or known == 0:
            raise self.fail(f"cannot read the shape {target}")
        if -1 in target:
            target[target.index(-1)] = self.b.spec(x).numel // known
        if tuple(target) != tuple(out.shape):
            raise self.fail(f"its shape {target} differs from its output's {list(out.shape)}")
        if self.quant(out) != self.b.spec(x).quant:
            raise self.fail("its output has another scale or zero point than its input")
        src, dst = len(self.tensor(x_index).shape), len(out.shape)
        if (src, dst) not in ((4, 2), (2, 4), (2, 2), (4, 4)):
            raise self.fail(
                f"reshaping rank {src} to rank {dst} is not supported (a map [1, H, W, C] or a vector [1, N])"
            )
        y = self.define(op.outputs[0])
        shape = list(self.b.spec(y).shape)
        if src == dst and self.b.spec(x).shape != tuple(shape):
            raise self.fail(f"reshaping {list(self.tensor(x_index).shape)} to {list(out.shape)} is not supported")
        self.b.node(self.node_name(op), Op.RESHAPE, (x,), (y,), shape=shape, order="hwc" if src != dst else "nchw")

    def op_pad(self, op: TfliteOperator) -> None:
        x_index = op.inputs[0]
        self.value(x_index)
        pads = self.int32_value(op.inputs[1], "paddings")
        x_t, out = self.tensor(x_index), self.tensor(op.outputs[0])
        if pads.shape != (4, 2) or np.any(pads[[0, 3]] != 0) or np.any(pads < 0):
            raise self.fail(f"paddings {pads.tolist()}: tte folds a PAD of H and W (non-negative) into the next conv")
        if self.quant(out) != self.quant(x_t):
            raise self.fail("its output has another scale or zero point than its input")
        (top, bottom), (left, right) = pads[1].tolist(), pads[2].tolist()
        self.pads[op.outputs[0]] = (x_index, (top, left, bottom, right))

    def op_shape(self, op: TfliteOperator) -> None:
        t = self.tensor(op.inputs[0])
        self.folded[op.outputs[0]] = np.asarray(t.shape, dtype=np.int64)

    def op_strided_slice(self, op: TfliteOperator) -> None:
        x, begin, end, strides = (self.int32_value(i, what) for i, what in zip(
            op.inputs, ("input", "begin", "end", "strides"), strict=True))  # fmt: skip
        o = op.options
        if x.ndim != 1 or begin.shape != (1,) or int(o.get("ellipsis_mask", 0)) or int(o.get("new_axis_mask", 0)):
            raise self.fail("only a one-dimensional slice of a shape is evaluated at import")
        if o.get("offset"):
            raise self.fail("an offset slice is not supported")
        n, step = len(x), int(strides[0])
        if step == 0:
            raise self.fail("a slice with stride 0")
        start = None if int(o.get("begin_mask", 0)) & 1 else int(begin[0])
        if int(o.get("shrink_axis_mask", 0)) & 1:
            index = (start or 0) + (n if (start or 0) < 0 else 0)
            if not 0 <= index < n:
                raise self.fail(f"index {start} is outside the shape's {n} entries")
            self.folded[op.outputs[0]] = np.asarray(x[index])
            return
        stop = None if int(o.get("end_mask", 0)) & 1 else int(end[0])
        self.folded[op.outputs[0]] = np.asarray(x[slice(start, stop, step)])

    def op_pack(self, op: TfliteOperator) -> None:
        parts = [self.int32_value(i, "value") for i in op.inputs]
        if any(p.shape != parts[0].shape for p in parts):
            raise self.fail("its values differ in shape")
        self.folded[op.outputs[0]] = np.stack(parts, axis=int(op.options.get("axis", 0)) % (parts[0].ndim + 1))

    def op_quantize(self, op: TfliteOperator) -> None:
        raise self.fail(
            "tte imports QUANTIZE only as the first op, on a float input (requantizing codes is not supported)"
        )

    def op_dequantize(self, op: TfliteOperator) -> None:
        raise self.fail("tte imports DEQUANTIZE only as the last op, on the model's output")

    def op_softmax(self, op: TfliteOperator) -> None:
        raise self.fail("tte imports SOFTMAX only as the model's last op (training's loss replaces it)")

    # -- metadata -------------------------------------------------------------------------------------
    def summary(self, image: str, output: str) -> dict[str, Any]:
        ops = Counter(f"{op.opcode} v{op.version}" for op in self.m.operators)
        weights = [
            self.tensor(op.inputs[1])
            for op in self.m.operators
            if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 1
        ]
        per_channel = sum(1 for t in weights if t.quantization is not None and t.quantization.per_channel)
        x, y = self.b.spec(image), self.b.spec(output)
        quant = {
            "activations": "int8, per tensor, asymmetric",
            "weights": f"int8, {per_channel} of {len(weights)} per output channel, zero point 0",
            "bias": "int32",
            "input": [x.quant.tensor_scale, x.quant.zero_point],
        }
        if y.quant is not None:
            quant["output"] = [y.quant.tensor_scale, y.quant.zero_point]
        return {
            "source": self.path.name,
            "source_sha256": self.m.digest,
            "importer": "tte_ir.tflite_import",
            "tflite_ops": dict(sorted(ops.items())),
            "folded_at_import": sorted({op.opcode for op in self.m.operators if op.opcode in (*_FOLDED, "PAD")}),
            "quantization": quant,
            "provenance": {"description": self.m.description, **{k: _text(v) for k, v in self.m.metadata.items()}},
            **self.metadata,
        }


def _tte_shape(shape: Sequence[int], importer: _Importer, name: str) -> tuple[int, ...]:
    """A TFLite activation shape in tte's order: ``[1, H, W, C]`` -> ``[1, C, H, W]``, ``[1, N]`` kept."""
    shape = tuple(int(d) for d in shape)
    if min(shape, default=0) < 1:
        raise importer.fail(f"tensor '{name}' has shape {list(shape)}; every dimension must be at least 1")
    if len(shape) == 4 and shape[0] == 1:
        return (1, shape[3], shape[1], shape[2])
    if len(shape) == 2 and shape[0] == 1:
        return shape
    raise importer.fail(f"tensor '{name}' has shape {list(shape)}; tte imports maps [1, H, W, C] and vectors [1, N]")


def import_tflite(
    path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    head: str = "int8",
    requant: str = "fixed",
    seed: int = 0,
) -> Graph:
    """Import the int8 ``.tflite`` model at ``path`` as a verified forward graph (module docstring).

    ``num_classes`` replaces the last FULLY_CONNECTED by a new head of that many classes, ``head``
    "int8" or "fp32"; ``seed`` seeds its initialisation. ``requant`` is the graph's requantization,
    "fixed" (TFLite's integer arithmetic, the default) or "float". Raises :class:`TfliteImportError`
    (or :class:`~tte_ir.tflite_file.TfliteFormatError` for a damaged file), one line each.
    """
    if num_classes is not None and num_classes < 1:
        raise TfliteImportError(f"--classes must be at least 1, got {num_classes}")
    if head not in ("int8", "fp32"):
        raise TfliteImportError(f"head must be 'int8' or 'fp32', got '{head}'")
    if requant not in REQUANT_MODES:
        raise TfliteImportError(f"requant must be one of {', '.join(REQUANT_MODES)}, got '{requant}'")
    path = Path(path)
    return _Importer(read_tflite(path), path, num_classes, head, requant, seed).run()


def register_import_tflite(subparsers: Any) -> None:
    """Add ``tte import-tflite``."""
    p = subparsers.add_parser(
        "import-tflite",
        help="import an int8 TensorFlow Lite model (.tflite) as a .tte forward graph",
        description="Import a full-integer int8 .tflite model (per-channel weights, int8 activations) with its own "
        "quantization; TFLite's reference integer requantization by default, so its forward gives TFLite's codes.",
    )
    p.add_argument("model", help="the .tflite file")
    p.add_argument("-o", "--output", required=True, help="the .tte file to write")
    p.add_argument("--classes", type=int, help="replace the last FULLY_CONNECTED by a new head of CLASSES classes")
    p.add_argument("--head", choices=("int8", "fp32"), default="int8", help="the new head's precision (default int8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the new head's initialisation (default 0)")
    p.add_argument(
        "--requant", choices=("fixed", "float"), default="fixed",
        help="requantization: fixed (TFLite's integer arithmetic, default) or float (tte's float32 rounding)",
    )  # fmt: skip
    p.set_defaults(func=_cmd_import_tflite)


def _cmd_import_tflite(args: Any) -> int:
    import time

    from tte_ir.cli_args import bounded_int, output_file, seed_value
    from tte_ir.serialize import save

    if args.classes is not None:
        bounded_int(args.classes, "--classes", 1)
    seed_value(args.seed, "--seed")
    output_file(args.output, "-o")
    started = time.perf_counter()
    graph = import_tflite(args.model, num_classes=args.classes, head=args.head, requant=args.requant, seed=args.seed)
    seconds = time.perf_counter() - started
    save(graph, args.output)
    ops = ", ".join(f"{name} x{count}" for name, count in graph.metadata["tflite_ops"].items())
    print(
        f"wrote {args.output}: {len(graph.nodes)} nodes, {len(graph.constants)} constant tensors, requant "
        f"{args.requant}, imported in {seconds:.2f} s from {ops}"
    )
    return 0
